/* serve.c: the HTTP receiver of the VIN service's result deliveries (libmicrohttpd). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "batch.h"
#include "delivery.h"
#include "log.h"
#include "serve.h"
#include "util.h"

/*
 * The listening socket is ours, not libmicrohttpd's: each accepted connection is handed to the
 * library (MHD_add_connection) and remembered with the time it came. libmicrohttpd's own
 * timeout counts idleness only, so a peer sending one byte a second would hold its connection
 * for ever; this loop shuts down any connection older than [serve] timeout, whatever it sends.
 * HTTP itself is the library's: no request parsing here.
 */

typedef struct {
	const sg_config *cfg;
	char *secret_sha; /* SHA-256 of the path secret: compared in constant time */
	GMutex lock;      /* conns */
	GHashTable *conns; /* fd → conn_entry * */
	gint inflight;    /* requests begun and not completed */
} server;

/* An open connection as the accept loop knows it. */
typedef struct {
	gint64 start;                /* monotonic µs of the accept; G_MAXINT64 once cut */
	struct MHD_Connection *conn; /* set when the library starts it: a close notice for an
	                              * older connection on a reused fd leaves this one alone */
} conn_entry;

typedef struct {
	GByteArray *body;
	bool counted;
} request;

static int sig_pipe[2] = { -1, -1 };

/* Receiver threads: a delivery's fsyncs (its file, then its commit) overlap with the others'. */
#define SERVE_THREADS 4

/* Each receiver thread has its own connection to the state db (SQLite connections are not
 * shared between threads here), closed when the thread ends. */
static GPrivate thread_store = G_PRIVATE_INIT((GDestroyNotify)sg_store_close);

static sg_store *store_of_thread(const server *s, char **err)
{
	sg_store *st = g_private_get(&thread_store);

	if (st == NULL && sg_store_open(s->cfg->store.path, &st, err) == SG_OK)
		g_private_set(&thread_store, st);
	return st;
}

static void on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;
	if (write(sig_pipe[1], &c, 1) < 0) {
		/* The pipe is full: a stop is already on its way. */
	}
	errno = saved;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
			     const char *text)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned code, const char *reason)
{
	g_autofree char *body = NULL;

	if (reason == NULL)
		return reply(c, code, "application/json", "{\"ok\":true}");
	body = g_strdup_printf("{\"ok\":false,\"error\":\"%s\"}", reason);
	return reply(c, code, "application/json", body);
}

/* The peer's address for a log line. */
static char *peer(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char host[INET6_ADDRSTRLEN + 8] = "?";

	if (ci && ci->client_addr)
		getnameinfo(ci->client_addr,
			    ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
								   : sizeof(struct sockaddr_in),
			    host, sizeof(host), NULL, 0, NI_NUMERICHOST);
	return g_strdup(host);
}

static bool secret_ok(const server *s, const char *url)
{
	g_autofree char *h = NULL;

	if (url == NULL || strncmp(url, "/vin/", 5) != 0)
		return false;
	h = sg_sha256_hex(url + 5, strlen(url + 5));
	return sg_secure_equal(h, s->secret_sha);
}

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *value)
{
	GString *q = cls;
	g_autofree char *k = g_uri_escape_string(key, NULL, FALSE);
	g_autofree char *v = g_uri_escape_string(value ? value : "", NULL, FALSE);

	g_string_append_printf(q, "%s%s=%s", q->len ? "&" : "", k, v);
	return MHD_YES;
}

static const char *outcome_name(sg_vin_delivered w)
{
	switch (w) {
	case SG_VIN_FILED: return "filed";
	case SG_VIN_FAILED: return "the service reported a failure";
	case SG_VIN_REPEAT: return "a repeat, nothing changed";
	case SG_VIN_UNKNOWN: return "for no waiting row, kept in deliveries";
	}
	return "?";
}

/* The whole request is here: read it, file it, and only then answer. */
static enum MHD_Result deliver(server *s, struct MHD_Connection *c, request *rq)
{
	const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_CONTENT_TYPE);
	g_autoptr(GString) query = g_string_new(NULL);
	g_autofree char *err = NULL, *file = NULL, *who = peer(c), *sha = NULL;
	const char *reason = NULL;
	sg_delivery d;
	sg_vin_delivered what;
	sg_status st;

	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, query);
	/* A NUL after the bytes: the parsers may read the body as a string. */
	g_byte_array_append(rq->body, (const guint8 *)"", 1);
	if (sg_delivery_parse(ctype, query->str, (const char *)rq->body->data, rq->body->len - 1,
			      &d, &reason, &err) != SG_OK) {
		log_warnx("serve: %s: delivery refused (400): %s", who, err);
		return reply_json(c, MHD_HTTP_BAD_REQUEST, reason);
	}
	sha = sg_delivery_sha256(&d);
	sg_store *store = store_of_thread(s, &err);
	st = store ? sg_batch_vin_deliver(s->cfg, store, &d, sha, &what, &file, &err) : SG_EIO;
	if (st != SG_OK) {
		/* Not answered 2xx: the service delivers again later, nothing is lost. */
		log_error("serve: %s: delivery id %s not filed (503): %s", who, d.id ? d.id : "-",
			  err);
		sg_delivery_clear(&d);
		return reply_json(c, MHD_HTTP_SERVICE_UNAVAILABLE, "try_again");
	}
	log_info("serve: %s: delivery id %s vin %s status %s: %s%s%s", who, d.id ? d.id : "-",
		 d.vin ? d.vin : "-", d.status ? d.status : "-", outcome_name(what),
		 file ? ": " : "", file ? file : "");
	sg_delivery_clear(&d);
	/* Test hook: the delivery is filed and committed, not yet answered. */
	sg_crash_point("serve-before-answer");
	return reply_json(c, MHD_HTTP_OK, NULL);
}

/*
 * Answers 413 in the middle of a body, and ends the connection. libmicrohttpd queues no
 * response before the body has ended, so the answer is written on the socket here (nothing
 * else has been written on it but a possible "100 Continue"), with the end of our side after
 * it; the caller returns MHD_NO, and the library closes the connection. What the peer has sent
 * meanwhile is read first, so that the close does not reset the connection before the peer
 * has the answer.
 */
static void refuse_too_big(struct MHD_Connection *c)
{
	static const char body[] = "{\"ok\":false,\"error\":\"too_large\"}";
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	g_autofree char *answer = NULL;
	char buf[16384];

	if (ci == NULL)
		return;
	answer = g_strdup_printf("HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
				 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
				 sizeof body - 1, body);
	if (send(ci->connect_fd, answer, strlen(answer), MSG_NOSIGNAL) < 0) {
		/* The peer is gone: the close is all there is to do. */
	}
	shutdown(ci->connect_fd, SHUT_WR);
	for (int i = 0; i < 64 && recv(ci->connect_fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++)
		;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload, size_t *upload_size, void **con_cls)
{
	server *s = cls;
	request *rq = *con_cls;

	if (rq == NULL) {
		const char *cl;
		rq = g_new0(request, 1);
		rq->body = g_byte_array_new();
		rq->counted = true;
		g_atomic_int_inc(&s->inflight);
		*con_cls = rq;
		if (!secret_ok(s, url)) {
			/* The path is never logged: a near miss may hold most of the secret. */
			g_autofree char *who = peer(c);
			log_warnx("serve: %s: %s of an unknown path or with a wrong secret (404)",
				  who, method);
			return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", "Not Found\n");
		}
		if (strcmp(method, "POST") != 0 && strcmp(method, "GET") != 0) {
			struct MHD_Response *r = MHD_create_response_from_buffer(
				0, (void *)"", MHD_RESPMEM_PERSISTENT);
			enum MHD_Result ret;
			MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, POST");
			ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
			MHD_destroy_response(r);
			return ret;
		}
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && g_ascii_strtoull(cl, NULL, 10) > (guint64)s->cfg->serve.max_body) {
			g_autofree char *who = peer(c);
			log_warnx("serve: %s: a body of %s bytes, beyond [serve] max_body (413)", who,
				  cl);
			return reply_json(c, MHD_HTTP_CONTENT_TOO_LARGE, "too_large");
		}
		return MHD_YES;
	}
	if (*upload_size) {
		/* A body without a length (chunked) is counted as it comes, and refused as soon
		 * as it passes the limit: waiting for its end would hold the connection until the
		 * peer stops sending (or the timeout). */
		if (rq->body->len + *upload_size > (guint64)s->cfg->serve.max_body) {
			g_autofree char *who = peer(c);
			*upload_size = 0;
			log_warnx("serve: %s: a body beyond [serve] max_body (413)", who);
			refuse_too_big(c);
			return MHD_NO;
		}
		g_byte_array_append(rq->body, (const guint8 *)upload, (guint)*upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	return deliver(s, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	server *s = cls;
	request *rq = *con_cls;

	if (rq == NULL)
		return;
	if (rq->counted)
		g_atomic_int_dec_and_test(&s->inflight);
	g_byte_array_unref(rq->body);
	g_free(rq);
	*con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	server *s = cls;
	const union MHD_ConnectionInfo *ci;
	conn_entry *e;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL)
		return;
	g_mutex_lock(&s->lock);
	e = g_hash_table_lookup(s->conns, GINT_TO_POINTER(ci->connect_fd));
	if (e && toe == MHD_CONNECTION_NOTIFY_STARTED && e->conn == NULL)
		e->conn = c;
	else if (e && toe == MHD_CONNECTION_NOTIFY_CLOSED && e->conn == c)
		g_hash_table_remove(s->conns, GINT_TO_POINTER(ci->connect_fd));
	g_mutex_unlock(&s->lock);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	g_autofree char *m = g_strdup_vprintf(fmt, ap);
	log_debug("serve: libmicrohttpd: %s", g_strchomp(m));
}

/* Splits "host:port" or "[v6]:port"; false when malformed. */
static bool split_listen(const char *addr, char **host, char **port)
{
	const char *colon;

	if (addr == NULL)
		return false;
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (close == NULL || close[1] != ':')
			return false;
		*host = g_strndup(addr + 1, (gsize)(close - addr - 1));
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return false;
		*host = g_strndup(addr, (gsize)(colon - addr));
	}
	*port = g_strdup(colon + 1);
	if (**port == 0 || strspn(*port, "0123456789") != strlen(*port) || **host == 0) {
		g_clear_pointer(host, g_free);
		g_clear_pointer(port, g_free);
		return false;
	}
	return true;
}

static int open_listener(const char *addr, sg_status *st, char **err)
{
	g_autofree char *host = NULL, *port = NULL;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE |
						     AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int fd, one = 1, rc;

	if (!split_listen(addr, &host, &port)) {
		*st = sg_fail(err, SG_ECONFIG, "[serve] listen: '%s' is not host:port; write e.g. "
			      "127.0.0.1:8025", addr ? addr : "");
		return -1;
	}
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
		*st = sg_fail(err, SG_ECONFIG, "[serve] listen: '%s': %s", addr,
			      gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
		int e = errno;
		*st = sg_fail(err, SG_EUNAVAIL, "[serve] listen: cannot listen on %s: %s", addr,
			      g_strerror(e));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* Shuts down the connections open longer than the timeout; MHD then closes them. */
static void cut_slow(server *s)
{
	gint64 now = g_get_monotonic_time(), limit = (gint64)s->cfg->serve.timeout * G_USEC_PER_SEC;
	GHashTableIter it;
	gpointer k, v;

	g_mutex_lock(&s->lock);
	g_hash_table_iter_init(&it, s->conns);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		conn_entry *e = v;
		if (e->start != G_MAXINT64 && now - e->start > limit) {
			log_warnx("serve: a connection open for more than %ds ([serve] timeout) is "
				  "cut", s->cfg->serve.timeout);
			shutdown(GPOINTER_TO_INT(k), SHUT_RDWR);
			e->start = G_MAXINT64;
		}
	}
	g_mutex_unlock(&s->lock);
}

char *sg_serve_url(const sg_config *cfg, char **err)
{
	const char *base = cfg->serve.public_url;
	g_autofree char *def = NULL;

	if (cfg->vin.callback_secret == NULL) {
		sg_fail(err, SG_ECONFIG, "[vin] callback_secret_file is not set: the secret of "
			"the delivery URL (at least 32 characters)");
		return NULL;
	}
	if (base == NULL)
		base = def = g_strdup_printf("http://%s", cfg->serve.listen);
	/* "https://gw.example.com/" must not give "//vin/", which the receiver refuses. */
	size_t n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		n--;
	return g_strdup_printf("%.*s/vin/%s", (int)n, base, cfg->vin.callback_secret);
}

sg_status sg_serve_run(const sg_config *cfg, sg_store *store, char **err)
{
	server s = { .cfg = cfg };
	struct MHD_Daemon *d = NULL;
	struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term, ign = {
		.sa_handler = SIG_IGN };
	sg_status st = SG_OK;
	int lfd;
	gint64 stop_by;
	unsigned pool = (unsigned)MIN(SERVE_THREADS, cfg->serve.max_connections);

	if (cfg->vin.callback_secret == NULL)
		return sg_fail(err, SG_ECONFIG, "[vin] callback_secret_file is not set: the secret "
			       "of the delivery URL (at least 32 characters)");
	if ((lfd = open_listener(cfg->serve.listen, &st, err)) < 0)
		return st;
	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		close(lfd);
		return sg_fail(err, SG_EINTERNAL, "pipe: %s", g_strerror(errno));
	}
	s.secret_sha = sg_sha256_hex(cfg->vin.callback_secret, strlen(cfg->vin.callback_secret));
	s.conns = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	g_mutex_init(&s.lock);

	d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC |
				     MHD_USE_ERROR_LOG,
			     0, NULL, NULL, on_request, &s,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->serve.max_connections,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->serve.timeout,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s,
			     MHD_OPTION_NOTIFY_CONNECTION, on_connection, &s,
			     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			     /* Last, as it may be left out: the library shares the connection
			      * limit among its threads, and wants no pool of one. */
			     pool > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, pool,
			     MHD_OPTION_END);
	if (d == NULL) {
		st = sg_fail(err, SG_EINTERNAL, "libmicrohttpd did not start");
		goto out;
	}
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGPIPE, &ign, NULL);
	log_info("serve: listening on %s (deliveries at /vin/<secret>; stockgate serve "
		 "--print-url shows it)", cfg->serve.listen);

	for (;;) {
		struct pollfd pf[2] = { { .fd = lfd, .events = POLLIN }, { .fd = sig_pipe[0],
									    .events = POLLIN } };
		int n = poll(pf, 2, 200);

		if (n < 0 && errno != EINTR) {
			st = sg_fail(err, SG_EINTERNAL, "poll: %s", g_strerror(errno));
			break;
		}
		if (n > 0 && (pf[1].revents & POLLIN)) {
			char c;
			if (read(sig_pipe[0], &c, 1) == 1)
				log_info("serve: signal %d: finishing the requests in flight", (int)c);
			break;
		}
		if (n > 0 && (pf[0].revents & POLLIN)) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);
			int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (fd >= 0) {
				conn_entry *e = g_new0(conn_entry, 1);
				e->start = g_get_monotonic_time();
				g_mutex_lock(&s.lock);
				g_hash_table_replace(s.conns, GINT_TO_POINTER(fd), e);
				g_mutex_unlock(&s.lock);
				if (MHD_add_connection(d, fd, (struct sockaddr *)&ss, sl) != MHD_YES) {
					/* Over the connection limit: the library closed it. */
					g_mutex_lock(&s.lock);
					g_hash_table_remove(s.conns, GINT_TO_POINTER(fd));
					g_mutex_unlock(&s.lock);
					log_warnx("serve: a connection refused: [serve] "
						  "max_connections (%d) are open",
						  cfg->serve.max_connections);
				}
			}
		}
		cut_slow(&s);
	}

	/* No new connection; what is in flight finishes (within the timeout). */
	close(lfd);
	lfd = -1;
	stop_by = g_get_monotonic_time() + (gint64)cfg->serve.timeout * G_USEC_PER_SEC;
	while (g_atomic_int_get(&s.inflight) > 0 && g_get_monotonic_time() < stop_by) {
		g_usleep(20000);
		cut_slow(&s);
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
out:
	if (d)
		MHD_stop_daemon(d);
	if (lfd >= 0)
		close(lfd);
	close(sig_pipe[0]);
	close(sig_pipe[1]);
	sig_pipe[0] = sig_pipe[1] = -1;
	g_hash_table_destroy(s.conns);
	g_mutex_clear(&s.lock);
	g_free(s.secret_sha);
	return st;
}
