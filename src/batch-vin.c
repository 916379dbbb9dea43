/* batch-vin.c: batch kind `vin`: VIN history reports of seed 000 (processing_queue, get_balance, deliveries). */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include "batch.h"
#include "delivery.h"
#include "log.h"
#include "util.h"

enum { C_VIN, C_TYPE, C_BRAND, C_LANG, C_TELEGRAM, C_CLIENT_EMAIL, C_YOUR_EMAIL, C_N };

static const char *const a_vin[] = { "vin-код", "vin код", "вин", "vin_code", "вин-код", NULL };
static const char *const a_type[] = { "тип проверки", "тип_проверки", "тип", "type",
				      "check type", NULL };
static const char *const a_brand[] = { "car_brand", "марка", "марка авто", "make", NULL };
static const char *const a_lang[] = { "report_language", "язык", "язык отчета", "lang", NULL };
static const char *const a_tg[] = { "id телеграм", "телеграм", "telegram", NULL };
static const char *const a_ce[] = { "email клиента", "почта клиента", NULL };
static const char *const a_ye[] = { "ваш email", "email ваш", "ваша почта", NULL };

static const sg_batch_column vin_columns[] = {
	{ "vin", a_vin, true },
	{ "check_type", a_type, true },
	{ "brand", a_brand, true },
	{ "language", a_lang, true },
	{ "telegram_id", a_tg, false },
	{ "client_email", a_ce, false },
	{ "your_email", a_ye, false },
};

static const char *const vin_results[] = { "id", "message", "report_status", "report_url",
					    "report_file", NULL };

/* The report languages, as the service names them, with what users type for them. */
static const struct { const char *name; const char *const codes[4]; } languages[] = {
	{ "Русский", { "ru", "rus", "russian" } },
	{ "Английский", { "en", "eng", "english" } },
	{ "Польский", { "pl", "pol", "polish" } },
	{ "Румынский", { "ro", "rum", "romanian" } },
	{ "Французский", { "fr", "fre", "french" } },
	{ "Немецкий", { "de", "ger", "german" } },
};
enum { L_RU = 1, L_EN = 2, L_PL = 4, L_RO = 8, L_FR = 16, L_DE = 32, L_ALL = 63 };

/* The check types with their brands (as the seed spells them) and languages. NULL brands: any
 * brand, or none. */
static const struct {
	const char *name;
	const char *const *brands;
	unsigned langs;
} checks[] = {
	{ "check_data_bmw_full", (const char *const[]){ "BMW", "Mini", NULL }, L_ALL },
	{ "check_data_multibr_zapros",
	  (const char *const[]){ "Alfa Romeo", "Renault", "Jeep", "Infiniti", "Land Rover",
				 "Nissan", "Mazda", "hyundai", "Honda", "Peugeot", "Citroen",
				 "Fiat", "Jaguar", "Lexus", "Opel", "Toyota", "KIA", "Ford",
				 "Porsche", "Mercedes-Benz", NULL },
	  L_RU | L_EN },
	{ "check_elsa_pro_full", (const char *const[]){ "Audi", "SKODA", "SEAT", "Volkswagen", NULL },
	  L_ALL },
	{ "check_CarVertical", NULL, L_ALL },
	{ "check_data_mercedes_eva", (const char *const[]){ "Mercedes-Benz", NULL }, L_EN },
	{ "check_erwin_full", (const char *const[]){ "Audi", "SKODA", "SEAT", "Volkswagen", NULL },
	  L_EN },
	{ "check_etka_full",
	  (const char *const[]){ "Audi", "SKODA", "SEAT", "Volkswagen", "MAN", "Porsche",
				 "Bentley", NULL },
	  L_RU | L_EN },
	{ "check_nomer_dws",
	  (const char *const[]){ "Audi", "SKODA", "SEAT", "Volkswagen", "Volvo", "Peugeot",
				 "Nissan", "Jeep", "KIA", "Mercedes", "Opel", "Citroen", "Dodge",
				 "Fiat", "hyundai", NULL },
	  L_EN },
};

/* Other names users give a brand → the key of the brand (lower case, letters and digits). */
static const struct { const char *alias, *key; } brand_aliases[] = {
	{ "vw", "volkswagen" },       { "фольксваген", "volkswagen" }, { "фольцваген", "volkswagen" },
	{ "mercedes", "mercedes" },   { "mercedesbenz", "mercedes" },  { "mb", "mercedes" },
	{ "мерседес", "mercedes" },   { "мерседесбенц", "mercedes" },  { "бмв", "bmw" },
	{ "мини", "mini" },           { "ауди", "audi" },              { "шкода", "skoda" },
	{ "škoda", "skoda" },         { "сеат", "seat" },              { "порше", "porsche" },
	{ "порш", "porsche" },        { "ман", "man" },                { "бентли", "bentley" },
	{ "вольво", "volvo" },        { "пежо", "peugeot" },           { "ниссан", "nissan" },
	{ "джип", "jeep" },           { "киа", "kia" },                { "опель", "opel" },
	{ "ситроен", "citroen" },     { "citroën", "citroen" },        { "додж", "dodge" },
	{ "фиат", "fiat" },           { "хендай", "hyundai" },         { "хендэ", "hyundai" },
	{ "хундай", "hyundai" },      { "хёндэ", "hyundai" },          { "хонда", "honda" },
	{ "мазда", "mazda" },         { "тойота", "toyota" },          { "лексус", "lexus" },
	{ "форд", "ford" },           { "ягуар", "jaguar" },           { "рено", "renault" },
	{ "инфинити", "infiniti" },   { "ленд ровер", "landrover" },   { "лендровер", "landrover" },
	{ "range rover", "landrover" }, { "альфа ромео", "alfaromeo" }, { "alfa", "alfaromeo" },
};

/* The key of a brand: lower case without blanks, hyphens and dots; Mercedes-Benz → mercedes. */
static char *brand_key(const char *s)
{
	g_autofree char *low = g_utf8_strdown(s, -1);
	GString *k = g_string_new(NULL);

	for (size_t i = 0; i < G_N_ELEMENTS(brand_aliases); i++) {
		g_autofree char *al = g_utf8_strdown(brand_aliases[i].alias, -1);
		if (strcmp(low, al) == 0) {
			g_string_free(k, TRUE);
			return g_strdup(brand_aliases[i].key);
		}
	}
	for (const char *p = low; *p; p++)
		if (*p != ' ' && *p != '-' && *p != '.' && *p != '_')
			g_string_append_c(k, *p);
	for (size_t i = 0; i < G_N_ELEMENTS(brand_aliases); i++)
		if (strcmp(k->str, brand_aliases[i].alias) == 0) {
			g_string_assign(k, brand_aliases[i].key);
			break;
		}
	if (strcmp(k->str, "mercedesbenz") == 0)
		g_string_assign(k, "mercedes");
	return g_string_free(k, FALSE);
}

/* ISO 3779 check digit (position 9) of a 17-character VIN: the expected character. */
static char vin_check_digit(const char *v)
{
	static const int weights[17] = { 8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2 };
	static const char *const letters = "ABCDEFGHJKLMNPRSTUVWXYZ";
	static const int values[] = { 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5,
				      7, 9, 2, 3, 4, 5, 6, 7, 8, 9 };
	int sum = 0;

	for (int i = 0; i < 17; i++) {
		int val;
		if (g_ascii_isdigit(v[i])) {
			val = v[i] - '0';
		} else {
			const char *p = strchr(letters, v[i]);
			if (p == NULL)
				return 0;
			val = values[p - letters];
		}
		sum += val * weights[i];
	}
	return sum % 11 == 10 ? 'X' : (char)('0' + sum % 11);
}

/* Validates a VIN cell into *out (17 Latin capitals and digits); NULL or the reason. */
static char *vin_normalise(const char *in, char **out, bool *check_ok)
{
	g_autofree char *v = sg_batch_latin_upper(in);
	size_t n;

	*out = NULL;
	if (v == NULL || *v == 0)
		return g_strdup("vin: empty");
	/* Dashes pasted from documents are not part of a VIN. */
	{
		char *w = v;
		for (char *p = v; *p; p++)
			if (*p != '-')
				*w++ = *p;
		*w = 0;
	}
	n = g_utf8_strlen(v, -1);
	for (const char *p = v; *p; p++)
		if (!g_ascii_isalnum(*p))
			return g_strdup_printf("vin: '%s': only Latin letters and digits are allowed", in);
	if (n != 17)
		return g_strdup_printf("vin: '%s' has %zu characters, a VIN has 17", in, n);
	if (strpbrk(v, "IOQ"))
		return g_strdup_printf("vin: '%s' contains I, O or Q, which a VIN never has", in);
	*check_ok = vin_check_digit(v) == v[8];
	*out = g_steal_pointer(&v);
	return NULL;
}

static char *vin_validate(char **vals, const char **warning)
{
	g_autofree char *vin = NULL;
	bool check_ok = true;
	char *why;
	size_t ci;
	int lang = -1;

	if ((why = vin_normalise(vals[C_VIN], &vin, &check_ok)))
		return why;
	g_free(vals[C_VIN]);
	vals[C_VIN] = g_steal_pointer(&vin);
	if (!check_ok)
		*warning = "the VIN fails the ISO 3779 check digit (usual outside North America)";

	for (ci = 0; ci < G_N_ELEMENTS(checks); ci++)
		if (g_ascii_strcasecmp(vals[C_TYPE], checks[ci].name) == 0 ||
		    (g_ascii_strncasecmp(checks[ci].name, "check_", 6) == 0 &&
		     g_ascii_strcasecmp(vals[C_TYPE], checks[ci].name + 6) == 0))
			break;
	if (ci == G_N_ELEMENTS(checks))
		return g_strdup_printf("check_type: '%s' is not a check type (check_data_bmw_full, "
				       "check_data_multibr_zapros, check_elsa_pro_full, "
				       "check_CarVertical, check_data_mercedes_eva, check_erwin_full, "
				       "check_etka_full, check_nomer_dws)", vals[C_TYPE]);
	g_free(vals[C_TYPE]);
	vals[C_TYPE] = g_strdup(checks[ci].name);

	if (checks[ci].brands == NULL) {
		/* check_CarVertical takes any brand, or none: sent as written. */
	} else {
		g_autofree char *key = brand_key(vals[C_BRAND]);
		const char *const *b;
		for (b = checks[ci].brands; *b; b++) {
			g_autofree char *bk = brand_key(*b);
			if (strcmp(bk, key) == 0)
				break;
		}
		if (*vals[C_BRAND] == 0)
			return g_strdup_printf("brand: empty; %s needs one of its brands",
					       checks[ci].name);
		if (*b == NULL) {
			g_autofree char *list = g_strjoinv(", ", (char **)checks[ci].brands);
			return g_strdup_printf("brand: '%s' is not taken by %s (%s)", vals[C_BRAND],
					       checks[ci].name, list);
		}
		g_free(vals[C_BRAND]);
		vals[C_BRAND] = g_strdup(*b);
	}

	for (size_t i = 0; i < G_N_ELEMENTS(languages) && lang < 0; i++) {
		g_autofree char *a = g_utf8_casefold(vals[C_LANG], -1);
		g_autofree char *b = g_utf8_casefold(languages[i].name, -1);
		if (strcmp(a, b) == 0)
			lang = (int)i;
		for (size_t c = 0; c < 3 && lang < 0; c++)
			if (g_ascii_strcasecmp(vals[C_LANG], languages[i].codes[c]) == 0)
				lang = (int)i;
	}
	if (lang < 0)
		return g_strdup_printf("language: '%s' is not a report language (ru, en, pl, ro, "
				       "fr, de or Русский, Английский, …)", vals[C_LANG]);
	if (!(checks[ci].langs & (1u << lang))) {
		GString *ok = g_string_new(NULL);
		for (size_t i = 0; i < G_N_ELEMENTS(languages); i++)
			if (checks[ci].langs & (1u << i))
				g_string_append_printf(ok, "%s%s", ok->len ? ", " : "",
						       languages[i].codes[0]);
		why = g_strdup_printf("language: %s is not offered by %s (%s)",
				      languages[lang].codes[0], checks[ci].name, ok->str);
		g_string_free(ok, TRUE);
		return why;
	}
	g_free(vals[C_LANG]);
	vals[C_LANG] = g_strdup(languages[lang].name);

	if (*vals[C_TELEGRAM]) {
		for (const char *p = vals[C_TELEGRAM]; *p; p++)
			if (!g_ascii_isdigit(*p))
				return g_strdup_printf("telegram_id: '%s' is not a number",
						       vals[C_TELEGRAM]);
	}
	for (int c = C_CLIENT_EMAIL; c <= C_YOUR_EMAIL; c++)
		if (*vals[c] && (strchr(vals[c], '@') == NULL || strpbrk(vals[c], " ,;<>")))
			return g_strdup_printf("%s: '%s' is not an e-mail address",
					       vin_columns[c].name, vals[c]);
	return NULL;
}

typedef struct {
	const sg_config *cfg;
	const char *url, *token;
	bool waits;         /* a receiver is configured: a queued row waits for its report */
	gint64 report_wait; /* seconds */
} vin_state;

static sg_status vin_open(const sg_config *cfg, sg_batch_conn *conn, char **err)
{
	vin_state *s;

	if (cfg->vin.url == NULL || *cfg->vin.url == 0)
		return sg_fail(err, SG_ECONFIG, "[vin] url is not set: the vin service's "
			       "processing_queue URL");
	if (cfg->vin.token == NULL || *cfg->vin.token == 0)
		return sg_fail(err, SG_ECONFIG, "[vin] token_file (or token) is not set: the vin "
			       "service's access token");
	s = g_new0(vin_state, 1);
	s->cfg = cfg;
	s->url = cfg->vin.url;
	s->token = cfg->vin.token;
	s->waits = cfg->vin.callback_secret != NULL;
	s->report_wait = cfg->vin.report_wait;
	conn->section = "vin";
	conn->url = cfg->vin.url;
	conn->tls = &cfg->vin.tls;
	conn->state = s;
	return SG_OK;
}

static void vin_close(void *state)
{
	g_free(state);
}

static bool vin_next(void *state, sg_batch_row *row, sg_batch_call *call)
{
	vin_state *s = state;
	cJSON *o;
	char *txt;

	if (row->state && strcmp(row->state, "sent") != 0)
		return false;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "token", s->token);
	cJSON_AddStringToObject(o, "vin", row->vals[C_VIN]);
	cJSON_AddStringToObject(o, "check_type", row->vals[C_TYPE]);
	cJSON_AddStringToObject(o, "car_brand", row->vals[C_BRAND]);
	cJSON_AddStringToObject(o, "report_language", row->vals[C_LANG]);
	if (*row->vals[C_TELEGRAM])
		cJSON_AddStringToObject(o, "telegram_id", row->vals[C_TELEGRAM]);
	if (*row->vals[C_CLIENT_EMAIL])
		cJSON_AddStringToObject(o, "client_email", row->vals[C_CLIENT_EMAIL]);
	if (*row->vals[C_YOUR_EMAIL])
		cJSON_AddStringToObject(o, "your_email", row->vals[C_YOUR_EMAIL]);
	txt = cJSON_PrintUnformatted(o);
	call->url = g_strdup(s->url);
	call->body = g_strdup(txt);
	call->content_type = "application/json";
	call->charged = true;
	call->what = "submit";
	cJSON_free(txt);
	cJSON_Delete(o);
	return true;
}

/* A short text of a JSON value for the error column. */
static char *json_text(const cJSON *v)
{
	if (cJSON_IsString(v))
		return g_strdup(v->valuestring);
	if (v == NULL || cJSON_IsNull(v))
		return NULL;
	char *t = cJSON_PrintUnformatted(v);
	char *out = g_strdup(t);
	cJSON_free(t);
	return out;
}

static sg_step vin_answer(void *state, sg_batch_row *row, long http, const char *body, size_t len)
{
	vin_state *vs = state;
	cJSON *j = cJSON_ParseWithLength(body, len);
	cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
	g_autofree char *etext = json_text(e);

	if (j == NULL || !cJSON_IsObject(j)) {
		row->error = g_strdup_printf("HTTP %ld: the answer is not JSON", http);
		cJSON_Delete(j);
		return SG_STEP_DONE;
	}
	if (http >= 300 || (etext && *etext && strcmp(etext, "false") != 0) ||
	    (cJSON_IsString(st) && g_ascii_strcasecmp(st->valuestring, "error") == 0)) {
		cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
		if (etext == NULL || strcmp(etext, "true") == 0) {
			/* "error": "true" says only that it failed: the message says why. */
			g_free(etext);
			etext = json_text(m);
		}
		if (http >= 300)
			row->error = g_strdup_printf("HTTP %ld: %s", http, etext ? etext : "refused");
		else
			row->error = g_strdup(etext ? etext : "refused");
		cJSON_Delete(j);
		return SG_STEP_DONE;
	}
	/* Accepted: keep the service's id and message. */
	cJSON *res = cJSON_CreateObject();
	cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
	g_autofree char *idt = json_text(id), *msgt = json_text(msg);
	cJSON_AddStringToObject(res, "id", idt ? idt : "");
	cJSON_AddStringToObject(res, "message", msgt ? msgt : "");
	if (vs->waits) {
		/* The report comes later by POST to `serve`, which finds the row by this id (or
		 * the VIN); until wait_until the row is pending, then unknown (no_report). */
		cJSON_AddStringToObject(res, "vin", row->vals[C_VIN]);
		cJSON_AddNumberToObject(res, "wait_until", (double)(sg_now() + vs->report_wait));
	}
	char *txt = cJSON_PrintUnformatted(res);
	g_free(row->state);
	g_free(row->answer);
	row->state = g_strdup(vs->waits ? "waiting" : "ok");
	row->answer = g_strdup(txt);
	cJSON_free(txt);
	cJSON_Delete(res);
	cJSON_Delete(j);
	/* WAIT: the engine asks next(), which has nothing to call for a waiting row. */
	return vs->waits ? SG_STEP_WAIT : SG_STEP_DONE;
}

static bool vin_settle(void *state, sqlite3 *db, const char *input_sha256, sg_batch_row *row);

const sg_batch_kind sg_batch_vin = {
	.name = "vin",
	.columns = vin_columns,
	.ncolumns = G_N_ELEMENTS(vin_columns),
	.result_columns = vin_results,
	.open = vin_open,
	.close = vin_close,
	.validate = vin_validate,
	.next = vin_next,
	.answer = vin_answer,
	.settle = vin_settle,
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	GString *s = ud;

	if (s->len + size * n > (1 << 20))
		return 0;
	g_string_append_len(s, p, (gssize)(size * n));
	return size * n;
}

sg_status sg_batch_vin_balance(const sg_config *cfg, char **balance, char **err)
{
	sg_batch_conn conn = { 0 };
	sg_status st;
	CURL *e;
	CURLcode rc;
	long http = 0;
	g_autoptr(GString) body = g_string_new(NULL);
	g_autofree char *tok = NULL, *req = NULL, *u = NULL;
	struct curl_slist *h = NULL;
	cJSON *j, *b;

	*balance = NULL;
	if ((st = vin_open(cfg, &conn, err)) != SG_OK)
		return st;
	if (g_ascii_strncasecmp(conn.url, "https://", 8) != 0 && !conn.tls->off) {
		vin_close(conn.state);
		return sg_fail(err, SG_ECONFIG, "[vin] url: not https:// (tls = off allows "
			       "plaintext for a loopback test)");
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	e = sg_batch_easy_new(&conn, 30, 10);
	tok = sg_batch_json_str(cfg->vin.token);
	req = g_strdup_printf("{\"token\":%s,\"check_type\":\"get_balance\"}", tok);
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(e, CURLOPT_URL, conn.url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, req);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
	rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	vin_close(conn.state);
	u = sg_batch_redact_url(cfg->vin.url);
	if (rc != CURLE_OK)
		return sg_fail(err, SG_ETEMP, "[vin] %s: %s", u, curl_easy_strerror(rc));
	if (http == 401 || http == 402 || http == 403)
		return sg_fail(err, SG_ECONFIG, "[vin] %s: the service refused the token (HTTP %ld)",
			       u, http);
	if (http != 200)
		return sg_fail(err, http >= 500 || http == 429 ? SG_ETEMP : SG_EUNAVAIL,
			       "[vin] %s: HTTP %ld", u, http);
	j = cJSON_Parse(body->str);
	b = cJSON_GetObjectItemCaseSensitive(j, "balance");
	if (b == NULL) {
		cJSON *er = cJSON_GetObjectItemCaseSensitive(j, "error");
		g_autofree char *et = json_text(er);
		cJSON_Delete(j);
		if (et)
			return sg_fail(err, SG_EUNAVAIL, "[vin] get_balance: %s", et);
		return sg_fail(err, SG_EUNAVAIL, "[vin] get_balance: the answer has no balance");
	}
	*balance = cJSON_IsNumber(b) ? g_strdup_printf("%g", b->valuedouble) : json_text(b);
	cJSON_Delete(j);
	return SG_OK;
}

/* ---- deliveries: the report comes back (`stockgate serve`) ------------------------------- */

char *sg_batch_vin_reports_dir(const sg_config *cfg)
{
	g_autofree char *dir = g_path_get_dirname(cfg->store.path);
	return g_build_filename(dir, "reports", NULL);
}

/* A VIN as the journal keeps it: 17 Latin capitals and digits. */
static bool vin_plain(const char *v)
{
	if (v == NULL || strlen(v) != 17)
		return false;
	for (const char *p = v; *p; p++)
		if (!g_ascii_isupper(*p) && !g_ascii_isdigit(*p))
			return false;
	return true;
}

static sg_status db_err(sqlite3 *db, int rc, char **err)
{
	/* Busy: the poller holds the write lock longer than the busy timeout; the service
	 * retries a delivery that is not answered 2xx. */
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return sg_fail(err, SG_ETEMP, "state db busy: %s", sqlite3_errmsg(db));
	return sg_fail(err, SG_EIO, "state db: %s", sqlite3_errmsg(db));
}

/* The waiting-or-done journal row of a delivery: the row this very delivery was filed with (a
 * repeat), else by the queue's id, else by the VIN among the rows still waiting (the most
 * recent). A repeat must not reach the VIN: another row waiting for that VIN would get it. */
static int find_row(sqlite3 *db, const sg_delivery *d, const char *delivery_sha, char **sha,
		    gint64 *line, char **state, char **answer)
{
	static const char *const by_delivery =
		"SELECT input_sha256, row, state, answer FROM journal WHERE kind = 'vin' AND "
		"CASE WHEN json_valid(answer) THEN json_extract(answer, '$.delivery') END = ?1 "
		"ORDER BY sent_at DESC LIMIT 1";
	static const char *const by_id =
		"SELECT input_sha256, row, state, answer FROM journal WHERE kind = 'vin' AND "
		"CASE WHEN json_valid(answer) THEN json_extract(answer, '$.id') END = ?1 "
		"ORDER BY state = 'waiting' DESC, sent_at DESC LIMIT 1";
	static const char *const by_vin =
		"SELECT input_sha256, row, state, answer FROM journal WHERE kind = 'vin' AND "
		"state = 'waiting' AND "
		"CASE WHEN json_valid(answer) THEN json_extract(answer, '$.vin') END = ?1 "
		"ORDER BY sent_at DESC LIMIT 1";
	static const char *const queries[] = { by_delivery, by_id, by_vin };
	int rc = SQLITE_DONE;

	for (int pass = 0; pass < 3 && rc == SQLITE_DONE; pass++) {
		const char *key = pass == 0 ? delivery_sha : pass == 1 ? d->id : d->vin;
		sqlite3_stmt *s = NULL;
		if (key == NULL || (pass == 2 && !vin_plain(key)))
			continue;
		rc = sqlite3_prepare_v2(db, queries[pass], -1, &s, NULL);
		if (rc != SQLITE_OK)
			return rc;
		sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*sha = g_strdup((const char *)sqlite3_column_text(s, 0));
			*line = sqlite3_column_int64(s, 1);
			*state = g_strdup((const char *)sqlite3_column_text(s, 2));
			*answer = g_strdup((const char *)sqlite3_column_text(s, 3));
		}
		sqlite3_finalize(s);
	}
	return rc;
}

/* The bytes of a delivery's report in a temp file beside dir/name (fsynced), for place_report
 * to rename under the row's lock; *tmp: its name (g_free). */
static sg_status write_report_temp(const char *dir, const char *name, const sg_delivery *d,
				   char **tmp, char **err)
{
	g_autofree char *e = NULL, *path = g_build_filename(dir, name, NULL);

	if (g_mkdir_with_parents(dir, 0750) != 0)
		return sg_fail(err, SG_EIO, "%s: cannot create: %s", dir, g_strerror(errno));
	if ((*tmp = sg_write_temp(path, d->file, d->file_len, 0640, &e)) == NULL)
		return sg_fail(err, SG_EIO, "%s", e);
	return SG_OK;
}

/* Renames a report file (a temp, or a delivery kept in unmatched/) to dir/name, and fsyncs the
 * directory: *path (g_free). */
static sg_status place_report(const char *from, const char *dir, const char *name, char **path,
			      char **err)
{
	g_autofree char *e = NULL;

	if (g_mkdir_with_parents(dir, 0750) != 0)
		return sg_fail(err, SG_EIO, "%s: cannot create: %s", dir, g_strerror(errno));
	*path = g_build_filename(dir, name, NULL);
	if (!sg_rename_durable(from, *path, &e)) {
		g_clear_pointer(path, g_free);
		return sg_fail(err, SG_EIO, "%s", e);
	}
	return SG_OK;
}

/* Writes the report file under dir/name at once (temp, fsync, rename, fsync of the directory). */
static sg_status write_report(const char *dir, const char *name, const sg_delivery *d,
			      char **path, char **err)
{
	g_autofree char *tmp = NULL;
	sg_status st = write_report_temp(dir, name, d, &tmp, err);

	if (st == SG_OK && (st = place_report(tmp, dir, name, path, err)) != SG_OK)
		unlink(tmp);
	return st;
}

/* The VIN of a waiting row's answer, checked, or "VIN". */
static char *answer_vin(const char *answer)
{
	cJSON *was = cJSON_Parse(answer);
	cJSON *vin = cJSON_GetObjectItemCaseSensitive(was, "vin");
	char *v = g_strdup(cJSON_IsString(vin) && vin_plain(vin->valuestring) ? vin->valuestring
									   : "VIN");
	cJSON_Delete(was);
	return v;
}

/* Where a row's report goes: reports/<16 digits of the list's SHA-256>/<row>-<VIN>.<ext>; the
 * name comes from the journal, never from the request. */
static void report_place(const char *reports, const char *sha, gint64 line, const char *answer,
			 const char *ext, char **dir, char **name)
{
	g_autofree char *v = answer_vin(answer);
	*dir = g_strdup_printf("%s/%.16s", reports, sha);
	*name = g_strdup_printf("%" G_GINT64_FORMAT "-%s.%s", line, v, ext);
}

static void add_opt(cJSON *o, const char *k, const char *v)
{
	cJSON_AddStringToObject(o, k, v ? v : "");
}

/*
 * Journals a delivery's result in a waiting (or failed) row, inside the caller's write
 * transaction: its fields, the delivery's digest (its repeat finds the row again, find_row) and
 * report_file, which is in place already. *what: filed or failed; *journalled (optional): the
 * answer written (g_free). An SQLite code: SQLITE_DONE when written.
 */
static int file_row(sqlite3 *db, const char *sha, gint64 line, const char *answer,
		    const sg_delivery *d, const char *delivery_sha, const char *report_file,
		    sg_vin_delivered *what, char **journalled)
{
	cJSON *was = cJSON_Parse(answer), *res = cJSON_CreateObject();
	cJSON *id = cJSON_GetObjectItemCaseSensitive(was, "id");
	cJSON *msg = cJSON_GetObjectItemCaseSensitive(was, "message");
	g_autofree char *v = answer_vin(answer);
	sqlite3_stmt *s = NULL;
	char *txt;
	int rc;

	add_opt(res, "id", cJSON_IsString(id) ? id->valuestring : d->id);
	add_opt(res, "message", cJSON_IsString(msg) ? msg->valuestring : NULL);
	add_opt(res, "vin", v);
	add_opt(res, "report_status", d->status ? d->status : d->failed ? "error" : "ok");
	add_opt(res, "report_url", d->url);
	add_opt(res, "delivery", delivery_sha);
	if (d->failed) {
		g_autofree char *e = g_strdup_printf("the service reported a failure: %s",
						     d->error ? d->error : d->status);
		add_opt(res, "error", e);
		*what = SG_VIN_FAILED;
	} else {
		add_opt(res, "report_file", report_file);
		*what = SG_VIN_FILED;
	}
	txt = cJSON_PrintUnformatted(res);
	cJSON_Delete(was);
	cJSON_Delete(res);
	rc = sqlite3_prepare_v2(db, "UPDATE journal SET state = ?1, answer = ?2 WHERE "
				"kind = 'vin' AND input_sha256 = ?3 AND row = ?4",
				-1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(s, 1, *what == SG_VIN_FAILED ? "failed" : "ok", -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, txt, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, sha, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, line);
		rc = sqlite3_step(s);
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE && journalled)
		*journalled = g_strdup(txt);
	cJSON_free(txt);
	return rc;
}

sg_status sg_batch_vin_deliver(const sg_config *cfg, sg_store *store, const sg_delivery *d,
			       const char *body_sha256, sg_vin_delivered *what, char **file,
			       char **err)
{
	sqlite3 *db = sg_store_db(store);
	g_autofree char *sha = NULL, *state = NULL, *answer = NULL, *reports = NULL;
	g_autofree char *path = NULL, *tmp = NULL, *placed = NULL;
	gint64 line = 0;
	sg_status st = SG_OK;
	sqlite3_stmt *s = NULL;
	int rc;

	*what = SG_VIN_UNKNOWN;
	*file = NULL;
	reports = sg_batch_vin_reports_dir(cfg);
	/* The report's bytes are written (and fsynced) to a temp file before the write lock is
	 * taken, so that deliveries filed at once share the disk and queue only for their
	 * commits. Only under the lock, with the row still waiting, is it renamed to the row's
	 * name: two deliveries of one row (a retry with other bytes) cannot leave the row naming
	 * the one's file while it holds the other's bytes. */
	if (d->file && !d->failed) {
		rc = find_row(db, d, body_sha256, &sha, &line, &state, &answer);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return db_err(db, rc, err);
		if (rc == SQLITE_ROW && strcmp(state, "waiting") == 0) {
			g_autofree char *dir = NULL, *name = NULL;
			report_place(reports, sha, line, answer, d->file_ext, &dir, &name);
			if ((st = write_report_temp(dir, name, d, &tmp, err)) != SG_OK)
				return st;
		}
		g_clear_pointer(&sha, g_free);
		g_clear_pointer(&state, g_free);
		g_clear_pointer(&answer, g_free);
	}
	/* Test hook: a delivery's file is written, the row not yet locked. */
	sg_pause_point("serve-file-written");
	/* IMMEDIATE: the write lock now, so the row read is the row written (a CLI re-run, a poll
	 * or another delivery may journal beside us). */
	if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK) {
		st = db_err(db, rc, err);
		goto out;
	}
	rc = find_row(db, d, body_sha256, &sha, &line, &state, &answer);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		st = db_err(db, rc, err);
		goto fail;
	}

	if (rc == SQLITE_DONE) {
		/* Nobody asked for it (or its list's journal is gone): kept for the operator, the
		 * file too, once a distinct delivery (the file is named by its hash, so a
		 * repeat writes the same bytes under the same name). A `batch vin` that journals
		 * its row waiting later takes it from here (vin_settle). */
		if (d->file) {
			g_autofree char *dir = g_build_filename(reports, "unmatched", NULL);
			g_autofree char *name = g_strdup_printf("%.16s.%s", body_sha256, d->file_ext);
			if ((st = write_report(dir, name, d, &path, err)) != SG_OK)
				goto fail;
		}
		rc = sqlite3_prepare_v2(db,
					"INSERT OR IGNORE INTO deliveries (received, body_sha256, "
					"delivery_id, vin, status, url, file) "
					"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
					-1, &s, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(s, 1, sg_now());
			sqlite3_bind_text(s, 2, body_sha256, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 3, d->id, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 4, d->vin, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 5, d->status, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 6, d->url, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 7, path, -1, SQLITE_STATIC);
			rc = sqlite3_step(s);
		}
		sqlite3_finalize(s);
		s = NULL;
		if (rc != SQLITE_DONE) {
			st = db_err(db, rc, err);
			goto fail;
		}
		if (sqlite3_changes(db) == 0) {
			*what = SG_VIN_REPEAT;
			g_clear_pointer(&path, g_free);
		}
	} else if (strcmp(state, "waiting") != 0 &&
		   !(strcmp(state, "failed") == 0 && !d->failed)) {
		/* Filed before, or failed and failed again: a repeat changes nothing (its temp
		 * file goes). (A report that comes after an error status is filed: it was paid
		 * for.) */
		*what = SG_VIN_REPEAT;
	} else {
		if (d->file && !d->failed) {
			g_autofree char *dir = NULL, *name = NULL;
			report_place(reports, sha, line, answer, d->file_ext, &dir, &name);
			/* Written above, unless the row was not waiting yet when looked at. */
			if (tmp == NULL && (st = write_report_temp(dir, name, d, &tmp, err)) != SG_OK)
				goto fail;
			if ((st = place_report(tmp, dir, name, &path, err)) != SG_OK)
				goto fail;
			g_clear_pointer(&tmp, g_free);
			placed = g_strdup(path);
		}
		rc = file_row(db, sha, line, answer, d, body_sha256, path, what, NULL);
		if (rc != SQLITE_DONE) {
			st = db_err(db, rc, err);
			goto fail;
		}
	}
	if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
		st = db_err(db, rc, err);
		goto fail;
	}
	*file = g_steal_pointer(&path);
	goto out;
fail:
	/* Still under the lock: the row's name holds nothing of a delivery not filed. */
	if (placed)
		unlink(placed);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
	if (tmp)
		unlink(tmp);
	return st;
}

/* An unknown delivery (the deliveries table) for a waiting row: by the queue's id, else one
 * that names no id by the row's VIN (a delivery with an id may be for another row of the same
 * VIN whose answer is still on its way). Of several, a report before a failure (a report that
 * comes after an error status is filed, as serve does), then the latest. SQLITE_ROW with *d,
 * *key (deliveries.id), *body_sha and *file filled; SQLITE_DONE when there is none. */
static int find_unknown(sqlite3 *db, const char *id, const char *vin, sg_delivery *d,
			gint64 *key, char **body_sha, char **file)
{
	static const char *const by_id =
		"SELECT id, body_sha256, delivery_id, vin, status, url, file FROM deliveries "
		"WHERE delivery_id = ?1 ORDER BY received DESC, id DESC";
	static const char *const by_vin =
		"SELECT id, body_sha256, delivery_id, vin, status, url, file FROM deliveries "
		"WHERE delivery_id IS NULL AND vin = ?1 ORDER BY received DESC, id DESC";
	int rc = SQLITE_DONE;

	for (int pass = 0; pass < 2 && rc == SQLITE_DONE; pass++) {
		const char *k = pass == 0 ? id : vin;
		sqlite3_stmt *s = NULL;
		bool found = false;
		if (k == NULL || *k == 0 || (pass == 1 && !vin_plain(k)))
			continue;
		if ((rc = sqlite3_prepare_v2(db, pass == 0 ? by_id : by_vin, -1, &s, NULL)) !=
		    SQLITE_OK)
			return rc;
		sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			const char *status = (const char *)sqlite3_column_text(s, 4);
			bool failed = status && sg_delivery_status_failed(status);
			if (found && (failed || !d->failed))
				continue;
			sg_delivery_clear(d);
			g_clear_pointer(body_sha, g_free);
			g_clear_pointer(file, g_free);
			*key = sqlite3_column_int64(s, 0);
			*body_sha = g_strdup((const char *)sqlite3_column_text(s, 1));
			d->id = g_strdup((const char *)sqlite3_column_text(s, 2));
			d->vin = g_strdup((const char *)sqlite3_column_text(s, 3));
			d->status = g_strdup(status);
			d->url = g_strdup((const char *)sqlite3_column_text(s, 5));
			d->failed = failed;
			*file = g_strdup((const char *)sqlite3_column_text(s, 6));
			found = true;
		}
		sqlite3_finalize(s);
		if (rc == SQLITE_DONE && found)
			rc = SQLITE_ROW;
	}
	return rc;
}

/* The kind's settle (batch.h): a waiting row takes the delivery serve kept as unknown because
 * it came before the row was journalled waiting (a fast service), its file moved to the row's
 * name, in one transaction. */
static bool vin_settle(void *state, sqlite3 *db, const char *input_sha256, sg_batch_row *row)
{
	vin_state *vs = state;
	g_autofree char *reports = NULL, *id = NULL, *vin = NULL, *body_sha = NULL;
	g_autofree char *from = NULL, *jstate = NULL, *answer = NULL, *path = NULL, *txt = NULL;
	g_autofree char *err = NULL;
	sg_delivery d = { 0 };
	sg_vin_delivered what;
	sqlite3_stmt *s = NULL;
	gint64 key = 0;
	int rc;

	if (!vs->waits || g_strcmp0(row->state, "waiting") != 0 || row->answer == NULL)
		return false;
	{
		cJSON *a = cJSON_Parse(row->answer);
		cJSON *i = cJSON_GetObjectItemCaseSensitive(a, "id");
		cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "vin");
		id = cJSON_IsString(i) ? g_strdup(i->valuestring) : NULL;
		vin = cJSON_IsString(v) ? g_strdup(v->valuestring) : NULL;
		cJSON_Delete(a);
	}
	/* A first look without the write lock: the row is journalled waiting, so a delivery
	 * that is not among the unknown ones now finds the row itself when it comes. */
	rc = find_unknown(db, id, vin, &d, &key, &body_sha, &from);
	sg_delivery_clear(&d);
	if (rc != SQLITE_ROW)
		return false;
	/* Under the lock: the row still waiting and the delivery still unknown (serve, or
	 * another run of the list, may have filed either meanwhile). */
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	rc = sqlite3_prepare_v2(db, "SELECT state, answer FROM journal WHERE kind = 'vin' AND "
				"input_sha256 = ?1 AND row = ?2", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(s, 1, input_sha256, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, row->line);
		if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			jstate = g_strdup((const char *)sqlite3_column_text(s, 0));
			answer = g_strdup((const char *)sqlite3_column_text(s, 1));
		}
	}
	sqlite3_finalize(s);
	s = NULL;
	if (g_strcmp0(jstate, "waiting") != 0 || g_strcmp0(answer, row->answer) != 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return false;
	}
	g_clear_pointer(&body_sha, g_free);
	g_clear_pointer(&from, g_free);
	if ((rc = find_unknown(db, id, vin, &d, &key, &body_sha, &from)) == SQLITE_DONE) {
		/* Another run of the list took it first. */
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return false;
	}
	if (rc != SQLITE_ROW)
		goto fail;
	reports = sg_batch_vin_reports_dir(vs->cfg);
	if (from && !d.failed) {
		/* Its file moves from unmatched/ to the row's name (the extension is ours: the
		 * name was made by serve from the bytes). */
		const char *ext = strrchr(from, '.');
		g_autofree char *dir = NULL, *name = NULL;
		if (ext == NULL || (strcmp(ext, ".pdf") != 0 && strcmp(ext, ".html") != 0)) {
			err = g_strdup_printf("%s: not a report file of serve's", from);
			goto fail;
		}
		report_place(reports, input_sha256, row->line, answer, ext + 1, &dir, &name);
		if (place_report(from, dir, name, &path, &err) != SG_OK)
			goto fail;
	}
	rc = file_row(db, input_sha256, row->line, answer, &d, body_sha, path, &what, &txt);
	if (rc == SQLITE_DONE) {
		rc = sqlite3_prepare_v2(db, "DELETE FROM deliveries WHERE id = ?1", -1, &s, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(s, 1, key);
			rc = sqlite3_step(s);
		}
		sqlite3_finalize(s);
	}
	if (rc != SQLITE_DONE || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		/* The file goes back where the deliveries table says it is. */
		if (path && rename(path, from) != 0)
			log_warnx("%s: cannot move back to %s: %s", path, from, g_strerror(errno));
		goto fail;
	}
	/* A failure's file (it came with an error status) is nobody's now. */
	if (from && path == NULL)
		unlink(from);
	log_info("vin: row %ld: the report serve received before the row was waiting is %s%s%s",
		 row->line, what == SG_VIN_FAILED ? "a failure" : "filed", path ? ": " : "",
		 path ? path : "");
	g_free(row->state);
	g_free(row->answer);
	row->state = g_strdup(what == SG_VIN_FAILED ? "failed" : "ok");
	row->answer = g_steal_pointer(&txt);
	sg_delivery_clear(&d);
	return true;
fail:
	if (err == NULL)
		err = g_strdup(sqlite3_errmsg(db));
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	/* It stays unknown; the next run (or --wait's next look) tries again. */
	log_warnx("vin: row %ld: a delivery received before the row was waiting is not filed: %s",
		  row->line, err);
	sg_delivery_clear(&d);
	return false;
}

GPtrArray *sg_batch_vin_report_files(const sg_config *cfg, sg_store *store, const char *input_sha256)
{
	sqlite3 *db = sg_store_db(store);
	sqlite3_stmt *s = NULL;
	GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
	gint64 total = 0;

	if (sqlite3_prepare_v2(db,
			       "SELECT json_extract(answer, '$.report_file') FROM journal WHERE "
			       "kind = 'vin' AND input_sha256 = ?1 AND state = 'ok' AND "
			       "json_valid(answer) ORDER BY row", -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, input_sha256, -1, SQLITE_STATIC);
		while (sqlite3_step(s) == SQLITE_ROW) {
			const char *f = (const char *)sqlite3_column_text(s, 0);
			struct stat sb;
			if (f == NULL || *f == 0 || stat(f, &sb) != 0)
				continue;
			/* Within the cap in row order; the rest are named in the CSV. */
			if (total + sb.st_size > cfg->report.max_attachment_size)
				continue;
			total += sb.st_size;
			g_ptr_array_add(files, g_strdup(f));
		}
	}
	sqlite3_finalize(s);
	g_ptr_array_add(files, NULL);
	return files;
}
