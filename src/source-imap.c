/* source-imap.c: the IMAP(S) mail source: list, fetch (BODY.PEEK[]) and move messages of one
 * mailbox over a single libcurl connection kept for the whole poll.
 *
 * libcurl does the connection, TLS (implicit or STARTTLS), certificate checks and login
 * (CURLOPT_CONNECT_ONLY); the commands after login are ours, sent with curl_easy_send and read
 * with curl_easy_recv, because libcurl 7.88 does not read literals in the replies to custom
 * commands: a "UID FETCH n BODY.PEEK[]" body would be scanned as protocol lines, so a line
 * "A005 OK" inside a message would end the reply. The replies are parsed by imap.c. */
#include "imap.h"
#include "log.h"
#include "util.h"
#include "source.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Deadlines: connecting, a stalled read (no byte for this long), and one command as a whole
 * (a body fetch gets the longer one). */
/* From [source] timeout (T): connect and the longest stall T, a command 2T, a fetch 10T. */
#define IMAP_CONNECT_TIMEOUT (s->cfg->source.timeout)
#define IMAP_IDLE_TIMEOUT (s->cfg->source.timeout)
#define IMAP_CMD_TIMEOUT (2 * s->cfg->source.timeout)
#define IMAP_FETCH_TIMEOUT (10 * s->cfg->source.timeout)
/* The longest literal accepted in replies other than a body (mailbox names and the like). */
#define IMAP_SMALL_LITERAL (64 * 1024)
/* UIDs per "UID FETCH" of the listing. */
#define IMAP_CHUNK 200

typedef struct {
	sg_source base;
	const sg_config *cfg;
	CURL *curl;
	curl_socket_t sock;
	bool broken; /* the stream is out of step (timeout, cut, refused literal): no more commands */
	char *url;   /* what libcurl connects to (no mailbox), kept for imap_reconnect */
	bool starttls;
	char *where; /* "imap://host:port" for messages */
	char *mailbox;
	gint64 uidvalidity;
	bool has_move, has_uidplus;
	unsigned tagn;
	GByteArray *in;      /* bytes received and not yet consumed */
	GHashTable *folders; /* folder names known to exist */
	GPtrArray *bodies;   /* char *: the files fetch_set writes bodies to, one a place in a
	                      * chunk (kept_body) */
} imap_source;

static sg_status imap_fail(imap_source *s, char **err, sg_status st, const char *fmt, ...)
	G_GNUC_PRINTF(4, 5);
static sg_status imap_fail(imap_source *s, char **err, sg_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return sg_fail(err, st, "%s/%s: %s", s->where, s->mailbox, msg);
}

/* Waits until the socket is readable (or writable) or the deadline (monotonic µs) passes. */
static sg_status wait_sock(imap_source *s, bool out, gint64 deadline, char **err)
{
	gint64 now = g_get_monotonic_time();
	gint64 left = MIN(deadline - now, (gint64)IMAP_IDLE_TIMEOUT * G_USEC_PER_SEC);
	if (left <= 0) {
		s->broken = true;
		return imap_fail(s, err, SG_ETEMP, "the server did not answer in time");
	}
	struct pollfd p = {.fd = s->sock, .events = out ? POLLOUT : POLLIN};
	int r;
	do
		r = poll(&p, 1, (int)(left / 1000) + 1);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		s->broken = true;
		return imap_fail(s, err, SG_ETEMP, "the server stalled for %d s", IMAP_IDLE_TIMEOUT);
	}
	if (r < 0) {
		s->broken = true;
		return imap_fail(s, err, SG_ETEMP, "poll: %s", g_strerror(errno));
	}
	return SG_OK;
}

static sg_status send_all(imap_source *s, const char *data, size_t len, gint64 deadline,
			  char **err)
{
	while (len > 0) {
		size_t n = 0;
		CURLcode rc = curl_easy_send(s->curl, data, len, &n);
		if (rc == CURLE_AGAIN) {
			sg_status st = wait_sock(s, true, deadline, err);
			if (st)
				return st;
			continue;
		}
		if (rc != CURLE_OK) {
			s->broken = true;
			return imap_fail(s, err, SG_ETEMP, "send: %s", curl_easy_strerror(rc));
		}
		data += n;
		len -= n;
	}
	return SG_OK;
}

/* Reads more bytes into s->in. */
static sg_status fill(imap_source *s, gint64 deadline, char **err)
{
	guint8 buf[64 * 1024];
	for (;;) {
		size_t n = 0;
		CURLcode rc = curl_easy_recv(s->curl, buf, sizeof buf, &n);
		if (rc == CURLE_AGAIN) {
			sg_status st = wait_sock(s, false, deadline, err);
			if (st)
				return st;
			continue;
		}
		if (rc != CURLE_OK) {
			s->broken = true;
			return imap_fail(s, err, SG_ETEMP, "receive: %s", curl_easy_strerror(rc));
		}
		if (n == 0) {
			s->broken = true;
			return imap_fail(s, err, SG_ETEMP, "the server closed the connection");
		}
		g_byte_array_append(s->in, buf, (guint)n);
		return SG_OK;
	}
}

typedef void (*line_fn)(const char *line, size_t len, void *ud);

/*
 * Sends one command (tag added here) and reads the reply up to its tagged line; each untagged
 * line goes to fn (may be NULL). Returns SG_OK with *cond set, SG_ETEMP when the connection
 * fails or times out, SG_EDATA when a literal is over max_literal (the connection is then
 * dropped). *tagged gets the tagged line's text (g_free) when not NULL.
 */
static sg_status imap_cmd(imap_source *s, const char *cmd, size_t max_literal, int timeout,
			  line_fn fn, void *ud, sg_imap_cond *cond, char **tagged, char **err)
{
	if (s->broken)
		return imap_fail(s, err, SG_ETEMP, "the connection was lost earlier");
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout * G_USEC_PER_SEC;
	char tag[16];
	g_snprintf(tag, sizeof tag, "S%04u", ++s->tagn);
	g_autofree char *line = g_strdup_printf("%s %s\r\n", tag, cmd);
	sg_status st = send_all(s, line, strlen(line), deadline, err);
	if (st)
		return st;
	for (;;) {
		size_t len = 0;
		int r = sg_imap_line_len((const char *)s->in->data, s->in->len, max_literal, &len);
		if (r < 0) {
			s->broken = true;
			return imap_fail(s, err, SG_EDATA,
					 "the reply to %.*s holds a literal over %zu bytes",
					 (int)strcspn(cmd, " "), cmd, max_literal);
		}
		if (r == 0) {
			st = fill(s, deadline, err);
			if (st)
				return st;
			continue;
		}
		const char *l = (const char *)s->in->data;
		const char *text = NULL;
		size_t tlen = 0;
		sg_imap_cond c = sg_imap_tagged(l, len, tag, &text, &tlen);
		if (c != SG_IMAP_NONE) {
			*cond = c;
			if (tagged)
				*tagged = g_strndup(text, tlen);
			if (fn)
				fn(l, len, ud); /* response codes such as COPYUID come in the tagged line */
			g_byte_array_remove_range(s->in, 0, (guint)len);
			return SG_OK;
		}
		if (l[0] == '*' && fn)
			fn(l, len, ud);
		/* Anything else (a stray tag, a continuation request) is not ours: ignored. */
		g_byte_array_remove_range(s->in, 0, (guint)len);
	}
}

/* A command that must succeed: NO or BAD becomes an error naming the command. */
static sg_status imap_ok(imap_source *s, const char *cmd, line_fn fn, void *ud, char **err)
{
	sg_imap_cond c = SG_IMAP_NONE;
	g_autofree char *text = NULL;
	sg_status st = imap_cmd(s, cmd, IMAP_SMALL_LITERAL, IMAP_CMD_TIMEOUT, fn, ud, &c, &text, err);
	if (st)
		return st;
	if (c != SG_IMAP_OK)
		return imap_fail(s, err, SG_ETEMP, "%s: %s", cmd, text ? text : "");
	return SG_OK;
}

static void on_capability(const char *line, size_t len, void *ud)
{
	imap_source *s = ud;
	sg_imap_capability(line, len, &s->has_move, &s->has_uidplus);
}

static void on_select(const char *line, size_t len, void *ud)
{
	imap_source *s = ud;
	gint64 v;
	if (sg_imap_resp_code_num(line, len, "UIDVALIDITY", &v))
		s->uidvalidity = v;
}

static void on_search(const char *line, size_t len, void *ud)
{
	if (sg_imap_search(line, len, ud) < 0)
		log_warnx("IMAP: ignoring a malformed SEARCH reply");
}

/* Sets the TLS and timeout options shared by every connection of the source. */
static void set_tls(CURL *c, const sg_tls *tls, bool starttls)
{
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (tls->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, tls->ca_file);
	if (starttls)
		curl_easy_setopt(c, CURLOPT_USE_SSL, (long)(tls->off ? CURLUSESSL_NONE : CURLUSESSL_ALL));
}

static sg_status imap_connect(imap_source *s, const char *url, bool starttls, char **err)
{
	const sg_config *cfg = s->cfg;
	s->curl = curl_easy_init();
	if (!s->curl)
		return sg_fail(err, SG_EINTERNAL, "curl_easy_init failed");
	CURL *c = s->curl;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "imap,imaps");
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)IMAP_CONNECT_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)IMAP_CMD_TIMEOUT); /* connect + TLS + login */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)IMAP_IDLE_TIMEOUT);
	/* Each server reply, LOGOUT's at cleanup included (libcurl's default is 120 s). */
	curl_easy_setopt(c, CURLOPT_SERVER_RESPONSE_TIMEOUT, (long)IMAP_IDLE_TIMEOUT);
	set_tls(c, &cfg->source.tls, starttls);
	if (cfg->source.username)
		curl_easy_setopt(c, CURLOPT_USERNAME, cfg->source.username);
	g_autofree char *token = NULL;
	if (cfg->source.oauth2_token_command) {
		token = sg_oauth2_token("[source]", cfg->source.oauth2_token_command, err);
		if (!token)
			return SG_ETEMP;
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, token);
		curl_easy_setopt(c, CURLOPT_LOGIN_OPTIONS, "AUTH=XOAUTH2");
	} else if (cfg->source.password) {
		curl_easy_setopt(c, CURLOPT_PASSWORD, cfg->source.password);
	}
	char ebuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	CURLcode rc = curl_easy_perform(c);
	/* The secret is not needed any more: take it out of the handle. */
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c, CURLOPT_PASSWORD, NULL);
	curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, NULL);
	if (token)
		memset(token, 0, strlen(token));
	if (rc != CURLE_OK) {
		s->broken = true;
		/* A refused login or certificate will not fix itself, but the operator may fix it
		 * between polls; the poll as a whole fails either way. */
		if (rc == CURLE_LOGIN_DENIED)
			return imap_fail(s, err, SG_ETEMP,
					 "%s: the login was refused; check [source] username and "
					 "password_file (or oauth2_token_command)",
					 *ebuf ? ebuf : curl_easy_strerror(rc));
		if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
			return imap_fail(s, err, SG_ETEMP,
					 "%s: the server's certificate was refused; check the host "
					 "name in [source] url, or add its CA with ca_file",
					 *ebuf ? ebuf : curl_easy_strerror(rc));
		return imap_fail(s, err, SG_ETEMP, "%s", *ebuf ? ebuf : curl_easy_strerror(rc));
	}
	curl_socket_t sock = CURL_SOCKET_BAD;
	if (curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK ||
	    sock == CURL_SOCKET_BAD) {
		s->broken = true;
		return imap_fail(s, err, SG_ETEMP, "no connection after login");
	}
	s->sock = sock;
	return SG_OK;
}

static void imap_close(sg_source *src)
{
	imap_source *s = (imap_source *)src;
	if (!s)
		return;
	if (s->curl && !s->broken) {
		sg_imap_cond c = SG_IMAP_NONE;
		g_autofree char *e = NULL;
		(void)imap_cmd(s, "LOGOUT", IMAP_SMALL_LITERAL, 5, NULL, NULL, &c, NULL, &e);
	}
	if (s->curl)
		curl_easy_cleanup(s->curl);
	g_free(s->url);
	g_free(s->where);
	g_free(s->mailbox);
	if (s->in)
		g_byte_array_unref(s->in);
	if (s->folders)
		g_hash_table_destroy(s->folders);
	for (guint i = 0; s->bodies && i < s->bodies->len; i++)
		unlink(s->bodies->pdata[i]);
	if (s->bodies)
		g_ptr_array_unref(s->bodies);
	g_free(s);
}

/* Connects, logs in and selects the mailbox: at open, and again in imap_reconnect. */
static sg_status imap_session(imap_source *s, char **err)
{
	g_autofree char *quoted = sg_imap_quote(s->mailbox), *sel = NULL;
	sg_status st = imap_connect(s, s->url, s->starttls, err);

	if (!st)
		st = imap_ok(s, "CAPABILITY", on_capability, s, err);
	if (st)
		return st;
	sel = g_strdup_printf("SELECT %s", quoted);
	s->uidvalidity = -1;
	st = imap_ok(s, sel, on_select, s, err);
	if (!st && s->uidvalidity < 0)
		st = imap_fail(s, err, SG_ETEMP, "SELECT gave no UIDVALIDITY");
	return st;
}

/*
 * A new session in place of a broken one (a refused literal leaves the stream out of step),
 * for the commands of the same poll: the listing's UIDs hold only while UIDVALIDITY does. The
 * old socket is shut first so that libcurl's cleanup does not wait on the rest of a reply.
 */
static sg_status imap_reconnect(imap_source *s, char **err)
{
	gint64 uidvalidity = s->uidvalidity;
	sg_status st;

	if (s->curl) {
		if (s->sock != CURL_SOCKET_BAD)
			shutdown(s->sock, SHUT_RDWR);
		curl_easy_cleanup(s->curl);
		s->curl = NULL;
	}
	s->sock = CURL_SOCKET_BAD;
	s->broken = false;
	g_byte_array_set_size(s->in, 0);
	if ((st = imap_session(s, err)) != SG_OK)
		return st;
	if (s->uidvalidity != uidvalidity) {
		s->broken = true;
		return imap_fail(s, err, SG_ETEMP, "UIDVALIDITY changed since the listing");
	}
	log_debug("%s/%s: connected again", s->where, s->mailbox);
	return SG_OK;
}

typedef struct {
	GHashTable *by_uid; /* uid → sg_imap_fetch data copied into sg_source_msg */
	imap_source *s;
} list_ctx;

static void on_list_fetch(const char *line, size_t len, void *ud)
{
	list_ctx *lc = ud;
	sg_imap_fetch f;
	int r = sg_imap_fetch_parse(line, len, &f);
	if (r < 0) {
		log_warnx("%s/%s: ignoring a malformed FETCH reply", lc->s->where,
			  lc->s->mailbox);
		return;
	}
	if (r == 0 || f.uid < 0)
		return;
	sg_source_msg *m = g_hash_table_lookup(lc->by_uid, &f.uid);
	if (!m)
		return; /* a UID we did not ask for (unsolicited FETCH) */
	if (f.size >= 0)
		m->size = f.size;
	if (f.internaldate >= 0)
		m->received = f.internaldate;
}

static gint cmp_u64(gconstpointer a, gconstpointer b)
{
	guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
	return x < y ? -1 : x > y;
}

static sg_status imap_list(sg_source *src, int max, GPtrArray **out, char **err)
{
	imap_source *s = (imap_source *)src;
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint64));
	sg_status st = imap_ok(s, "UID SEARCH ALL", on_search, uids, err);
	if (st)
		return st;
	/* Arrival order is UID order. */
	g_array_sort(uids, cmp_u64);
	const guint64 *u = (const guint64 *)(void *)uids->data;
	GPtrArray *msgs = g_ptr_array_new_with_free_func((GDestroyNotify)sg_source_msg_free);
	for (guint i = 0; i < uids->len && (max <= 0 || (int)msgs->len < max); i++) {
		if (i > 0 && u[i] == u[i - 1])
			continue;
		sg_source_msg *m = g_new0(sg_source_msg, 1);
		m->uid = (gint64)u[i];
		m->uidvalidity = s->uidvalidity;
		m->mailbox = g_strdup(s->mailbox);
		m->id = g_strdup_printf("imap:%s/%" G_GINT64_FORMAT, s->mailbox, m->uid);
		m->size = -1;
		m->received = -1;
		g_ptr_array_add(msgs, m);
	}
	/* Sizes and dates, in chunks of UIDs. */
	list_ctx lc = {g_hash_table_new(g_int64_hash, g_int64_equal), s};
	for (guint i = 0; i < msgs->len && !st; i += IMAP_CHUNK) {
		GString *cmd = g_string_new("UID FETCH ");
		g_hash_table_remove_all(lc.by_uid);
		for (guint j = i; j < msgs->len && j < i + IMAP_CHUNK; j++) {
			sg_source_msg *m = msgs->pdata[j];
			g_string_append_printf(cmd, "%s%" G_GINT64_FORMAT, j > i ? "," : "", m->uid);
			g_hash_table_insert(lc.by_uid, &m->uid, m);
		}
		g_string_append(cmd, " (UID RFC822.SIZE INTERNALDATE)");
		st = imap_ok(s, cmd->str, on_list_fetch, &lc, err);
		g_string_free(cmd, TRUE);
	}
	g_hash_table_destroy(lc.by_uid);
	if (st) {
		g_ptr_array_unref(msgs);
		return st;
	}
	/* A message expunged between SEARCH and FETCH has no size: it is gone, leave it out. */
	for (guint i = msgs->len; i-- > 0;) {
		sg_source_msg *m = msgs->pdata[i];
		if (m->size < 0)
			g_ptr_array_remove_index(msgs, i);
		else if (m->received < 0)
			m->received = 0;
	}
	log_debug("%s/%s: %u message(s) pending (UIDVALIDITY %" G_GINT64_FORMAT ")", s->where,
		  s->mailbox, msgs->len, s->uidvalidity);
	*out = msgs;
	return SG_OK;
}

typedef struct {
	gint64 uid;
	int fd;
	bool got;
	gint64 body_len;
	bool write_failed;
	int write_errno;
} fetch_ctx;

/* Writes the body of the FETCH reply f to the file of fc. */
static void write_body(fetch_ctx *fc, const sg_imap_fetch *f)
{
	fc->got = true;
	fc->body_len = (gint64)f->body_len;
	const char *p = f->body;
	size_t left = f->body_len;
	while (left > 0) {
		ssize_t n = write(fc->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fc->write_failed = true;
			fc->write_errno = errno;
			return;
		}
		p += n;
		left -= (size_t)n;
	}
}

/* One message of a set being fetched: its temp file, filled as its FETCH reply comes. */
typedef struct {
	sg_source_msg *m;
	char *path;
	fetch_ctx fc;
	bool headers_only; /* the header block (a message over max_message_size) */
} fetch_slot;

/* A FETCH reply of a set goes to the file of its UID. */
static void on_set_body(const char *line, size_t len, void *ud)
{
	GHashTable *by_uid = ud;
	sg_imap_fetch f;

	if (sg_imap_fetch_parse(line, len, &f) != 1 || !f.has_body)
		return;
	fetch_slot *slot = g_hash_table_lookup(by_uid, &f.uid);
	if (slot && !slot->fc.got)
		write_body(&slot->fc, &f);
}

/* The UIDs of ms[0..n) as a sequence set, consecutive UIDs as ranges ("4:9,12"): a range holds
 * only UIDs of the set, so that nothing else in the mailbox is named. */
static char *uid_set(sg_source_msg **ms, guint n)
{
	g_autoptr(GArray) u = g_array_sized_new(FALSE, FALSE, sizeof(guint64), n);
	GString *g = g_string_new(NULL);

	for (guint i = 0; i < n; i++) {
		guint64 v = (guint64)ms[i]->uid;
		g_array_append_val(u, v);
	}
	g_array_sort(u, cmp_u64);
	const guint64 *x = (const guint64 *)(void *)u->data;
	for (guint i = 0; i < n;) {
		guint j = i;
		while (j + 1 < n && x[j + 1] <= x[j] + 1)
			j++;
		g_string_append_printf(g, "%s%" G_GUINT64_FORMAT, g->len ? "," : "", x[i]);
		if (x[j] != x[i])
			g_string_append_printf(g, ":%" G_GUINT64_FORMAT, x[j]);
		i = j + 1;
	}
	return g_string_free(g, FALSE);
}

/*
 * The file for the i-th body of a chunk, opened empty for writing. The files are kept for the
 * session and rewritten chunk after chunk: a file made and removed a message cost more than
 * writing it (ext4 without a journal steps over every recently removed inode when it makes
 * one), and no removed copy of a dealer's stock is left behind in the blocks of a new name.
 */
static int kept_body(imap_source *s, guint i, char **path, char **err)
{
	int fd;

	if (i < s->bodies->len) {
		fd = open(s->bodies->pdata[i], O_RDWR | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			*path = g_strdup(s->bodies->pdata[i]);
			return fd;
		}
		/* removed under us (a tmp cleaner): made again below */
	}
	fd = sg_scratch_file("imap", path, err);
	if (fd < 0)
		return -1;
	if (i < s->bodies->len) {
		g_free(s->bodies->pdata[i]);
		s->bodies->pdata[i] = g_strdup(*path);
	} else {
		g_ptr_array_add(s->bodies, g_strdup(*path));
	}
	return fd;
}

/* One UID FETCH of the bodies (headers_only: the header blocks) of slots[0..n), each to its
 * file. SG_EDATA when a literal is over cap (the connection is then broken). */
static sg_status fetch_slots(imap_source *s, fetch_slot **slots, guint n, bool headers_only,
			     gint64 cap, char **err)
{
	g_autoptr(GHashTable) by_uid = g_hash_table_new(g_int64_hash, g_int64_equal);
	g_autoptr(GPtrArray) set = g_ptr_array_sized_new(n);
	g_autofree char *text = NULL, *uids = NULL, *cmd = NULL;
	sg_imap_cond c = SG_IMAP_NONE;
	sg_status st;

	for (guint i = 0; i < n; i++) {
		g_ptr_array_add(set, slots[i]->m);
		g_hash_table_insert(by_uid, &slots[i]->fc.uid, slots[i]);
	}
	uids = uid_set((sg_source_msg **)set->pdata, n);
	cmd = g_strdup_printf("UID FETCH %s BODY.PEEK[%s]", uids, headers_only ? "HEADER" : "");
	st = imap_cmd(s, cmd, (size_t)cap, IMAP_FETCH_TIMEOUT * (int)MIN(n, 100), on_set_body,
		      by_uid, &c, &text, err);
	if (st == SG_EDATA && err && *err) {
		g_clear_pointer(err, g_free);
		st = imap_fail(s, err, SG_EDATA, "a message of UIDs %s is larger than "
			       "max_message_size (%" G_GINT64_FORMAT " bytes)", uids, cap);
	}
	if (!st && c != SG_IMAP_OK)
		st = imap_fail(s, err, SG_ETEMP, "%s: %s", cmd, text ? text : "");
	return st;
}

/*
 * The set FETCH of slots[0..n) refused a literal over max_size: the server's RFC822.SIZE of
 * a message understated its body. Failing the chunk would fail every poll on that message, and
 * nothing after it would be handled: instead the bodies that did not come are fetched one at a
 * time, on a new connection after each refusal, and a message whose body is refused gets its
 * header block and a size over max_size, so that the pipeline fails it too_large as if its
 * size had been told (SPEC 7).
 */
static sg_status fetch_one_by_one(imap_source *s, fetch_slot **slots, guint n, gint64 max_size,
				  char **err)
{
	sg_status st;

	for (guint i = 0; i < n; i++) {
		fetch_slot *slot = slots[i];

		if (slot->fc.got)
			continue;
		if (s->broken && (st = imap_reconnect(s, err)) != SG_OK)
			return st;
		st = fetch_slots(s, &slot, 1, false, max_size, err);
		if (st != SG_EDATA) {
			if (st)
				return st;
			continue;
		}
		g_clear_pointer(err, g_free);
		log_warnx("%s: UID %" G_GINT64_FORMAT ": the server told RFC822.SIZE %" G_GINT64_FORMAT
			  " but sends a body over max_message_size (%" G_GINT64_FORMAT
			  " bytes): only its header block is fetched", slot->m->id, slot->m->uid,
			  slot->m->size, max_size);
		if ((st = imap_reconnect(s, err)) != SG_OK)
			return st;
		/* what a stray FETCH reply of that UID may have written before the refused one */
		if (ftruncate(slot->fc.fd, 0) != 0 || lseek(slot->fc.fd, 0, SEEK_SET) != 0)
			return sg_fail(err, SG_EIO, "%s: %s", slot->path, g_strerror(errno));
		slot->fc.got = false;
		slot->headers_only = true;
		/* its true size is not known (the literal was refused unread): over the limit */
		slot->m->size = max_size + 1;
		if ((st = fetch_slots(s, &slot, 1, true, max_size, err)) != SG_OK)
			return st;
	}
	return SG_OK;
}

/*
 * Fetches a set of messages with one UID FETCH for the whole bodies and, when some are over
 * max_size, one for their header blocks (a body over max_size all the same: fetch_one_by_one).
 * The bodies are not synced to disk: the server keeps each message until the move that follows
 * its durable record, so a copy lost in a crash is fetched again.
 */
static sg_status imap_fetch_set(sg_source *src, sg_source_msg **ms, guint n, gint64 max_size,
				char **err)
{
	imap_source *s = (imap_source *)src;
	gint64 cap = max_size > 0 ? max_size : G_MAXINT32;
	g_autoptr(GPtrArray) slots = g_ptr_array_new_with_free_func(g_free);
	fetch_slot **sl;
	sg_status st = SG_OK;
	guint whole = 0;

	/* a place a message of the chunk: the whole bodies first, then the header blocks */
	for (int headers_only = 0; headers_only < 2 && !st; headers_only++)
		for (guint i = 0; i < n; i++) {
			bool big = max_size > 0 && ms[i]->size > max_size;
			fetch_slot *slot;

			if (big != (bool)headers_only)
				continue;
			slot = g_new0(fetch_slot, 1);
			slot->m = ms[i];
			slot->fc.uid = ms[i]->uid;
			slot->headers_only = big;
			slot->fc.fd = kept_body(s, slots->len, &slot->path, err);
			g_ptr_array_add(slots, slot);
			if (slot->fc.fd < 0) {
				st = SG_EIO;
				break;
			}
			whole += !big;
		}
	sl = (fetch_slot **)slots->pdata;
	if (!st && whole > 0) {
		st = fetch_slots(s, sl, whole, false, cap, err);
		if (st == SG_EDATA && max_size > 0) {
			g_clear_pointer(err, g_free);
			st = fetch_one_by_one(s, sl, whole, max_size, err);
		}
	}
	if (!st && slots->len > whole)
		st = fetch_slots(s, sl + whole, slots->len - whole, true, cap, err);
	for (guint i = 0; i < slots->len; i++) {
		fetch_slot *slot = sl[i];
		sg_source_msg *m = slot->m;

		if (slot->fc.fd >= 0)
			close(slot->fc.fd);
		if (st != SG_EIO && slot->fc.write_failed)
			st = sg_fail(err, SG_EIO, "%s: %s", slot->path,
				     g_strerror(slot->fc.write_errno));
		/* A body that came whole is kept even when the connection broke after it. */
		if (st == SG_EIO || !slot->fc.got) {
			if (!st)
				log_warnx("%s: UID %" G_GINT64_FORMAT " is gone (moved by another "
					  "poller?)", m->id, m->uid);
			g_free(slot->path);
			continue;
		}
		if (m->path && m->path_is_temp)
			unlink(m->path);
		g_free(m->path);
		m->path = slot->path;
		m->path_is_temp = false;
		m->path_is_kept = true;
		m->headers_only = slot->headers_only;
		if (!slot->headers_only)
			m->size = slot->fc.body_len;
	}
	return st;
}

typedef struct {
	const char *want;
	bool found;
} folder_ctx;

static void on_folder(const char *line, size_t len, void *ud)
{
	folder_ctx *fc = ud;
	g_autofree char *name = NULL;
	if (sg_imap_list(line, len, &name) && strcmp(name, fc->want) == 0)
		fc->found = true;
}

static sg_status ensure_folder(imap_source *s, const char *folder, const char *quoted, char **err)
{
	if (g_hash_table_contains(s->folders, folder))
		return SG_OK;
	folder_ctx fc = {folder, false};
	g_autofree char *list = g_strdup_printf("LIST \"\" %s", quoted);
	sg_status st = imap_ok(s, list, on_folder, &fc, err);
	if (st)
		return st;
	if (!fc.found) {
		g_autofree char *create = g_strdup_printf("CREATE %s", quoted);
		g_autofree char *text = NULL;
		sg_imap_cond c = SG_IMAP_NONE;
		st = imap_cmd(s, create, IMAP_SMALL_LITERAL, IMAP_CMD_TIMEOUT, NULL, NULL, &c, &text,
			      err);
		if (st)
			return st;
		/* Another poller may have created it a moment ago. */
		if (c != SG_IMAP_OK && !(text && strstr(text, "[ALREADYEXISTS]")))
			return imap_fail(s, err, SG_ETEMP, "cannot create folder '%s': %s", folder,
					 text ? text : "");
		if (c == SG_IMAP_OK)
			log_info("%s: created folder '%s'", s->where, folder);
	}
	g_hash_table_add(s->folders, g_strdup(folder));
	return SG_OK;
}

static void on_copyuid(const char *line, size_t len, void *ud)
{
	if (sg_imap_has_resp_code(line, len, "COPYUID"))
		*(bool *)ud = true;
}

/* Moves a set with one UID MOVE, or one COPY + STORE + EXPUNGE of the set (RFC 6851's fallback:
 * a crash between COPY and EXPUNGE leaves the messages in both folders; the next poll sees them
 * again and the ledger finds them duplicates). */
static sg_status imap_move_set(sg_source *src, sg_source_msg **ms, guint n, const char *folder,
			       char **err)
{
	imap_source *s = (imap_source *)src;
	g_autofree char *q = sg_imap_quote(folder);
	g_autofree char *uids = NULL, *cmd = NULL;
	bool copied = false;
	sg_status st;

	if (!q)
		return sg_fail(err, SG_ECONFIG, "[source] folder name '%s' cannot be used", folder);
	for (guint i = 0; i < n; i++)
		if (ms[i]->uidvalidity != s->uidvalidity)
			return imap_fail(s, err, SG_ETEMP, "UIDVALIDITY changed since the listing");
	if ((st = ensure_folder(s, folder, q, err)) != SG_OK)
		return st;
	uids = uid_set(ms, n);
	cmd = g_strdup_printf("UID %s %s %s", s->has_move ? "MOVE" : "COPY", uids, q);
	if ((st = imap_ok(s, cmd, on_copyuid, &copied, err)) != SG_OK)
		return st;
	if (!s->has_move && (!s->has_uidplus || copied)) {
		g_autofree char *store = g_strdup_printf("UID STORE %s +FLAGS.SILENT (\\Deleted)", uids);
		g_autofree char *exp = s->has_uidplus ? g_strdup_printf("UID EXPUNGE %s", uids)
						      : g_strdup("EXPUNGE");

		if ((st = imap_ok(s, store, NULL, NULL, err)) != SG_OK ||
		    (st = imap_ok(s, exp, NULL, NULL, err)) != SG_OK)
			return st;
	}
	/* With UIDPLUS the server names the copies; no COPYUID means the UIDs were already gone
	 * (RFC 3501 ignores a missing UID): another poller claimed the messages. */
	if (s->has_uidplus && !copied)
		log_warnx("%s/%s: UIDs %s were already gone (another poller?)", s->where, s->mailbox,
			  uids);
	else
		log_debug("%s/%s: UIDs %s moved to %s", s->where, s->mailbox, uids, folder);
	return SG_OK;
}

static const sg_source_ops imap_ops = {
	.name = "imap",
	.list = imap_list,
	.fetch_set = imap_fetch_set,
	.move_set = imap_move_set,
	.close = imap_close,
};

sg_status sg_source_imap_open(const sg_config *cfg, sg_source **out, char **err)
{
	static gsize curl_once;
	if (g_once_init_enter(&curl_once)) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		g_once_init_leave(&curl_once, 1);
	}
	const char *url = cfg->source.url;
	CURLU *h = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *user = NULL, *conn = NULL;
	char *mailbox = NULL, *quoted = NULL;
	sg_status st = SG_OK;
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		st = sg_fail(err, SG_ECONFIG, "[source] url '%s' is not a valid IMAP URL", url);
		goto out;
	}
	if (curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		st = sg_fail(err, SG_ECONFIG,
			     "[source] url: put the user name in 'username' and the password in "
			     "'password_file', not in the URL");
		goto out;
	}
	curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
	curl_url_get(h, CURLUPART_PATH, &path, CURLU_URLDECODE);
	bool imaps = g_ascii_strcasecmp(scheme, "imaps") == 0;
	if (!imaps && g_ascii_strcasecmp(scheme, "imap") != 0) {
		st = sg_fail(err, SG_ECONFIG, "[source] url '%s': the scheme must be imaps or imap",
			     url);
		goto out;
	}
	const char *mbox = path ? path : "";
	while (*mbox == '/')
		mbox++;
	mailbox = g_strdup(*mbox ? mbox : "INBOX");
	quoted = sg_imap_quote(mailbox);
	/* curl's ";UIDVALIDITY=…" style parameters are not ours. */
	if (strchr(mailbox, ';') || !quoted) {
		st = sg_fail(err, SG_ECONFIG, "[source] url '%s': bad mailbox name", url);
		goto out;
	}
	curl_url_set(h, CURLUPART_PATH, "/", 0);
	curl_url_set(h, CURLUPART_QUERY, NULL, 0);
	curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0);
	curl_url_get(h, CURLUPART_URL, &conn, 0);

	imap_source *s = g_new0(imap_source, 1);
	s->base.ops = &imap_ops;
	s->cfg = cfg;
	s->where = g_strdup_printf("%s://%s:%s", scheme, host, port ? port : "");
	s->mailbox = g_steal_pointer(&mailbox);
	s->in = g_byte_array_new();
	s->folders = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	s->bodies = g_ptr_array_new_with_free_func(g_free);
	s->url = g_strdup(conn);
	s->starttls = !imaps;
	s->sock = CURL_SOCKET_BAD;
	if (!imaps && cfg->source.tls.off)
		log_warnx("[source] tls = off: %s without TLS (meant for loopback tests only)",
			  s->where);

	st = imap_session(s, err);
	if (st) {
		imap_close(&s->base);
		goto out;
	}
	if (!s->has_move)
		log_info("%s: the server has no MOVE: using COPY + STORE + %s", s->where,
			 s->has_uidplus ? "UID EXPUNGE" : "EXPUNGE");
	*out = &s->base;
out:
	g_free(mailbox);
	g_free(quoted);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(user);
	curl_free(conn);
	curl_url_cleanup(h);
	return st;
}
