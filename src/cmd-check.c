/* cmd-check.c: `stockgate check warehouses|remains FILE.csv`: validate a CSV offline, change nothing. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "log.h"
#include "stock.h"

static const char usage_text[] =
	"usage: stockgate check warehouses|remains FILE.csv [--format text|json]\n"
	"Decodes and validates a dealer's CSV as the e-mail channel would, without a dealer and\n"
	"without changing anything. Exit 0 valid, 65 rejected, 66 no such file.\n";

static const char *delimiter_name(char d)
{
	switch (d) {
	case ';': return "';'";
	case ',': return "','";
	case '\t': return "TAB";
	case '|': return "'|'";
	default: return "unknown";
	}
}

sg_status cmd_check(sg_ctx *ctx, int argc, char **argv)
{
	const char *format = "text";
	const sg_opt opts[] = { { "format", .value = &format }, { NULL } };
	g_autoptr(sg_config) own_cfg = NULL;
	g_autoptr(sg_file_result) fr = NULL;
	g_autofree char *err = NULL;
	g_autofree char *base = NULL;
	sg_store *store = NULL;
	sg_status st;

	if (!sg_cmd_options(argc, argv, "", opts, usage_text, &st))
		return st;
	if (!sg_cmd_format_ok("check", format, "text", "json"))
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	if (argc - optind != 2 ||
	    (strcmp(argv[optind], "warehouses") != 0 && strcmp(argv[optind], "remains") != 0))
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	const char *kind = argv[optind], *path = argv[optind + 1];

	if (access(path, R_OK) != 0)
		return sg_cmd_fail(SG_ENOINPUT, err = g_strdup_printf("%s: %s; check the path", path,
								       g_strerror(errno)));

	/* The limits are the configured ones when a configuration is at hand: check must judge a
	 * file as the gateway would. Without one, the defaults. */
	const sg_config *cfg = ctx->cfg;
	if (!cfg) {
		st = sg_config_load(ctx->config_path, &own_cfg, &err);
		if (st == SG_ENOINPUT) {
			own_cfg = sg_config_defaults();
		} else if (st != SG_OK) {
			log_warnx("%s; checking with the default limits", err);
			own_cfg = sg_config_defaults();
		}
		g_clear_pointer(&err, g_free);
		cfg = own_cfg;
	}

	st = sg_store_open("", &store, &err);
	if (st != SG_OK)
		return sg_cmd_fail(st, err);
	st = sg_store_begin(store, &err);
	if (st != SG_OK)
		goto out;

	base = g_path_get_basename(path);
	fr = sg_file_result_new(base);
	sg_stock_ctx sctx = {
		.dealer = NULL,
		.kind = kind,
		.max_rows = cfg->limits.max_rows,
		.max_field_length = cfg->limits.max_field_length,
	};
	st = sg_stock_apply_file(store, &sctx, path, fr, &err);
	sg_store_rollback(store);
	if (st != SG_OK)
		goto out;

	if (strcmp(format, "json") == 0) {
		g_autofree char *json = sg_cmd_file_json(fr);
		printf("%s\n", json);
	} else {
		printf("%s: %s file", path, kind);
		if (fr->encoding)
			printf(", encoding %s", fr->encoding);
		if (fr->delimiter)
			printf(", delimiter %s", delimiter_name(fr->delimiter));
		printf(", %ld row%s\n", fr->rows, fr->rows == 1 ? "" : "s");
		sg_cmd_print_verdict(stdout, path, fr);
		if (fr->applied) {
			if (strcmp(kind, "remains") == 0)
				printf("%s: valid: would replace the remains of warehouse '%s' with "
				       "these %ld rows\n",
				       path, fr->warehouse ? fr->warehouse : "?", fr->rows);
			else
				printf("%s: valid: would make these %ld warehouses the dealer's whole "
				       "list (the others deleted with their remains)\n",
				       path, fr->rows);
		}
	}
	st = fr->applied ? SG_OK : SG_EDATA;
out:
	sg_store_close(store);
	if (st != SG_OK && st != SG_EDATA)
		return sg_cmd_fail(st, err);
	return st;
}
