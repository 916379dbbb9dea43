/* transport-smtp.c: sends reports over SMTP(S) with libcurl: implicit TLS (smtps://) or required
 * STARTTLS (smtp://), certificates always verified, every step under a deadline. */
#include "transport.h"
#include "log.h"
#include "util.h"

#include <curl/curl.h>
#include <string.h>


typedef struct {
	sg_transport base;
	const sg_config *cfg;
	char *url;
	char *from; /* the address of [report] from */
	bool smtps;
} smtp_transport;

/*
 * True when s is a plain addr-spec that can go into "MAIL FROM:<…>" or "RCPT TO:<…>" as is:
 * local@domain, printable ASCII or UTF-8, no spaces, controls, angle brackets or a second '@'
 * outside the local part. libcurl sends these verbatim, so a CR or LF here would be a command
 * injected into the SMTP session.
 */
static bool plain_address(const char *s)
{
	if (!s || !*s || strlen(s) > 254)
		return false;
	const char *at = strrchr(s, '@');
	if (!at || at == s || !at[1] || strlen(at + 1) > 253)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>' || *p == '(' || *p == ')' ||
		    *p == ',' || *p == ';' || *p == '\\' || *p == '"')
			return false;
	for (const char *p = at + 1; *p; p++)
		if (*p == '@' || *p == '[' || *p == ']')
			return false;
	return g_utf8_validate(s, -1, NULL);
}

/* The address of a "Display Name" <addr> value, or the value itself when bare. */
static char *address_of(const char *from)
{
	const char *lt = strrchr(from, '<');
	if (lt) {
		const char *gt = strchr(lt, '>');
		if (!gt)
			return NULL;
		return g_strndup(lt + 1, (gsize)(gt - lt - 1));
	}
	return g_strstrip(g_strdup(from));
}

/* The message with every line ending CRLF: a bare LF or a bare CR becomes CRLF (libcurl
 * dot-stuffs but leaves line ends alone; a bare LF before "." is the smuggling pattern). */
static GByteArray *to_crlf(const char *data, size_t len)
{
	GByteArray *b = g_byte_array_sized_new((guint)(len + len / 32 + 2));
	static const guint8 crlf[] = {'\r', '\n'};
	for (size_t i = 0; i < len; i++) {
		char c = data[i];
		if (c == '\r') {
			g_byte_array_append(b, crlf, 2);
			if (i + 1 < len && data[i + 1] == '\n')
				i++;
		} else if (c == '\n') {
			g_byte_array_append(b, crlf, 2);
		} else {
			g_byte_array_append(b, (const guint8 *)&c, 1);
		}
	}
	if (b->len < 2 || b->data[b->len - 2] != '\r' || b->data[b->len - 1] != '\n')
		g_byte_array_append(b, crlf, 2);
	return b;
}

typedef struct {
	const guint8 *p;
	size_t left;
} reader;

static size_t read_cb(char *buf, size_t size, size_t n, void *ud)
{
	reader *r = ud;
	size_t k = MIN(size * n, r->left);
	memcpy(buf, r->p, k);
	r->p += k;
	r->left -= k;
	return k;
}


static sg_status smtp_send(sg_transport *tr, const char *envelope_from, const char *const *rcpts,
			   const char *data, size_t len, char **err)
{
	smtp_transport *t = (smtp_transport *)tr;
	const sg_config *cfg = t->cfg;
	const char *from = envelope_from && *envelope_from ? envelope_from : t->from;
	if (!plain_address(from))
		return sg_fail(err, SG_EDATA, "SMTP: refusing envelope sender '%s'", from ? from : "");
	if (!rcpts || !rcpts[0])
		return sg_fail(err, SG_EDATA, "SMTP: no recipient");
	for (size_t i = 0; rcpts[i]; i++)
		if (!plain_address(rcpts[i]))
			return sg_fail(err, SG_EDATA, "SMTP: refusing recipient address '%s'",
				       rcpts[i]);

	CURL *c = curl_easy_init();
	if (!c)
		return sg_fail(err, SG_EINTERNAL, "curl_easy_init failed");
	struct curl_slist *rl = NULL;
	for (size_t i = 0; rcpts[i]; i++) {
		g_autofree char *r = g_strdup_printf("<%s>", rcpts[i]);
		rl = curl_slist_append(rl, r);
	}
	g_autofree char *mail_from = g_strdup_printf("<%s>", from);
	GByteArray *body = to_crlf(data, len);
	reader rd = {body->data, body->len};
	char ebuf[CURL_ERROR_SIZE] = "";
	g_autofree char *token = NULL;
	sg_status st = SG_OK;

	curl_easy_setopt(c, CURLOPT_URL, t->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* [report] timeout: connect and the longest stall; the whole delivery may take 5x. */
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)cfg->report.timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L * cfg->report.timeout);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)cfg->report.timeout);
	/* Each server reply, QUIT's at cleanup included: without this, a server that went silent
	 * holds curl_easy_cleanup for libcurl's own 120 s after the transfer timed out. */
	curl_easy_setopt(c, CURLOPT_SERVER_RESPONSE_TIMEOUT, (long)cfg->report.timeout);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (cfg->report.tls.ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, cfg->report.tls.ca_file);
	if (!t->smtps)
		curl_easy_setopt(c, CURLOPT_USE_SSL,
				 (long)(cfg->report.tls.off ? CURLUSESSL_NONE : CURLUSESSL_ALL));
	if (cfg->report.username)
		curl_easy_setopt(c, CURLOPT_USERNAME, cfg->report.username);
	if (cfg->report.oauth2_token_command) {
		token = sg_oauth2_token("[report]", cfg->report.oauth2_token_command, err);
		if (!token) {
			st = SG_ETEMP;
			goto out;
		}
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, token);
		curl_easy_setopt(c, CURLOPT_LOGIN_OPTIONS, "AUTH=XOAUTH2");
	} else if (cfg->report.password) {
		curl_easy_setopt(c, CURLOPT_PASSWORD, cfg->report.password);
	}
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, mail_from);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rl);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(c, CURLOPT_READDATA, &rd);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body->len);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);

	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		long code = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		const char *why = *ebuf ? ebuf : curl_easy_strerror(rc);
		/* A 5xx reply is final; 4xx, a cut connection, a timeout or a TLS failure may
		 * pass by the next poll. */
		if (rc == CURLE_LOGIN_DENIED)
			st = sg_fail(err, SG_ETEMP, "%s: %s: the login was refused; check [report] "
				     "username and password_file (or oauth2_token_command)",
				     t->url, why);
		else if (code >= 500 && code < 600)
			st = sg_fail(err, SG_EUNAVAIL, "%s: %s (reply %ld)", t->url, why, code);
		else if (code >= 400 && code < 500)
			st = sg_fail(err, SG_ETEMP, "%s: %s (reply %ld)", t->url, why, code);
		else
			st = sg_fail(err, SG_ETEMP, "%s: %s", t->url, why);
	} else {
		log_debug("SMTP: report sent to %s", rcpts[0]);
	}
out:
	if (token)
		memset(token, 0, strlen(token));
	curl_slist_free_all(rl);
	g_byte_array_unref(body);
	curl_easy_cleanup(c);
	return st;
}

static void smtp_close(sg_transport *tr)
{
	smtp_transport *t = (smtp_transport *)tr;
	if (!t)
		return;
	g_free(t->url);
	g_free(t->from);
	g_free(t);
}

static const sg_transport_ops smtp_ops = {
	.name = "smtp",
	.done = "sent",
	.send = smtp_send,
	.close = smtp_close,
};

sg_status sg_transport_smtp_open(const sg_config *cfg, sg_transport **out, char **err)
{
	static gsize curl_once;
	if (g_once_init_enter(&curl_once)) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		g_once_init_leave(&curl_once, 1);
	}
	*out = NULL;
	const char *url = cfg->report.url;
	bool smtps = url && g_ascii_strncasecmp(url, "smtps://", 8) == 0;
	if (!url || (!smtps && g_ascii_strncasecmp(url, "smtp://", 7) != 0))
		return sg_fail(err, SG_ECONFIG, "[report] url '%s': use smtps://host:465 or smtp://host",
			       url ? url : "");
	CURLU *h = curl_url();
	char *user = NULL;
	CURLUcode uc = curl_url_set(h, CURLUPART_URL, url, 0);
	bool has_user = uc == CURLUE_OK && curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_OK;
	curl_free(user);
	curl_url_cleanup(h);
	if (uc != CURLUE_OK)
		return sg_fail(err, SG_ECONFIG, "[report] url '%s' is not a valid URL", url);
	if (has_user)
		return sg_fail(err, SG_ECONFIG,
			       "[report] url: put the user name in 'username' and the password in "
			       "'password_file', not in the URL");
	g_autofree char *from = cfg->report.from ? address_of(cfg->report.from) : NULL;
	if (!plain_address(from))
		return sg_fail(err, SG_ECONFIG, "[report] from '%s' holds no plain address",
			       cfg->report.from ? cfg->report.from : "");
	if (!smtps && cfg->report.tls.off)
		log_warnx("[report] tls = off: %s without TLS (meant for loopback tests only)", url);
	smtp_transport *t = g_new0(smtp_transport, 1);
	t->base.ops = &smtp_ops;
	t->cfg = cfg;
	t->url = g_strdup(url);
	t->from = g_steal_pointer(&from);
	t->smtps = smtps;
	*out = &t->base;
	return SG_OK;
}
