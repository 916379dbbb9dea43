/* probe.c: `config check --connect`: logs in to each peer, or asks it a free question, and says
 * in plain words what works and what does not. No message is sent and no call is charged. */
#include "probe.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "imap.h"
#include "mirror.h"
#include "util.h"

/* Vendor API checks: a connection within this, the whole question within the second. */
#define HTTP_CONNECT_TIMEOUT 10
#define HTTP_TIMEOUT 30
#define MAX_ANSWER (1 << 20)

char *sg_probe_curl_words(int curlcode, const char *detail)
{
	const char *w;

	switch ((CURLcode)curlcode) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		w = "DNS: the host name does not resolve";
		break;
	case CURLE_COULDNT_CONNECT:
		w = "refused: nothing accepts connections at that address and port";
		break;
	case CURLE_OPERATION_TIMEDOUT:
		w = "timeout: the server did not answer in time";
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		w = "certificate: the server's certificate is not trusted for this host name (check "
		    "the host in the url, or add its CA with ca_file)";
		break;
	case CURLE_SSL_CONNECT_ERROR:
		w = "TLS: the TLS handshake failed";
		break;
	case CURLE_USE_SSL_FAILED:
		w = "TLS: the server does not offer STARTTLS, which stockgate requires";
		break;
	case CURLE_LOGIN_DENIED:
		w = "login: the server refused the user name and password (or token)";
		break;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		w = "connection: the server closed the connection";
		break;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:
		w = "protocol: the server does not speak the expected protocol";
		break;
	default:
		w = curl_easy_strerror((CURLcode)curlcode);
		break;
	}
	if (detail && *detail)
		return g_strdup_printf("%s (%s)", w, detail);
	return g_strdup(w);
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	GString *s = ud;

	if (s->len + size * n > MAX_ANSWER)
		return 0;
	g_string_append_len(s, p, (gssize)(size * n));
	return size * n;
}

/* The settings a mail connection (IMAP or SMTP) of a section shares: TLS always verified,
 * STARTTLS required on the plain scheme, every wait bounded by the section's timeout. */
static void mail_setup(CURL *c, const char *protocols, bool implicit_tls, const sg_tls *tls,
		       int timeout)
{
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 2L * timeout);
	curl_easy_setopt(c, CURLOPT_SERVER_RESPONSE_TIMEOUT, (long)timeout);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (tls->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, tls->ca_file);
	if (!implicit_tls)
		curl_easy_setopt(c, CURLOPT_USE_SSL, (long)(tls->off ? CURLUSESSL_NONE : CURLUSESSL_ALL));
}

/* Sets the login of a section: the token of oauth2_token_command (returned, to be wiped and
 * freed) or the password. NULL with *err when the token command fails. */
static bool mail_login(CURL *c, const char *section, const char *user, const char *password,
		       const char *token_command, char **token, char **err)
{
	*token = NULL;
	if (user)
		curl_easy_setopt(c, CURLOPT_USERNAME, user);
	if (token_command) {
		g_autofree char *e = NULL;
		*token = sg_oauth2_token(section, token_command, &e);
		if (!*token) {
			sg_fail(err, SG_EUNAVAIL, "login: %s", e ? e : "oauth2_token_command failed");
			return false;
		}
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, *token);
		curl_easy_setopt(c, CURLOPT_LOGIN_OPTIONS, "AUTH=XOAUTH2");
	} else if (password) {
		curl_easy_setopt(c, CURLOPT_PASSWORD, password);
	}
	return true;
}

static void wipe(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		g_free(s);
	}
}

/* ---------------------------------------------------------------- IMAP */

static const char *imap_off(const sg_config *cfg)
{
	return cfg->source.url ? NULL : "[source] url is not set (no mailbox: `process` only)";
}

static sg_status maildir_check(const char *dir, char **said, char **err)
{
	static const char *const subs[] = { "cur", "new", "tmp" };

	for (size_t i = 0; i < G_N_ELEMENTS(subs); i++) {
		g_autofree char *p = g_build_filename(dir, subs[i], NULL);
		if (access(p, R_OK | W_OK | X_OK) != 0)
			return sg_fail(err, SG_EUNAVAIL, "folder: %s is not a Maildir stockgate can "
				       "use (%s/: %s)", dir, subs[i], g_strerror(errno));
	}
	*said = g_strdup_printf("%s: a Maildir (cur/, new/, tmp/ writable)", dir);
	return SG_OK;
}

static sg_status imap_check(const sg_config *cfg, char **said, char **err)
{
	const char *url = cfg->source.url;
	g_autofree char *mailbox = NULL, *where = NULL, *token = NULL;
	g_autoptr(GString) answer = g_string_new(NULL);
	g_autoptr(GHashTable) have = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_autoptr(GString) there = g_string_new(NULL), missing = g_string_new(NULL);
	g_auto(GStrv) lines = NULL;
	char ebuf[CURL_ERROR_SIZE] = "";
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *conn = NULL;
	CURLU *h;
	CURL *c;
	CURLcode rc;
	sg_status st = SG_OK;

	if (g_ascii_strncasecmp(url, "maildir:", 8) == 0)
		return maildir_check(url + 8, said, err);
	h = curl_url();
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		curl_url_cleanup(h);
		return sg_fail(err, SG_ECONFIG, "[source] url '%s' is not a valid IMAP URL", url);
	}
	curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
	curl_url_get(h, CURLUPART_PATH, &path, CURLU_URLDECODE);
	mailbox = g_strdup(path && path[strspn(path, "/")] ? path + strspn(path, "/") : "INBOX");
	/* libcurl selects the mailbox of the URL, then runs the custom command: LIST shows the
	 * folders messages are moved to. */
	curl_url_set(h, CURLUPART_PATH, mailbox, CURLU_URLENCODE);
	curl_url_set(h, CURLUPART_QUERY, NULL, 0);
	curl_url_get(h, CURLUPART_URL, &conn, 0);
	where = g_strdup_printf("%s://%s:%s", scheme, host, port ? port : "");
	bool implicit = g_ascii_strcasecmp(scheme, "imaps") == 0;

	c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, conn);
	mail_setup(c, "imap,imaps", implicit, &cfg->source.tls, cfg->source.timeout);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "LIST \"\" \"*\"");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, answer);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	if (!mail_login(c, "[source]", cfg->source.username, cfg->source.password,
			cfg->source.oauth2_token_command, &token, err)) {
		st = SG_EUNAVAIL;
		goto out;
	}
	rc = curl_easy_perform(c);
	curl_easy_setopt(c, CURLOPT_PASSWORD, NULL);
	curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, NULL);
	if (rc == CURLE_LOGIN_DENIED && strstr(ebuf, "Select")) {
		st = sg_fail(err, SG_EUNAVAIL, "folder: %s: logged in, but the mailbox '%s' cannot "
			     "be selected (check the folder in [source] url)", where, mailbox);
		goto out;
	}
	if (rc != CURLE_OK) {
		g_autofree char *w = sg_probe_curl_words(rc, ebuf);
		st = sg_fail(err, SG_EUNAVAIL, "%s (%s)", w, where);
		goto out;
	}
	/* The untagged LIST lines, each "* LIST (flags) sep name". */
	lines = g_strsplit(answer->str, "\n", -1);
	for (int i = 0; lines[i]; i++) {
		char *name = NULL;
		g_strchomp(lines[i]);
		if (sg_imap_list(lines[i], strlen(lines[i]), &name))
			g_hash_table_add(have, name);
	}
	const char *folders[] = { cfg->source.processed_folder, cfg->source.rejected_folder,
				  cfg->source.failed_folder };
	int nthere = 0;
	for (size_t i = 0; i < G_N_ELEMENTS(folders); i++) {
		bool has = g_hash_table_contains(have, folders[i]);
		GString *s = has ? there : missing;
		g_string_append_printf(s, "%s%s", s->len ? ", " : "", folders[i]);
		nthere += has;
	}
	*said = g_strdup_printf("%s: logged in as %s, %s selected; %s%s%s%s%s", where,
				cfg->source.username ? cfg->source.username : "(no user)", mailbox,
				there->str, nthere == 0 ? "" : nthere == 1 ? " exists" : " exist", there->len && missing->len ? "; " : "",
				missing->str, missing->len ? " missing (created at the first move)" : "");
out:
	wipe(g_steal_pointer(&token));
	curl_easy_cleanup(c);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(conn);
	curl_url_cleanup(h);
	return st;
}

/* ---------------------------------------------------------------- SMTP */

static const char *smtp_off(const sg_config *cfg)
{
	return NULL; /* [report] url has a default (dir:), always checked */
}

/* The server's replies (never what stockgate sends: that holds the AUTH exchange). */
static int on_debug(CURL *c, curl_infotype type, char *data, size_t size, void *ud)
{
	if (type == CURLINFO_HEADER_IN)
		g_string_append_len(ud, data, (gssize)size);
	return 0;
}

/* The first reply line with code, without the code and CRLF, or NULL; g_free. */
static char *reply_line(const char *replies, const char *code)
{
	g_auto(GStrv) lines = g_strsplit(replies, "\n", -1);
	for (int i = 0; lines[i]; i++)
		if (g_str_has_prefix(lines[i], code))
			return g_strdup(g_strstrip(lines[i] + 3 + (lines[i][3] == '-' || lines[i][3] == ' ')));
	return NULL;
}

static sg_status smtp_check(const sg_config *cfg, char **said, char **err)
{
	const char *url = cfg->report.url;
	g_autoptr(GString) replies = g_string_new(NULL);
	g_autofree char *token = NULL, *greeting = NULL, *authed = NULL;
	char ebuf[CURL_ERROR_SIZE] = "";
	sg_status st = SG_OK;
	CURLcode rc;
	CURL *c;

	if (g_ascii_strncasecmp(url, "dir:", 4) == 0) {
		if (access(url + 4, W_OK | X_OK) != 0)
			return sg_fail(err, SG_EUNAVAIL, "folder: %s: %s (reports are written there)",
				       url + 4, g_strerror(errno));
		*said = g_strdup_printf("%s: writable; reports are written there as .eml files, "
					"not sent", url + 4);
		return SG_OK;
	}
	c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	mail_setup(c, "smtp,smtps", g_ascii_strncasecmp(url, "smtps://", 8) == 0, &cfg->report.tls,
		   cfg->report.timeout);
	/* Connect, greeting, EHLO, STARTTLS, AUTH: what libcurl does before any MAIL FROM. The
	 * cleanup says QUIT. */
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug);
	curl_easy_setopt(c, CURLOPT_DEBUGDATA, replies);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	if (!mail_login(c, "[report]", cfg->report.username, cfg->report.password,
			cfg->report.oauth2_token_command, &token, err)) {
		st = SG_EUNAVAIL;
		goto out;
	}
	rc = curl_easy_perform(c);
	curl_easy_setopt(c, CURLOPT_PASSWORD, NULL);
	curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, NULL);
	if (rc != CURLE_OK) {
		g_autofree char *w = sg_probe_curl_words(rc, ebuf);
		st = sg_fail(err, SG_EUNAVAIL, "%s (%s)", w, url);
		goto out;
	}
	greeting = reply_line(replies->str, "220");
	authed = reply_line(replies->str, "235");
	bool wants_login = cfg->report.username || cfg->report.oauth2_token_command;
	if (wants_login && !authed) {
		st = sg_fail(err, SG_EUNAVAIL, "login: %s offers no AUTH mechanism stockgate can use "
			     "(is STARTTLS off, or the port the one for submission?)", url);
		goto out;
	}
	*said = g_strdup_printf("%s: greeted (%s)%s%s%s; no message sent", url,
				greeting ? greeting : "220", wants_login ? ", authenticated as " : "",
				wants_login ? (cfg->report.username ? cfg->report.username : "(token)") : "",
				wants_login ? "" : ", no login configured");
out:
	wipe(g_steal_pointer(&token));
	curl_easy_cleanup(c);
	return st;
}

/* ---------------------------------------------------------------- mirror */

static const char *mirror_off(const sg_config *cfg)
{
	return cfg->mirror.url && *cfg->mirror.url ? NULL
						    : "[mirror] url is empty (local store only)";
}

static sg_status mirror_check(const sg_config *cfg, char **said, char **err)
{
	g_autofree char *e = NULL;
	sg_mirror *m = NULL;
	long n = -1;
	sg_status st = sg_mirror_open(cfg, &m, &e);

	/* warehouse.list with an empty hash: a read the API answers without a key's effect. */
	if (st == SG_OK)
		st = sg_mirror_ping(m, NULL, &n, &e);
	sg_mirror_close(m);
	if (st != SG_OK)
		return sg_fail(err, st == SG_ECONFIG ? SG_ECONFIG : SG_EUNAVAIL, "%s",
			       e ? e : "the mirror does not answer");
	*said = g_strdup_printf("%s answers as the dealer API (warehouse.list; a dealer's key is "
				"checked by `stockgate mirror ping --key-file`)", cfg->mirror.url);
	return SG_OK;
}

/* ---------------------------------------------------------------- vendor APIs */

/* One free request to a kind's endpoint (POST of body, of content_type, when body is set), its
 * section checked by the kind's own open(). The URL may carry the key in its query: messages
 * name the redacted URL only. */
static sg_status http_ask(const sg_batch_kind *kind, const sg_config *cfg, const char *url,
			  const char *body, const char *content_type, long *http, GString *answer,
			  char **err)
{
	struct curl_slist *h = NULL;
	char ebuf[CURL_ERROR_SIZE] = "";
	sg_batch_conn conn = { 0 };
	sg_status st = kind->open(cfg, &conn, err);
	CURL *e;
	CURLcode rc;

	if (st != SG_OK)
		return st;
	kind->close(conn.state);
	e = sg_batch_easy_new(&conn, HTTP_TIMEOUT, HTTP_CONNECT_TIMEOUT);
	if (!e)
		return sg_fail(err, SG_EINTERNAL, "curl_easy_init failed");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, answer);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
	if (body) {
		g_autofree char *ct = g_strdup_printf("Content-Type: %s", content_type);
		h = curl_slist_append(h, ct);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	}
	rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, http);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	if (rc != CURLE_OK) {
		g_autofree char *u = sg_batch_redact_url(url);
		/* curl's error buffer may quote the URL, query and all: not shown. */
		g_autofree char *w = sg_probe_curl_words(rc, NULL);
		return sg_fail(err, SG_EUNAVAIL, "%s (%s)", w, u);
	}
	return SG_OK;
}

static const char *vin_off(const sg_config *cfg)
{
	return cfg->vin.url ? NULL : "[vin] url is not set";
}

/* get_balance: the service's free call (seed 000). */
static sg_status vin_check(const sg_config *cfg, char **said, char **err)
{
	g_autoptr(GString) answer = g_string_new(NULL);
	g_autofree char *tok = NULL, *req = NULL, *u = NULL;
	long http = 0;
	sg_status st;
	cJSON *j, *b;

	tok = sg_batch_json_str(cfg->vin.token ? cfg->vin.token : "");
	req = g_strdup_printf("{\"token\":%s,\"check_type\":\"get_balance\"}", tok);
	explicit_bzero(tok, strlen(tok));
	st = http_ask(&sg_batch_vin, cfg, cfg->vin.url, req, "application/json", &http, answer, err);
	explicit_bzero(req, strlen(req));
	if (st != SG_OK)
		return st;
	u = sg_batch_redact_url(cfg->vin.url);
	if (http == 401 || http == 403)
		return sg_fail(err, SG_EUNAVAIL, "login: %s refused the token (HTTP %ld); check "
			       "[vin] token_file", u, http);
	if (http != 200)
		return sg_fail(err, SG_EUNAVAIL, "HTTP %ld: %s does not answer get_balance (check "
			       "[vin] url: the processing_queue endpoint)", http, u);
	j = cJSON_Parse(answer->str);
	b = cJSON_GetObjectItemCaseSensitive(j, "balance");
	if (!cJSON_IsNumber(b) && !cJSON_IsString(b)) {
		cJSON_Delete(j);
		return sg_fail(err, SG_EUNAVAIL, "protocol: %s answers get_balance without a "
			       "balance: not the VIN service?", u);
	}
	*said = cJSON_IsNumber(b)
			? g_strdup_printf("%s: the token is accepted; balance %g (get_balance, free)",
					  u, b->valuedouble)
			: g_strdup_printf("%s: the token is accepted; balance %s (get_balance, free)",
					  u, b->valuestring);
	cJSON_Delete(j);
	return SG_OK;
}

static const char *frame_off(const sg_config *cfg)
{
	return cfg->frame.url ? NULL : "[frame] url is not set";
}

/* checkqueue of a report id that cannot exist: free, and answered "not found" only once the
 * key is accepted (a refused key is said first). setqueue, which charges, is never sent. */
static sg_status frame_check(const sg_config *cfg, char **said, char **err)
{
	g_autoptr(GString) answer = g_string_new(NULL);
	g_autofree char *k = NULL, *url = NULL, *u = NULL, *msg = NULL;
	long http = 0;
	sg_status st;
	cJSON *j, *e, *m;

	k = g_uri_escape_string(cfg->frame.key ? cfg->frame.key : "", NULL, FALSE);
	url = g_strdup_printf("%s%skey=%s&mode=checkqueue&id=0", cfg->frame.url,
			      strchr(cfg->frame.url, '?') ? "&" : "?", k);
	explicit_bzero(k, strlen(k));
	st = http_ask(&sg_batch_frame, cfg, url, NULL, NULL, &http, answer, err);
	explicit_bzero(url, strlen(url));
	if (st != SG_OK)
		return st;
	u = sg_batch_redact_url(cfg->frame.url);
	if (http != 200)
		return sg_fail(err, SG_EUNAVAIL, "HTTP %ld: %s (check [frame] url: the "
			       "reportrequestframe.ashx endpoint)", http, u);
	j = cJSON_Parse(answer->str);
	e = cJSON_GetObjectItemCaseSensitive(j, "error");
	m = cJSON_GetObjectItemCaseSensitive(j, "error_msg");
	if (!cJSON_IsObject(j) || (!e && !cJSON_GetObjectItemCaseSensitive(j, "status"))) {
		cJSON_Delete(j);
		return sg_fail(err, SG_EUNAVAIL, "protocol: %s answers, but not as the frame "
			       "service (no error or status)", u);
	}
	msg = cJSON_IsString(m) ? g_strdup(m->valuestring) : g_strdup("");
	cJSON_Delete(j);
	g_autofree char *folded = g_utf8_casefold(msg, -1);
	if (cJSON_IsTrue(e) && (strstr(folded, "ключ") || strstr(folded, "key")))
		return sg_fail(err, SG_EUNAVAIL, "login: %s refused the key: %s; check [frame] "
			       "key_file", u, msg);
	*said = g_strdup_printf("%s: the key is accepted (checkqueue, free%s%s)", u,
				*msg ? ": " : "", msg);
	return SG_OK;
}

static const char *price_off(const sg_config *cfg)
{
	return cfg->price.url ? NULL : "[price] url is not set";
}

/* get_price_info of a harmless item (oem 0): free, and the billing block it answers with says
 * whether the program code (s_sn) has an account. The form is the kind's own next() for a row
 * not yet asked, so the probe sends what a job sends; get_price, which charges, never. */
static sg_status price_check(const sg_config *cfg, char **said, char **err)
{
	const sg_batch_kind *k = &sg_batch_price;
	g_autoptr(GString) answer = g_string_new(NULL);
	g_autofree char *u = NULL, *e = NULL;
	g_autofree char **vals = g_new0(char *, k->ncolumns + 1);
	sg_batch_conn conn = { 0 };
	sg_batch_call call = { 0 };
	sg_batch_row row = { .vals = vals };
	sg_price_answer a;
	long http = 0;
	sg_status st = k->open(cfg, &conn, err);
	bool made;

	if (st != SG_OK)
		return st;
	for (size_t i = 0; i < k->ncolumns; i++)
		vals[i] = (char *)(strcmp(k->columns[i].name, "oem") == 0 ? "0" : "");
	made = k->next(conn.state, &row, &call);
	k->close(conn.state);
	if (!made || !call.body)
		return sg_fail(err, SG_EINTERNAL, "the price kind made no get_price_info call");
	st = http_ask(k, cfg, call.url, call.body, call.content_type, &http, answer, err);
	explicit_bzero(call.body, strlen(call.body)); /* holds s_sn */
	g_free(call.body);
	g_free(call.url);
	g_free(call.header);
	if (st != SG_OK)
		return st;
	u = sg_batch_redact_url(cfg->price.url);
	if (http != 200)
		return sg_fail(err, SG_EUNAVAIL, "HTTP %ld: %s does not answer get_price_info (check "
			       "[price] url)", http, u);
	if (sg_price_answer_parse(answer->str, answer->len, &a, &e) != SG_OK)
		return sg_fail(err, SG_EUNAVAIL, "protocol: %s answers get_price_info, but not as "
			       "the price service (%s)", u, e);
	if (g_strcmp0(a.posible, "no_account") == 0 || g_strcmp0(a.posible, "accaunt_blocked") == 0)
		st = sg_fail(err, SG_EUNAVAIL, "login: %s %s (posible %s); check [price] s_sn_file",
			     u, strcmp(a.posible, "no_account") == 0
					? "knows no account for the program code (s_sn)"
					: "says the account of the program code (s_sn) is blocked",
			     a.posible);
	else if (a.posible == NULL || a.result == NULL ||
		 g_ascii_strcasecmp(a.result, "SUCCESS") != 0)
		st = sg_fail(err, SG_EUNAVAIL, "protocol: %s answers get_price_info with %s (%s%s%s)",
			     u, a.result ? a.result : "no result", a.code ? a.code : "no code",
			     a.text ? ": " : "", a.text ? a.text : "");
	else
		*said = g_strdup_printf("%s: the program code is accepted; posible %s, get_price "
					"costs %s (get_price_info, free)", u, a.posible,
					a.cost ? a.cost : "?");
	sg_price_answer_clear(&a);
	return st;
}

static const char *rental_off(const sg_config *cfg)
{
	return cfg->rental.url ? NULL : "[rental] url is not set";
}

/* The kind's own login (generate_token): it changes nothing. No start, update or stop is sent;
 * the token stays in the kind's state, wiped by its close(). */
static sg_status rental_check(const sg_config *cfg, char **said, char **err)
{
	const sg_batch_kind *k = &sg_batch_rental;
	g_autofree char *u = NULL, *e = NULL;
	sg_batch_conn conn = { 0 };
	sg_status st = k->open(cfg, &conn, err);

	if (st != SG_OK)
		return st;
	st = k->login(conn.state, &conn, HTTP_TIMEOUT, HTTP_CONNECT_TIMEOUT, &e);
	k->close(conn.state);
	u = sg_batch_redact_url(cfg->rental.url);
	if (st == SG_OK) {
		*said = g_strdup_printf("%s: the login %s is accepted (generate_token; the token is "
					"not shown)", u, cfg->rental.login);
		return SG_OK;
	}
	/* The hook says a refusal (code 4, or HTTP 401/403) in these words; it holds no secret. */
	if (e && strstr(e, "refused the login"))
		return sg_fail(err, SG_EUNAVAIL, "login: %s refused the login %s and its password "
			       "(generate_token); check [rental] login and password_file", u,
			       cfg->rental.login);
	/* SG_ETEMP: the call failed on its way, after the hook's own retries; the hook passes on
	 * curl's words for it, which name the CURLcode that the plain words are found by. */
	if (st == SG_ETEMP && e) {
		static const CURLcode known[] = { CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT,
						  CURLE_OPERATION_TIMEDOUT, CURLE_PEER_FAILED_VERIFICATION,
						  CURLE_SSL_CONNECT_ERROR, CURLE_GOT_NOTHING,
						  CURLE_RECV_ERROR, CURLE_SEND_ERROR };
		for (size_t i = 0; i < G_N_ELEMENTS(known); i++)
			if (strstr(e, curl_easy_strerror(known[i]))) {
				g_autofree char *w = sg_probe_curl_words(known[i], NULL);
				return sg_fail(err, SG_EUNAVAIL, "%s (%s)", w, u);
			}
	}
	return sg_fail(err, SG_EUNAVAIL, "%s: %s (%s)", st == SG_ETEMP ? "connection" : "protocol",
		       e ? e : "generate_token failed", u);
}

const sg_peer sg_peers[] = {
	{ "source", imap_off, imap_check },
	{ "report", smtp_off, smtp_check },
	{ "mirror", mirror_off, mirror_check },
	{ "vin", vin_off, vin_check },
	{ "frame", frame_off, frame_check },
	{ "price", price_off, price_check },
	{ "rental", rental_off, rental_check },
	{ NULL, NULL, NULL },
};
