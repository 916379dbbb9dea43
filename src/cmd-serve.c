/* cmd-serve.c: `stockgate serve [--print-url]`: the receiver of the VIN service's report deliveries. */
#include <stdio.h>

#include "cmd.h"
#include "log.h"
#include "serve.h"

static const char usage_text[] =
	"usage: stockgate serve [--print-url]\n"
	"\n"
	"Receives the VIN service's report deliveries (POST, or GET with a query, to\n"
	"/vin/SECRET on [serve] listen, default 127.0.0.1:8025) until SIGTERM, files each report\n"
	"under the state directory (reports/JOB/ROW-VIN.pdf) with its row of the batch journal,\n"
	"and only then answers 200 {\"ok\":true}. Put it behind a TLS reverse proxy (see\n"
	"stockgate(1)). A wrong secret is a 404, a body beyond [serve] max_body a 413, a\n"
	"malformed delivery a 400 with its reason, a busy state db a 503 (the service retries).\n"
	"The secret is [vin] callback_secret_file (at least 32 characters).\n"
	"\n"
	"  --print-url   print the URL to give the service ([serve] public_url, else\n"
	"                http://listen, + /vin/SECRET) and exit; it holds the secret\n"
	"  --help        show this help\n"
	"\n"
	"Exit status: 0 stopped by SIGTERM or SIGINT (requests in flight finished), 69 the\n"
	"address cannot be bound, 78 configuration error.\n";

sg_status cmd_serve(sg_ctx *ctx, int argc, char **argv)
{
	bool print_url = false;
	const sg_opt opts[] = { { "print-url", .flag = &print_url }, { NULL } };
	g_autofree char *err = NULL;
	sg_store *store = NULL;
	sg_status st;

	if (!sg_cmd_options(argc, argv, "", opts, usage_text, &st))
		return st;
	if (argc != optind)
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	if (print_url) {
		g_autofree char *url = sg_serve_url(ctx->cfg, &err);
		if (url == NULL)
			return sg_cmd_fail(SG_ECONFIG, err);
		printf("%s\n", url);
		return fflush(stdout) == 0 ? SG_OK : SG_EIO;
	}
	if ((st = sg_ctx_store(ctx, &store)) != SG_OK)
		return st;
	st = sg_serve_run(ctx->cfg, store, &err);
	sg_store_close(store);
	if (st != SG_OK)
		return sg_cmd_fail(st, err);
	return SG_OK;
}
