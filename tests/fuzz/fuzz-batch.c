/* fuzz-batch.c: libFuzzer target for the vendor services' answers (outside input) as the VIN,
 * frame, price and rental kinds read them, in each state a row can be in; and for their row
 * validators. */

#include <stdint.h>
#include <string.h>

#include "batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const sg_batch_kind *const kinds[] = {&sg_batch_vin, &sg_batch_frame, &sg_batch_price,
					     &sg_batch_rental};
static void *states[G_N_ELEMENTS(kinds)];
static sg_config *cfg; /* the kinds borrow from it for the life of the process */

static void open_kinds(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	cfg = sg_config_defaults();
	cfg->vin.url = g_strdup("http://127.0.0.1:9/api");
	cfg->vin.token = g_strdup("fuzz-token");
	cfg->frame.url = g_strdup("http://127.0.0.1:9/reportrequestframe.ashx");
	cfg->frame.key = g_strdup("867983b5-d66d-44d7-b440-5bd00b0b8203");
	cfg->rental.url = g_strdup("http://127.0.0.1:9/backend/app/contracts.php");
	cfg->rental.login = g_strdup("fuzz");
	cfg->rental.password = g_strdup("fuzz-password");
	cfg->rental.time_zone = g_strdup("Europe/Moscow");
	cfg->price.url = g_strdup("http://127.0.0.1:9/api/");
	cfg->price.s_sn = g_strdup("3274171001");
	for (size_t k = 0; k < G_N_ELEMENTS(kinds); k++) {
		/* A budget, so that price's stage 1 answers lead on to stage 2. */
		sg_batch_conn conn = {.max_cost = 100};
		if (kinds[k]->open(cfg, &conn, NULL) == SG_OK)
			states[k] = conn.state;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = {200, 200, 400, 404, 422, 200};
	static const char *const rstates[] = {NULL, "sent", "queued", "ok", "info"};

	if (size < 3)
		return 0;
	open_kinds();
	const sg_batch_kind *kind = kinds[data[0] % G_N_ELEMENTS(kinds)];
	void *state = states[data[0] % G_N_ELEMENTS(kinds)];
	g_autofree char *body = g_strndup((const char *)data + 3, size - 3);
	sg_batch_row row = {.line = 2};

	/* The validator on the body's lines as cell values. */
	g_auto(GStrv) cells = g_strsplit(body, "\n", (gint)kind->ncolumns + 1);
	row.vals = g_new0(char *, kind->ncolumns + 1);
	for (size_t i = 0; i < kind->ncolumns; i++)
		row.vals[i] = g_strdup(i < g_strv_length(cells) ? cells[i] : "");
	const char *warning = NULL;
	g_free(kind->validate(row.vals, &warning));

	/* The answer, in the state and phase the second byte picks. */
	if (state) {
		row.state = g_strdup(rstates[data[1] % 5]);
		row.answer = (data[1] & 8)
				     ? g_strdup("{\"id\":\"12345\",\"request_id\":\"41\",\"cost\":\"1\","
						"\"has_value\":\"1\",\"stage\":1,\"posible\":\"yes\"}")
				     : NULL;
		row.phase = (data[1] >> 4) & 3;
		/* The whole buffer, NULs included (the XML parser is given the length), with the
		 * NUL after it that the engine guarantees. */
		g_autofree char *raw = g_malloc(size - 2);
		memcpy(raw, data + 3, size - 3);
		raw[size - 3] = 0;
		(void)kind->answer(state, &row, statuses[data[2] % 6], raw, size - 3);
		if (kind->resume)
			(void)kind->resume(state, &row);
	}
	{
		/* The rental answer parser alone, on the raw bytes (NULs and all). */
		long code;
		char *odo = NULL, *msg = NULL, *e = NULL;
		(void)sg_batch_rental_parse((const char *)data + 3, size - 3, &code, &odo, &msg, &e);
		g_free(odo);
		g_free(msg);
		g_free(e);
	}
	g_strfreev(row.vals);
	g_free(row.state);
	g_free(row.answer);
	g_free(row.error);
	return 0;
}
