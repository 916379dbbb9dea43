/* cmd-process.c: `stockgate process [--dry-run] FILE.eml…|-`: the pipeline on message files. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "log.h"
#include "pipeline.h"

static const char usage[] =
	"usage: stockgate process [--dry-run] FILE.eml...|-\n"
	"\n"
	"Runs the e-mail pipeline on message files (or one message on standard input, as an MTA\n"
	"pipe): checks the sender and the key, applies the attached CSV files, writes the report\n"
	"and prints one JSON result line per message. A lookup list (subject vin, frame, …) is\n"
	"accepted as a batch job: `stockgate poll` or `stockgate batch run-jobs` runs it and mails\n"
	"the results.\n"
	"\n"
	"  --dry-run   do everything, change nothing, send no report\n"
	"  --help      show this help\n"
	"\n"
	"Exit status: 0 done, 75 when a message was deferred (try again later).\n";

sg_status cmd_process(sg_ctx *ctx, int argc, char **argv)
{
	bool dry_run = false, deferred = false;
	const sg_opt opts[] = { { "dry-run", .flag = &dry_run }, { NULL } };
	sg_status worst = SG_OK, st;
	sg_store *store = NULL;
	sg_transport *transport = NULL;
	sg_mirror *mirror = NULL;
	g_autofree char *err = NULL;

	if (!sg_cmd_options(argc, argv, "+", opts, usage, &st))
		return st;
	if (optind >= argc)
		return sg_cmd_usage(usage, SG_EUSAGE);

	st = sg_ctx_store(ctx, &store);
	if (st != SG_OK)
		return st;
	if (!dry_run && (st = sg_transport_open(ctx->cfg, &transport, &err)) != SG_OK)
		goto out;
	if ((st = sg_mirror_open(ctx->cfg, &mirror, &err)) != SG_OK)
		goto out;

	sg_pipeline p = {
		.cfg = ctx->cfg,
		.store = store,
		.transport = transport,
		.mirror = mirror,
		.dry_run = dry_run,
	};
	for (int i = optind; i < argc; i++) {
		sg_source_msg *m = NULL;
		g_autofree char *rec = NULL, *e = NULL;
		const char *outcome = NULL, *folder = NULL;

		st = sg_source_msg_from_file(argv[i], &m, &e);
		if (st == SG_OK)
			st = sg_pipeline_handle(&p, m, &rec, &outcome, &folder, &e);
		if (m)
			sg_source_msg_free(m);
		if (st != SG_OK) {
			log_error("%s", e ? e : argv[i]);
			if (worst == SG_OK)
				worst = st;
			continue;
		}
		printf("%s\n", rec);
		fflush(stdout);
		if (strcmp(outcome, "deferred") == 0)
			deferred = true;
	}
	st = worst != SG_OK ? worst : deferred ? SG_ETEMP : SG_OK;
out:
	if (err)
		log_error("%s", err);
	sg_mirror_close(mirror);
	if (transport)
		sg_transport_close(transport);
	sg_store_close(store);
	return st;
}
