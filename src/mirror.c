/* mirror.c: the dealer REST API client of seed 004 (SPEC 8): warehouses by diff, remains streamed. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <sqlite3.h>
#include <string.h>

#include "log.h"
#include "mirror.h"

#ifndef SG_VERSION
#define SG_VERSION "0"
#endif

#define MAX_ANSWER (64 << 20) /* a warehouse.list of this size is not a dealer's */
#define LIST_MAX 20           /* codes named in a detail before "and N more" */
#define DOWN_SECONDS 30       /* after a connection failure, later calls of this run defer at once */
#define MAX_RETRY_AFTER 3600

struct sg_mirror {
	CURL *curl;
	struct curl_slist *headers;
	char *base;    /* url without a trailing '/' (what requests are built from) */
	char *display; /* the url without user info, for messages */
	int timeout;
	int batch_size;
	GString *answer;
	bool too_big;
	char errbuf[CURL_ERROR_SIZE];
	gint64 down_until; /* monotonic µs: calls before it defer without a request */
	char *down_why;
	/* what the last call ended with, for ping */
	CURLcode last_cc;
	long last_http;
};

/* ---------------------------------------------------------------- pure parts */

sg_mirror_wh *sg_mirror_wh_new(const char *code, const char *address, const char *contacts)
{
	sg_mirror_wh *w = g_new(sg_mirror_wh, 1);
	w->code = g_strdup(code ? code : "");
	w->address = g_strdup(address ? address : "");
	w->contacts = g_strdup(contacts ? contacts : "");
	return w;
}

void sg_mirror_wh_free(void *p)
{
	sg_mirror_wh *w = p;
	if (!w)
		return;
	g_free(w->code);
	g_free(w->address);
	g_free(w->contacts);
	g_free(w);
}

static gint wh_cmp(gconstpointer a, gconstpointer b)
{
	const sg_mirror_wh *x = *(sg_mirror_wh *const *)a, *y = *(sg_mirror_wh *const *)b;
	return strcmp(x->code, y->code);
}

void sg_mirror_diff(GPtrArray *server, GPtrArray *want, GPtrArray *add, GPtrArray *upd,
		    GPtrArray *del)
{
	g_autoptr(GHashTable) have = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GHashTable) wanted = g_hash_table_new(g_str_hash, g_str_equal);

	for (guint i = 0; i < server->len; i++) {
		sg_mirror_wh *w = g_ptr_array_index(server, i);
		g_hash_table_insert(have, w->code, w);
	}
	for (guint i = 0; i < want->len; i++) {
		sg_mirror_wh *w = g_ptr_array_index(want, i), *s;
		g_hash_table_insert(wanted, w->code, w);
		s = g_hash_table_lookup(have, w->code);
		if (!s)
			g_ptr_array_add(add, w);
		else if (strcmp(s->address, w->address) != 0 || strcmp(s->contacts, w->contacts) != 0)
			g_ptr_array_add(upd, w);
	}
	for (guint i = 0; i < server->len; i++) {
		sg_mirror_wh *w = g_ptr_array_index(server, i);
		/* A code listed twice by the server is deleted once. */
		if (!g_hash_table_contains(wanted, w->code) && g_hash_table_lookup(have, w->code) == w)
			g_ptr_array_add(del, w);
	}
	g_ptr_array_sort(add, wh_cmp);
	g_ptr_array_sort(upd, wh_cmp);
	g_ptr_array_sort(del, wh_cmp);
}

/* Adds the messages of one JSON value to out (g_free'd strings): a string, a number, an array
 * or an object of them. */
static void collect_messages(GPtrArray *out, const cJSON *v)
{
	const cJSON *it;

	if (!v)
		return;
	if (cJSON_IsString(v)) {
		g_ptr_array_add(out, g_strdup(v->valuestring));
		return;
	}
	if (cJSON_IsNumber(v)) {
		g_ptr_array_add(out, g_strdup_printf("%g", v->valuedouble));
		return;
	}
	cJSON_ArrayForEach(it, v) collect_messages(out, it);
}

/* The server's messages of a parsed answer (status.messages), one a string. */
static GPtrArray *answer_messages(const cJSON *root)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(root, "status");

	if (cJSON_IsObject(status))
		collect_messages(out, cJSON_GetObjectItemCaseSensitive(status, "messages"));
	return out;
}

char *sg_mirror_messages(const struct cJSON *root)
{
	g_autoptr(GPtrArray) msgs = answer_messages(root);

	g_ptr_array_add(msgs, NULL);
	return g_strjoinv("\n", (char **)msgs->pdata);
}

static const char *status_code(const cJSON *root)
{
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(root, "status");
	const cJSON *code = cJSON_IsObject(status) ? cJSON_GetObjectItemCaseSensitive(status, "code")
						   : NULL;
	return cJSON_IsString(code) ? code->valuestring : NULL;
}

sg_status sg_mirror_parse_answer(long http, const char *body, size_t len, struct cJSON **root,
				 char **err)
{
	cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
	const char *code = j && cJSON_IsObject(j) ? status_code(j) : NULL;
	g_autofree char *msgs = code ? sg_mirror_messages(j) : NULL;
	sg_status st;

	*root = NULL;
	if (http >= 500 || http == 429 || http == 408) {
		st = sg_fail(err, SG_ETEMP, "HTTP %ld%s%s", http, msgs && *msgs ? ": " : "",
			     msgs ? msgs : "");
	} else if (http < 200 || http >= 300) {
		/* A wrong key or url does not get better by waiting: report it. */
		st = sg_fail(err, SG_EDATA, "HTTP %ld%s%s%s", http,
			     http >= 300 && http < 400 ? " (a redirect; redirects are not followed)"
							: "",
			     msgs && *msgs ? ": " : "", msgs ? msgs : "");
	} else if (!code) {
		/* Not the API's answer (a proxy's page, a cut body): the change may or may not have
		 * been made, and the next run recomputes it, so try again later. */
		st = sg_fail(err, SG_ETEMP, "HTTP %ld: the answer is not the API's JSON (%s)", http,
			     !j ? "unparseable" : "no status.code");
	} else if (strcmp(code, "ok") != 0) {
		st = sg_fail(err, SG_EDATA, "status %s%s%s", code, *msgs ? ": " : "", msgs);
	} else {
		*root = j;
		return SG_OK;
	}
	cJSON_Delete(j);
	return st;
}

static char *json_text(const cJSON *v)
{
	if (cJSON_IsString(v))
		return g_strdup(v->valuestring);
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		/* A code sent as a number: whole numbers in gint64 range as integers; a cast of
		 * anything else would be undefined. */
		if (d > -9.2e18 && d < 9.2e18 && d == (double)(gint64)d)
			return g_strdup_printf("%" G_GINT64_FORMAT, (gint64)d);
		return g_strdup_printf("%.17g", d);
	}
	return NULL;
}

sg_status sg_mirror_parse_list(const struct cJSON *root, GPtrArray **out, char **err)
{
	const cJSON *whs = cJSON_GetObjectItemCaseSensitive(root, "warehouses"), *it;
	g_autoptr(GPtrArray) a = g_ptr_array_new_with_free_func(sg_mirror_wh_free);

	*out = NULL;
	/* No warehouses yet: the key may be missing, null, or PHP's empty array/object. */
	if (whs && !cJSON_IsNull(whs) && !cJSON_IsArray(whs) && !cJSON_IsObject(whs))
		return sg_fail(err, SG_ETEMP, "warehouse.list: \"warehouses\" is not a list");
	cJSON_ArrayForEach(it, whs)
	{
		g_autofree char *code = NULL, *address = NULL, *contacts = NULL;
		if (!cJSON_IsObject(it))
			return sg_fail(err, SG_ETEMP, "warehouse.list: an item is not an object");
		code = json_text(cJSON_GetObjectItemCaseSensitive(it, "code"));
		if (!code || !*code)
			return sg_fail(err, SG_ETEMP, "warehouse.list: an item has no code");
		address = json_text(cJSON_GetObjectItemCaseSensitive(it, "address"));
		contacts = json_text(cJSON_GetObjectItemCaseSensitive(it, "contacts"));
		g_ptr_array_add(a, sg_mirror_wh_new(code, address, contacts));
	}
	*out = g_steal_pointer(&a);
	return SG_OK;
}

/* ---------------------------------------------------------------- the client */

static size_t on_answer(char *data, size_t size, size_t n, void *vm)
{
	sg_mirror *m = vm;
	size_t len = size * n;

	if (m->answer->len + len > MAX_ANSWER) {
		m->too_big = true;
		return 0;
	}
	g_string_append_len(m->answer, data, len);
	return len;
}

static void init_curl_once(void)
{
	static gsize done;
	if (g_once_init_enter(&done)) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		g_once_init_leave(&done, 1);
	}
}

/* The url without user info, for messages. */
static char *display_url(const char *url)
{
	CURLU *u = curl_url();
	char *s = NULL, *out;

	if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK) {
		curl_url_set(u, CURLUPART_USER, NULL, 0);
		curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
		curl_url_get(u, CURLUPART_URL, &s, 0);
	}
	out = g_strdup(s ? s : "[mirror] url");
	curl_free(s);
	curl_url_cleanup(u);
	return out;
}

sg_status sg_mirror_open(const sg_config *cfg, sg_mirror **out, char **err)
{
	const char *url = cfg->mirror.url;
	sg_mirror *m;
	size_t n;

	*out = NULL;
	if (!url || !*url)
		return SG_OK;
	init_curl_once();
	m = g_new0(sg_mirror, 1);
	m->base = g_strdup(url);
	n = strlen(m->base);
	while (n > 0 && m->base[n - 1] == '/')
		m->base[--n] = '\0';
	m->display = display_url(m->base);
	m->timeout = cfg->mirror.timeout > 0 ? cfg->mirror.timeout : 30;
	m->batch_size = cfg->mirror.batch_size > 0 ? cfg->mirror.batch_size : 500;
	m->answer = g_string_new(NULL);
	m->curl = curl_easy_init();
	if (!m->curl) {
		sg_mirror_close(m);
		return sg_fail(err, SG_EINTERNAL, "[mirror]: cannot start the HTTP client");
	}
	m->headers = curl_slist_append(NULL, "Content-Type: application/json; charset=utf-8");
	m->headers = curl_slist_append(m->headers, "Accept: application/json");
	m->headers = curl_slist_append(m->headers, "Expect:"); /* no 100-continue round trip */

	CURL *c = m->curl;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* The key is in the body: never follow a redirect with it (P15, K7). */
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, cfg->mirror.tls.off ? "http,https" : "https");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (cfg->mirror.tls.ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, cfg->mirror.tls.ca_file);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)m->timeout);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)m->timeout);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "stockgate/" SG_VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, m->headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, m);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, m->errbuf);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_VERBOSE, 0L); /* verbose output would show the key */
	*out = m;
	return SG_OK;
}

void sg_mirror_close(sg_mirror *m)
{
	if (!m)
		return;
	if (m->curl)
		curl_easy_cleanup(m->curl);
	curl_slist_free_all(m->headers);
	if (m->answer)
		g_string_free(m->answer, TRUE);
	g_free(m->base);
	g_free(m->display);
	g_free(m->down_why);
	g_free(m);
}

/* What a transport failure was, in plain words. */
static char *transport_words(sg_mirror *m, CURLcode cc)
{
	g_autofree char *host = NULL;
	CURLU *u = curl_url();
	char *h = NULL;
	const char *detail = *m->errbuf ? m->errbuf : curl_easy_strerror(cc);

	if (u && curl_url_set(u, CURLUPART_URL, m->base, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK)
		curl_url_get(u, CURLUPART_HOST, &h, 0);
	host = g_strdup(h ? h : "the server");
	curl_free(h);
	curl_url_cleanup(u);

	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		return g_strdup_printf("DNS: cannot resolve host %s", host);
	case CURLE_COULDNT_RESOLVE_PROXY:
		return g_strdup_printf("DNS: cannot resolve the proxy (%s)", detail);
	case CURLE_COULDNT_CONNECT:
		return g_strdup_printf("cannot connect to %s: connection refused or unreachable (%s)",
				       host, detail);
	case CURLE_OPERATION_TIMEDOUT:
		return g_strdup_printf("timeout: no complete answer within %d s", m->timeout);
	case CURLE_PEER_FAILED_VERIFICATION:
		return g_strdup_printf("TLS: the certificate of %s is not trusted (%s); add its CA with "
				       "[mirror] ca_file",
				       host, detail);
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
		return g_strdup_printf("TLS: handshake with %s failed (%s)", host, detail);
	case CURLE_UNSUPPORTED_PROTOCOL:
		return g_strdup_printf("the url's scheme is not allowed (%s): https://, or http:// "
				       "with tls = off",
				       detail);
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return g_strdup_printf("the connection to %s dropped before a complete answer (%s)",
				       host, detail);
	case CURLE_WRITE_ERROR:
		if (m->too_big)
			return g_strdup_printf("the answer is larger than %d MiB", MAX_ANSWER >> 20);
		/* fall through */
	default:
		return g_strdup_printf("%s (%s)", curl_easy_strerror(cc), detail);
	}
}

/* A request body read from the stored remains list as it is sent (remains.add). */
typedef struct {
	sg_remains_reader *rd;
	char *head; /* {"hash":…,"code":…,"products":[ */
	int phase;  /* 0 head, 1 rows, 2 tail, 3 done */
	bool first;
	GString *buf;
	size_t pos;
	long rows;
	bool done;   /* the whole body was produced */
	bool failed; /* reading the list failed (sg_remains_close says why) */
} rem_stream;

static void json_string(GString *s, const char *v)
{
	g_string_append_c(s, '"');
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_c(s, '\\'), g_string_append_c(s, (char)*p);
		else if (*p < 0x20)
			g_string_append_printf(s, "\\u%04x", *p);
		else
			g_string_append_c(s, (char)*p);
	}
	g_string_append_c(s, '"');
}

static void rem_rewind(rem_stream *r)
{
	sg_remains_rewind(r->rd);
	r->phase = 0;
	r->first = true;
	g_string_truncate(r->buf, 0);
	r->pos = 0;
	r->rows = 0;
	r->done = r->failed = false;
}

/* Refills r->buf with the next piece of the body; false at the end or on an error. */
static bool rem_next(rem_stream *r)
{
	g_string_truncate(r->buf, 0);
	r->pos = 0;
	switch (r->phase) {
	case 0:
		g_string_append(r->buf, r->head);
		r->phase = 1;
		return true;
	case 1:
		/* Up to 64 rows a piece, to keep the callbacks few. */
		for (int i = 0; i < 64; i++) {
			const char *w, *article;
			long long qty;
			if (!sg_remains_next(r->rd, &w, &article, &qty)) {
				r->phase = 2;
				if (sg_remains_error(r->rd, NULL)) {
					r->failed = true;
					r->phase = 3;
					return false;
				}
				break;
			}
			if (!r->first)
				g_string_append_c(r->buf, ',');
			r->first = false;
			g_string_append(r->buf, "{\"article\":");
			json_string(r->buf, article);
			g_string_append_printf(r->buf, ",\"quantity\":%lld}", qty);
			r->rows++;
		}
		return true;
	case 2:
		g_string_append(r->buf, "]}");
		r->phase = 3;
		r->done = true;
		return true;
	default:
		return false;
	}
}

static size_t rem_read(char *out, size_t size, size_t n, void *vr)
{
	rem_stream *r = vr;
	size_t room = size * n, got = 0;

	while (got < room) {
		if (r->pos >= r->buf->len) {
			if (!rem_next(r))
				break;
			continue;
		}
		size_t k = MIN(room - got, r->buf->len - r->pos);
		memcpy(out + got, r->buf->str + r->pos, k);
		r->pos += k;
		got += k;
	}
	if (got == 0 && !r->done)
		return CURL_READFUNC_ABORT;
	return got;
}

static int rem_seek(void *vr, curl_off_t offset, int origin)
{
	if (offset != 0 || origin != SEEK_SET)
		return CURL_SEEKFUNC_CANTSEEK;
	rem_rewind(vr);
	return CURL_SEEKFUNC_OK;
}

/* Whether an earlier failure of this run says not to try now (*err then says why). */
static bool is_down(sg_mirror *m, const char *action, char **err)
{
	if (!m->down_until || g_get_monotonic_time() >= m->down_until)
		return false;
	sg_fail(err, SG_ETEMP, "%s: not sent: %s", action, m->down_why);
	return true;
}

/*
 * POSTs one request to {url}/ACTION.json: body (small, in memory) or stream. Returns SG_OK with
 * *root, SG_EDATA or SG_ETEMP with *err "ACTION: what" (never the key).
 */
static sg_status call(sg_mirror *m, const char *action, const char *body, rem_stream *stream,
		      curl_off_t stream_len, cJSON **root, char **err)
{
	g_autofree char *url = g_strdup_printf("%s/%s.json", m->base, action);
	g_autofree char *why = NULL;
	CURL *c = m->curl;
	CURLcode cc;
	long http = 0, total = m->timeout;
	gint64 t0 = g_get_monotonic_time();
	sg_status st;

	*root = NULL;
	m->last_cc = CURLE_OK;
	m->last_http = 0;
	if (is_down(m, action, err))
		return SG_ETEMP;

	g_string_truncate(m->answer, 0);
	m->too_big = false;
	m->errbuf[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (stream) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, stream_len);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, rem_read);
		curl_easy_setopt(c, CURLOPT_READDATA, stream);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, rem_seek);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, stream);
		/* A big file takes longer to send than a small answer: one more second a MiB. */
		total += (long)(stream_len >> 20);
	} else {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_TIMEOUT, total);
	cc = curl_easy_perform(c);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, NULL);
	curl_easy_setopt(c, CURLOPT_READDATA, NULL);
	curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, NULL);
	curl_easy_setopt(c, CURLOPT_SEEKDATA, NULL);
	m->last_cc = cc;

	if (cc == CURLE_ABORTED_BY_CALLBACK && stream && stream->failed) {
		g_autofree char *e = NULL;
		sg_status rs = sg_remains_error(stream->rd, &e);
		return sg_fail(err, rs ? rs : SG_EIO, "%s: %s", action, e ? e : "reading remains");
	}
	if (cc != CURLE_OK) {
		why = transport_words(m, cc);
		g_free(m->down_why);
		m->down_why = g_strdup_printf("%s: %s", m->display, why);
		m->down_until = g_get_monotonic_time() + (gint64)DOWN_SECONDS * G_USEC_PER_SEC;
		return sg_fail(err, SG_ETEMP, "%s %s: %s", m->display, action, why);
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
	m->last_http = http;
	st = sg_mirror_parse_answer(http, m->answer->str, m->answer->len, root, &why);
	if (st == SG_OK) {
		log_debug("mirror: %s: HTTP %ld in %.2f s", action, http,
			  (g_get_monotonic_time() - t0) / 1e6);
		return SG_OK;
	}
	if (http == 429) {
		curl_off_t after = 0;
		curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &after);
		if (after <= 0)
			after = DOWN_SECONDS;
		if (after > MAX_RETRY_AFTER)
			after = MAX_RETRY_AFTER;
		g_free(m->down_why);
		m->down_why = g_strdup_printf("%s asked to wait %ld s (HTTP 429)", m->display,
					      (long)after);
		m->down_until = g_get_monotonic_time() + (gint64)after * G_USEC_PER_SEC;
		return sg_fail(err, SG_ETEMP, "%s %s: HTTP 429 (too many requests; Retry-After %ld s)",
			       m->display, action, (long)after);
	}
	return sg_fail(err, st, "%s %s: %s", m->display, action, why);
}

/*
 * The record of a refused file (SPEC 8): one error a message of the server's answer that the
 * last call left in m->answer, code mirror_error, no line or column; when the server said
 * nothing (an HTTP status alone), one error with why.
 */
static void refusal_errors(sg_mirror *m, sg_file_result *fr, const char *why)
{
	cJSON *j = cJSON_ParseWithLength(m->answer->str, m->answer->len);
	g_autoptr(GPtrArray) msgs = answer_messages(j);

	cJSON_Delete(j);
	for (guint i = 0; i < msgs->len; i++)
		sg_file_error(fr, 0, NULL, "mirror_error", NULL, "%s",
			      (const char *)msgs->pdata[i]);
	if (msgs->len == 0)
		sg_file_error(fr, 0, NULL, "mirror_error", NULL, "%s", why);
}

/* Wipes a request body that held the key before freeing it. */
static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		cJSON_free(s);
	}
}

static cJSON *new_body(const char *key)
{
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "hash", key ? key : "");
	return b;
}

/* The body as text; the tree (which holds the key) is wiped and freed. */
static char *body_text(cJSON *b)
{
	char *text = cJSON_PrintUnformatted(b);
	cJSON *h = cJSON_GetObjectItemCaseSensitive(b, "hash");

	if (cJSON_IsString(h))
		explicit_bzero(h->valuestring, strlen(h->valuestring));
	cJSON_Delete(b);
	return text;
}

/* A short list of codes: "A, B, C and 12 more". */
static void append_codes(GString *s, GPtrArray *codes)
{
	for (guint i = 0; i < codes->len && i < LIST_MAX; i++)
		g_string_append_printf(s, "%s%s", i ? ", " : "", (char *)g_ptr_array_index(codes, i));
	if (codes->len > LIST_MAX)
		g_string_append_printf(s, " and %u more", codes->len - LIST_MAX);
}

/* What the server took before a failure, for the detail and the log. */
static char *progress_text(GPtrArray *done_add, GPtrArray *done_upd, GPtrArray *done_del)
{
	GString *s = g_string_new(NULL);
	struct {
		const char *what;
		GPtrArray *a;
	} parts[] = { { "added", done_add }, { "updated", done_upd }, { "deleted", done_del } };

	for (size_t i = 0; i < G_N_ELEMENTS(parts); i++) {
		if (!parts[i].a->len)
			continue;
		g_string_append_printf(s, "%s%s %u (", s->len ? "; " : "", parts[i].what,
				       parts[i].a->len);
		append_codes(s, parts[i].a);
		g_string_append_c(s, ')');
	}
	if (!s->len)
		g_string_append(s, "nothing");
	return g_string_free(s, FALSE);
}

static sg_status read_stage_wh(sg_store *st, GPtrArray **out, char **err)
{
	sqlite3 *db = sg_store_db(st);
	sqlite3_stmt *s = NULL;
	GPtrArray *a = g_ptr_array_new_with_free_func(sg_mirror_wh_free);
	int rc;

	*out = NULL;
	rc = sqlite3_prepare_v2(db,
				"SELECT code, address, contacts FROM temp.stage_wh ORDER BY code", -1,
				&s, NULL);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		if ((rc = sqlite3_step(s)) != SQLITE_ROW)
			break;
		g_ptr_array_add(a, sg_mirror_wh_new((const char *)sqlite3_column_text(s, 0),
						    (const char *)sqlite3_column_text(s, 1),
						    (const char *)sqlite3_column_text(s, 2)));
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		g_ptr_array_unref(a);
		return sg_fail(err, SG_EIO, "mirror: reading the staged warehouses: %s",
			       sqlite3_errmsg(db));
	}
	*out = a;
	return SG_OK;
}

/* Sends the items of one kind of change in batches; the codes the server took go to done. */
static sg_status send_batches(sg_mirror *m, const char *key, const char *action, GPtrArray *items,
			      bool codes_only, GPtrArray *done, GPtrArray *refused, char **err)
{
	for (guint i = 0; i < items->len; i += (guint)m->batch_size) {
		guint end = MIN(items->len, i + (guint)m->batch_size);
		cJSON *b = new_body(key), *arr = cJSON_AddArrayToObject(b, "warehouses"), *root = NULL;
		char *text;
		sg_status st;

		for (guint k = i; k < end; k++) {
			sg_mirror_wh *w = g_ptr_array_index(items, k);
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "code", w->code);
			if (!codes_only) {
				cJSON_AddStringToObject(o, "address", w->address);
				cJSON_AddStringToObject(o, "contacts", w->contacts);
			}
			cJSON_AddItemToArray(arr, o);
		}
		text = body_text(b);
		st = call(m, action, text, NULL, 0, &root, err);
		free_secret(text);
		if (st == SG_OK) {
			g_autofree char *msgs = sg_mirror_messages(root);
			if (*msgs)
				log_debug("mirror: %s: %s", action, msgs);
			for (guint k = i; k < end; k++)
				g_ptr_array_add(done, ((sg_mirror_wh *)g_ptr_array_index(items, k))->code);
		} else {
			for (guint k = i; k < end; k++)
				g_ptr_array_add(refused,
						((sg_mirror_wh *)g_ptr_array_index(items, k))->code);
		}
		cJSON_Delete(root);
		if (st != SG_OK)
			return st;
	}
	return SG_OK;
}

sg_status sg_mirror_warehouses(sg_mirror *m, const char *key, sg_store *st, sg_file_result *fr,
			       char **err)
{
	g_autoptr(GPtrArray) server = NULL, want = NULL;
	g_autoptr(GPtrArray) add = g_ptr_array_new(), upd = g_ptr_array_new(),
			     del = g_ptr_array_new();
	g_autoptr(GPtrArray) done_add = g_ptr_array_new(), done_upd = g_ptr_array_new(),
			     done_del = g_ptr_array_new(), refused = g_ptr_array_new();
	g_autofree char *e = NULL;
	cJSON *root = NULL;
	const char *action = "warehouse.list";
	sg_status ret;

	if (!m)
		return SG_OK;
	{
		char *text = body_text(new_body(key));
		ret = call(m, action, text, NULL, 0, &root, &e);
		free_secret(text);
	}
	if (ret == SG_OK) {
		ret = sg_mirror_parse_list(root, &server, &e);
		cJSON_Delete(root);
	}
	if (ret == SG_OK)
		ret = read_stage_wh(st, &want, &e);
	if (ret != SG_OK)
		goto fail;

	sg_mirror_diff(server, want, add, upd, del);
	/* Adds and updates first, deletions last (P4): a failure part-way never leaves the
	 * server with fewer warehouses than the file asked for. */
	action = "warehouse.add";
	ret = send_batches(m, key, action, add, false, done_add, refused, &e);
	if (ret == SG_OK) {
		action = "warehouse.update";
		ret = send_batches(m, key, action, upd, false, done_upd, refused, &e);
	}
	if (ret == SG_OK) {
		action = "warehouse.delete";
		ret = send_batches(m, key, action, del, true, done_del, refused, &e);
	}
	if (ret != SG_OK)
		goto fail;
	log_info("mirror: warehouses: %u added, %u updated, %u deleted, %u unchanged on %s",
		 add->len, upd->len, del->len, want->len - add->len - upd->len, m->display);
	return SG_OK;

fail:
	{
		g_autofree char *progress = progress_text(done_add, done_upd, done_del);
		g_autoptr(GString) codes = g_string_new(NULL);
		append_codes(codes, refused);
		if (ret == SG_EDATA) {
			sg_file_reject(fr, "mirror_error",
				       "the mirror refused %s%s%s%s: %s\nalready accepted by the "
				       "mirror: %s",
				       action, codes->len ? " (" : "", codes->str,
				       codes->len ? ")" : "", e, progress);
			refusal_errors(m, fr, e);
			log_warnx("mirror: %s refused: %s; already accepted: %s", action, e, progress);
			return SG_EDATA;
		}
		return sg_fail(err, ret, "%s (already accepted: %s)", e, progress);
	}
}

sg_status sg_mirror_remains(sg_mirror *m, const char *key, const char *dealer, const char *code,
			    sg_store *st, sg_file_result *fr, char **err)
{
	g_autofree char *e = NULL;
	cJSON *root = NULL;
	rem_stream r = { 0 };
	curl_off_t len = 0;
	sg_status ret;

	if (!m)
		return SG_OK;
	if (!code || !*code)
		return sg_fail(err, SG_EINTERNAL, "mirror: remains without a warehouse code");
	if (is_down(m, "remains.add", err))
		return SG_ETEMP;
	if ((ret = sg_remains_open(st, dealer, code, &r.rd, err)))
		return ret;
	{
		GString *h = g_string_new("{\"hash\":");
		json_string(h, key ? key : "");
		g_string_append(h, ",\"code\":");
		json_string(h, code);
		g_string_append(h, ",\"products\":[");
		r.head = g_string_free(h, FALSE);
	}
	r.buf = g_string_new(NULL);

	/* First pass: the exact length, so that the body is sent with a Content-Length and never
	 * held whole in memory. */
	rem_rewind(&r);
	while (rem_next(&r))
		len += (curl_off_t)r.buf->len;
	if (!r.done) {
		ret = sg_remains_error(r.rd, err);
		ret = ret ? ret : sg_fail(err, SG_EIO, "mirror: reading the remains failed");
		goto out;
	}
	long rows = r.rows;
	rem_rewind(&r);
	ret = call(m, "remains.add", NULL, &r, len, &root, &e);
	if (ret == SG_OK && r.rows != rows)
		ret = sg_fail(&e, SG_EINTERNAL, "remains.add: sent %ld products of %ld", r.rows,
			      rows);
	if (ret == SG_OK) {
		g_autofree char *msgs = sg_mirror_messages(root);
		g_strdelimit(msgs, "\n", ';');
		log_info("mirror: remains of %s: %ld products sent to %s%s%s", code, rows,
			 m->display, *msgs ? ": " : "", msgs);
	} else if (ret == SG_EDATA) {
		sg_file_reject(fr, "mirror_error", "the mirror refused the remains of %s: %s", code,
			       e);
		refusal_errors(m, fr, e);
		log_warnx("mirror: remains.add for %s refused: %s", code, e);
	} else {
		sg_fail(err, ret, "%s", e);
	}
	cJSON_Delete(root);
out:
	sg_remains_close(r.rd);
	explicit_bzero(r.head, strlen(r.head));
	g_free(r.head);
	if (r.buf) {
		explicit_bzero(r.buf->str, r.buf->allocated_len);
		g_string_free(r.buf, TRUE);
	}
	return ret;
}

sg_status sg_mirror_ping(sg_mirror *m, const char *key, long *count, char **err)
{
	g_autofree char *e = NULL;
	g_autoptr(GPtrArray) list = NULL;
	cJSON *root = NULL;
	char *text = body_text(new_body(key));
	sg_status st;

	*count = -1;
	st = call(m, "warehouse.list", text, NULL, 0, &root, &e);
	free_secret(text);
	if (st == SG_OK) {
		st = sg_mirror_parse_list(root, &list, &e);
		cJSON_Delete(root);
		if (st == SG_OK) {
			*count = (long)list->len;
			return SG_OK;
		}
		return sg_fail(err, SG_EUNAVAIL, "%s answers, but not as the dealer API: %s",
			       m->display, e);
	}
	if (m->last_cc != CURLE_OK)
		return sg_fail(err, SG_EUNAVAIL, "%s", e);
	if (st == SG_EDATA && (m->last_http == 401 || m->last_http == 403 ||
			       (m->last_http >= 200 && m->last_http < 300))) {
		if (!key)
			return SG_OK; /* it answers as the API does; no key to judge */
		return sg_fail(err, SG_EDATA, "the key is refused: %s", e);
	}
	if (m->last_http == 404)
		return sg_fail(err, SG_EUNAVAIL,
			       "%s: check [mirror] url: it is the API's base, ending in /restapi", e);
	if (st == SG_ETEMP && m->last_http >= 200 && m->last_http < 300)
		return sg_fail(err, SG_EUNAVAIL, "%s: bad JSON: %s", m->display, e);
	return sg_fail(err, SG_EUNAVAIL, "%s", e);
}
