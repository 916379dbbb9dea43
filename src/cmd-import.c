/* cmd-import.c: `stockgate import warehouses|remains --dealer ID FILE.csv`: apply a CSV without e-mail. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "log.h"
#include "stock.h"
#include "util.h"

static const char usage_text[] =
	"usage: stockgate import warehouses|remains --dealer ID FILE.csv [--dry-run]\n"
	"Applies a dealer's CSV to the local store with the e-mail channel's semantics (all or\n"
	"nothing) and prints the file's result as JSON. --dry-run rolls it back.\n"
	"Exit 0 applied, 65 rejected, 66 no such file or dealer.\n";

sg_status cmd_import(sg_ctx *ctx, int argc, char **argv)
{
	const char *dealer = NULL;
	bool dry_run = false;
	const sg_opt opts[] = {
		{ "dealer", .value = &dealer },
		{ "dry-run", .flag = &dry_run },
		{ NULL },
	};
	g_autoptr(sg_file_result) fr = NULL;
	g_autoptr(sg_dealer) d = NULL;
	g_autofree char *err = NULL;
	g_autofree char *base = NULL;
	g_autofree char *json = NULL;
	sg_store *store = NULL;
	sg_status st;

	if (!sg_cmd_options(argc, argv, "", opts, usage_text, &st))
		return st;
	if (argc - optind != 2 || !dealer ||
	    (strcmp(argv[optind], "warehouses") != 0 && strcmp(argv[optind], "remains") != 0))
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	const char *kind = argv[optind], *path = argv[optind + 1];

	if (access(path, R_OK) != 0)
		return sg_cmd_fail(SG_ENOINPUT, err = g_strdup_printf("%s: %s; check the path", path,
								       g_strerror(errno)));
	st = sg_ctx_dealer(ctx, dealer, &store, &d);
	if (st != SG_OK)
		return st;
	st = sg_store_begin(store, &err);
	if (st != SG_OK)
		goto out;

	base = g_path_get_basename(path);
	fr = sg_file_result_new(base);
	/* The mirror needs the dealer's key, which only a message carries: an import changes the
	 * local store only. */
	sg_stock_ctx sctx = {
		.dealer = d->id,
		.kind = kind,
		.date = sg_now(),
		.max_rows = ctx->cfg->limits.max_rows,
		.max_field_length = ctx->cfg->limits.max_field_length,
	};
	st = sg_stock_apply_file(store, &sctx, path, fr, &err);
	if (st != SG_OK) {
		sg_store_rollback(store);
		goto out;
	}
	if (dry_run || !fr->applied) {
		sg_store_rollback(store);
	} else {
		st = sg_store_commit(store, &err);
		if (st != SG_OK) {
			sg_store_rollback(store);
			goto out;
		}
	}

	json = sg_cmd_file_json(fr);
	printf("%s\n", json);
	if (!fr->applied) {
		sg_cmd_print_verdict(stderr, path, fr);
		st = SG_EDATA;
	} else {
		log_info("%s: %s for dealer %s %s: %ld rows, %ld added, %ld updated, %ld deleted, "
			 "%ld unchanged, %ld skipped",
			 path, kind, d->id, dry_run ? "checked (dry run, nothing changed)" : "applied",
			 fr->rows, fr->added, fr->updated, fr->deleted, fr->unchanged, fr->skipped);
	}
out:
	sg_store_close(store);
	if (st != SG_OK && st != SG_EDATA)
		return sg_cmd_fail(st, err);
	return st;
}
