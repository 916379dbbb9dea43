/* mhd-floor.c: the floor of the receiver benchmark: a bare libmicrohttpd handler that reads and discards the body. */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	static int started;
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)cls, (void)url, (void)method, (void)version, (void)upload;
	if (*con_cls == NULL) {
		*con_cls = &started;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* discarded */
		return MHD_YES;
	}
	r = MHD_create_response_from_buffer(11, (void *)"{\"ok\":true}", MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

int main(int argc, char **argv)
{
	struct MHD_Daemon *d;

	if (argc != 2) {
		fprintf(stderr, "usage: mhd-floor PORT\n");
		return 64;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	/* The same threading and limits as `stockgate serve`. */
	d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, (uint16_t)atoi(argv[1]), NULL, NULL,
			     handler, NULL, MHD_OPTION_CONNECTION_LIMIT, 64u,
			     MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
	if (d == NULL)
		return 69;
	while (!stop)
		pause();
	MHD_stop_daemon(d);
	return 0;
}
