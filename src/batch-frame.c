/* batch-frame.c: batch kind `frame`: reports by Japanese frame number, seed 001
 * (setqueue → checkqueue until ready → getresult). */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <string.h>

#include "batch.h"
#include "log.h"

static const char *const a_frame[] = { "кузов", "номер кузова", "кузов №", "frame number",
				       "frame_number", "frame no", "chassis", "шасси",
				       "номер шасси", "рама", NULL };
static const sg_batch_column frame_columns[] = {
	{ "frame", a_frame, true },
};
static const char *const frame_results[] = { "id", "url", NULL };

/* Phases within the journal state "queued" (in memory: a re-run starts polling again). */
enum { PH_CHECK = 0, PH_RESULT = 1 };

/* MODEL-SERIAL: model code of 2–6 letters and digits starting with a letter, 6–7 digit serial. */
static bool is_frame(const char *s)
{
	const char *d = strchr(s, '-');
	size_t m, n;

	if (d == NULL || !g_ascii_isupper(s[0]))
		return false;
	m = (size_t)(d - s);
	if (m < 2 || m > 6)
		return false;
	for (size_t i = 0; i < m; i++)
		if (!g_ascii_isupper(s[i]) && !g_ascii_isdigit(s[i]))
			return false;
	n = strlen(d + 1);
	if (n < 6 || n > 7)
		return false;
	for (size_t i = 1; i <= n; i++)
		if (!g_ascii_isdigit(d[i]))
			return false;
	return true;
}

/* A hyphen-less frame (JZS1410055903) split before its serial: 7 digits when that leaves a model
 * code of 3 or more characters, else 6; NULL when no split makes a frame. */
static char *split_frame(const char *s)
{
	size_t n = strlen(s), digits = 0;

	while (digits < n && g_ascii_isdigit(s[n - 1 - digits]))
		digits++;
	for (size_t serial = 7; serial >= 6; serial--) {
		if (digits < serial || n - serial < 2)
			continue;
		if (serial == 7 && n - serial < 3 && digits >= 6 && n - 6 >= 2 && n - 6 <= 6)
			continue;
		g_autofree char *f = g_strdup_printf("%.*s-%s", (int)(n - serial), s, s + n - serial);
		if (is_frame(f))
			return g_steal_pointer(&f);
	}
	return NULL;
}

/* Normalises a frame number as users paste it; NULL when it is not one. */
static char *frame_normalise(const char *in)
{
	g_autofree char *up = NULL;
	GString *g;
	char *s;

	/* Cells come from the CSV reader as UTF-8; a frame is never anything else. */
	if (!g_utf8_validate(in, -1, NULL))
		return NULL;
	g = g_string_new(NULL);
	/* Dashes of every kind, blanks and underscores become one '-'; look-alikes become Latin. */
	for (const char *p = in; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (c == ' ' || c == '\t' || c == '_' || c == 0x2010 || c == 0x2011 ||
		    c == 0x2012 || c == 0x2013 || c == 0x2014 || c == 0x2212 || c == 0xA0 ||
		    c == 0x202F || c == 0xFF0D)
			c = '-';
		if (c == '-' && (g->len == 0 || g->str[g->len - 1] == '-'))
			continue;
		g_string_append_unichar(g, c);
	}
	while (g->len && g->str[g->len - 1] == '-')
		g_string_truncate(g, g->len - 1);
	up = sg_batch_latin_upper(g->str);
	g_string_free(g, TRUE);
	if (up == NULL)
		return NULL;
	s = up;
	/* A type prefix pasted from the 型式 ("DBA-", "CBA-") goes when what remains is a frame. */
	for (int drop = 0; drop < 3 && s && *s; drop++) {
		bool digits_after = true;

		if (is_frame(s))
			return g_strdup(s);
		/* Dashes only before digits were typed inside the frame ("GX 100 6012345"); the
		 * frame may also have come without its hyphen (JZS1410055903). */
		for (const char *d = strchr(s, '-'); d; d = strchr(d + 1, '-'))
			if (!g_ascii_isdigit(d[1]))
				digits_after = false;
		if (digits_after) {
			g_autofree char *bare = g_strdup(s);
			char *w = bare, *f;
			for (char *p = bare; *p; p++)
				if (*p != '-')
					*w++ = *p;
			*w = 0;
			if ((f = split_frame(bare)) && strchr(s, '-')) {
				/* Typed dashes must include the one between model and serial. */
				size_t model = (size_t)(strchr(f, '-') - f), seen = 0;
				const char *p = s;
				for (; *p && seen < model; p++)
					seen += *p != '-';
				if (*p != '-')
					g_clear_pointer(&f, g_free);
			}
			if (f)
				return f;
		}
		s = strchr(s, '-');
		if (s)
			s++;
	}
	return NULL;
}

static char *frame_validate(char **vals, const char **warning)
{
	char *f;
	g_autofree char *latin = NULL;

	if (*vals[0] == 0)
		return g_strdup("frame: empty");
	f = frame_normalise(vals[0]);
	if (f == NULL) {
		latin = sg_batch_latin_upper(vals[0]);
		if (latin && strlen(latin) == 17 && strchr(latin, '-') == NULL)
			return g_strdup_printf("frame: '%s' is a VIN, not a frame number", vals[0]);
		return g_strdup_printf("frame: '%s' is not a frame number (model code, dash, 6–7 "
				       "digit serial: GX100-6012345)", vals[0]);
	}
	g_free(vals[0]);
	vals[0] = f;
	return NULL;
}

typedef struct {
	const char *url, *key;
} frame_state;

static sg_status frame_open(const sg_config *cfg, sg_batch_conn *conn, char **err)
{
	frame_state *s;

	if (cfg->frame.url == NULL || *cfg->frame.url == 0)
		return sg_fail(err, SG_ECONFIG, "[frame] url is not set: the frame service's "
			       "reportrequestframe.ashx URL");
	if (cfg->frame.key == NULL || *cfg->frame.key == 0)
		return sg_fail(err, SG_ECONFIG, "[frame] key_file (or key) is not set: the frame "
			       "service's access key");
	s = g_new0(frame_state, 1);
	s->url = cfg->frame.url;
	s->key = cfg->frame.key;
	conn->section = "frame";
	conn->url = cfg->frame.url;
	conn->tls = &cfg->frame.tls;
	conn->state = s;
	return SG_OK;
}

static void frame_close(void *state)
{
	g_free(state);
}

/* The id journalled for a queued row, or NULL. */
static char *queued_id(const sg_batch_row *row)
{
	cJSON *j = cJSON_Parse(row->answer ? row->answer : "");
	cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
	char *out = cJSON_IsString(id) ? g_strdup(id->valuestring) : NULL;

	cJSON_Delete(j);
	return out;
}

static char *frame_url(const frame_state *s, const char *mode, const char *name, const char *val)
{
	char *k = curl_easy_escape(NULL, s->key, 0);
	char *v = curl_easy_escape(NULL, val, 0);
	char *u = g_strdup_printf("%s%skey=%s&mode=%s&%s=%s", s->url,
				  strchr(s->url, '?') ? "&" : "?", k, mode, name, v);

	curl_free(k);
	curl_free(v);
	return u;
}

static bool frame_next(void *state, sg_batch_row *row, sg_batch_call *call)
{
	frame_state *s = state;

	if (row->state == NULL || strcmp(row->state, "sent") == 0) {
		call->url = frame_url(s, "setqueue", "frame", row->vals[0]);
		call->charged = true;
		call->what = "setqueue";
		return true;
	}
	if (strcmp(row->state, "queued") == 0) {
		g_autofree char *id = queued_id(row);
		if (id == NULL)
			return false;
		call->url = frame_url(s, row->phase == PH_RESULT ? "getresult" : "checkqueue", "id",
				      id);
		call->what = row->phase == PH_RESULT ? "getresult" : "checkqueue";
		return true;
	}
	return false;
}

/* An error the service gives for the key or the account rather than for this row. */
static bool access_error(const char *msg)
{
	g_autofree char *m = g_utf8_casefold(msg, -1);
	static const char *const words[] = { "key", "ключ", "доступ", "access", "закончил",
					      "exhausted", "balance", "баланс", "auth" };

	for (size_t i = 0; i < G_N_ELEMENTS(words); i++)
		if (strstr(m, words[i]))
			return true;
	return false;
}

static char *num_or_str(const cJSON *v)
{
	if (cJSON_IsString(v) && *v->valuestring)
		return g_strdup(v->valuestring);
	if (cJSON_IsNumber(v))
		return g_strdup_printf("%.0f", v->valuedouble);
	return NULL;
}

static sg_step frame_answer(void *state, sg_batch_row *row, long http, const char *body,
			    size_t len)
{
	cJSON *j = cJSON_ParseWithLength(body, len);
	cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	cJSON *em = cJSON_GetObjectItemCaseSensitive(j, "error_msg");
	bool setqueue = row->state == NULL || strcmp(row->state, "sent") == 0;
	sg_step step = SG_STEP_DONE;

	if (!cJSON_IsObject(j)) {
		row->error = g_strdup_printf("HTTP %ld: the answer is not JSON", http);
		goto out;
	}
	if (cJSON_IsTrue(e) || http >= 300) {
		const char *msg = cJSON_IsString(em) ? em->valuestring : "error";
		row->error = g_strdup_printf("%s%s", msg, http >= 300 ? " (HTTP error)" : "");
		if (access_error(msg))
			step = SG_STEP_STOP;
		goto out;
	}
	if (setqueue) {
		g_autofree char *id = num_or_str(cJSON_GetObjectItemCaseSensitive(j, "id"));
		if (id == NULL) {
			row->error = g_strdup("setqueue: the answer has no id");
			goto out;
		}
		cJSON *a = cJSON_CreateObject();
		cJSON_AddStringToObject(a, "id", id);
		char *txt = cJSON_PrintUnformatted(a);
		g_free(row->state);
		g_free(row->answer);
		row->state = g_strdup("queued");
		row->answer = g_strdup(txt);
		cJSON_free(txt);
		cJSON_Delete(a);
		row->phase = PH_CHECK;
		step = SG_STEP_WAIT;
		goto out;
	}
	if (row->phase == PH_CHECK) {
		cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
		int status = cJSON_IsNumber(st) ? st->valueint
			     : cJSON_IsString(st) ? (int)g_ascii_strtoll(st->valuestring, NULL, 10)
						  : -100;
		if (status == 1) {
			row->phase = PH_RESULT;
			step = SG_STEP_NEXT;
		} else if (status == 0) {
			step = SG_STEP_WAIT;
		} else {
			row->error = g_strdup_printf("checkqueue: report generation failed "
						     "(status %d)", status);
		}
		goto out;
	}
	{
		g_autofree char *url = num_or_str(cJSON_GetObjectItemCaseSensitive(j, "url"));
		g_autofree char *id = queued_id(row);
		if (url == NULL) {
			/* Ready but no link yet: look again later. */
			row->phase = PH_CHECK;
			step = SG_STEP_WAIT;
			goto out;
		}
		cJSON *a = cJSON_CreateObject();
		cJSON_AddStringToObject(a, "id", id ? id : "");
		cJSON_AddStringToObject(a, "url", url);
		char *txt = cJSON_PrintUnformatted(a);
		g_free(row->state);
		g_free(row->answer);
		row->state = g_strdup("ok");
		row->answer = g_strdup(txt);
		cJSON_free(txt);
		cJSON_Delete(a);
	}
out:
	cJSON_Delete(j);
	return step;
}

const sg_batch_kind sg_batch_frame = {
	.name = "frame",
	.columns = frame_columns,
	.ncolumns = G_N_ELEMENTS(frame_columns),
	.result_columns = frame_results,
	.polls = true,
	.open = frame_open,
	.close = frame_close,
	.validate = frame_validate,
	.next = frame_next,
	.answer = frame_answer,
};

/* For the unit test: the normalised frame, or NULL. */
char *sg_batch_frame_normalise(const char *in);
char *sg_batch_frame_normalise(const char *in)
{
	return frame_normalise(in);
}
