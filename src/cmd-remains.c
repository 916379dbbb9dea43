/* cmd-remains.c: `stockgate remains export --dealer ID`: a dealer's stock as CSV or JSON. */
#include <cjson/cJSON.h>
#include <string.h>

#include "cmd.h"
#include "csvin.h"

static const char usage_text[] =
	"usage: stockgate remains export --dealer ID [--warehouse CODE] [--format csv|json]\n"
	"CSV (the default): header warehouse,article,quantity, UTF-8, RFC 4180, LF line ends.\n"
	"JSON: an array of {\"warehouse\",\"article\",\"quantity\"}, quantity a number.\n"
	"Sorted by warehouse, then article.\n";

struct out {
	sg_csv_writer *csv; /* or */
	cJSON *json;
};

static void emit(void *vctx, const char *warehouse, const char *article, long long quantity)
{
	struct out *o = vctx;

	if (o->json) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "warehouse", warehouse);
		cJSON_AddStringToObject(e, "article", article);
		cJSON_AddNumberToObject(e, "quantity", (double)quantity);
		cJSON_AddItemToArray(o->json, e);
	} else {
		char q[32];
		g_snprintf(q, sizeof q, "%lld", quantity);
		const char *cells[] = { warehouse, article, q };
		sg_csv_write_row(o->csv, cells, 3);
	}
}

sg_status cmd_remains(sg_ctx *ctx, int argc, char **argv)
{
	const char *dealer = NULL, *code = NULL, *format = "csv";
	const sg_opt opts[] = {
		{ "dealer", .value = &dealer },
		{ "warehouse", .value = &code },
		{ "format", .value = &format },
		{ NULL },
	};
	g_autofree char *err = NULL;
	g_autoptr(sg_dealer) d = NULL;
	struct out o = { 0 };
	sg_store *store = NULL;
	sg_status st;

	if (!sg_cmd_options(argc, argv, "", opts, usage_text, &st))
		return st;
	if (argc - optind != 1 || strcmp(argv[optind], "export") != 0 || !dealer ||
	    !sg_cmd_format_ok("remains", format, "csv", "json"))
		return sg_cmd_usage(usage_text, SG_EUSAGE);

	st = sg_ctx_dealer(ctx, dealer, &store, &d);
	if (st != SG_OK)
		return st;
	if (code) {
		g_autoptr(GPtrArray) list = NULL;
		bool found = false;
		st = sg_warehouse_list(store, dealer, &list, &err);
		for (guint i = 0; st == SG_OK && i < list->len; i++)
			if (strcmp(((sg_warehouse *)g_ptr_array_index(list, i))->code, code) == 0)
				found = true;
		if (st == SG_OK && !found)
			st = sg_fail(&err, SG_ENOINPUT,
				     "dealer '%s' has no warehouse '%s'; see `stockgate warehouses "
				     "list --dealer %s`",
				     dealer, code, dealer);
	}
	if (st != SG_OK) {
		sg_store_close(store);
		return sg_cmd_fail(st, err);
	}

	if (strcmp(format, "json") == 0) {
		o.json = cJSON_CreateArray();
	} else {
		static const char *const header[] = { "warehouse", "article", "quantity" };
		o.csv = sg_csv_writer_new(stdout, "utf-8", ',', false, false, "\n");
		sg_csv_write_row(o.csv, header, 3);
	}
	st = sg_remains_each(store, dealer, code, emit, &o, &err);
	sg_store_close(store);
	if (o.json) {
		if (st == SG_OK) {
			char *s = cJSON_PrintUnformatted(o.json);
			printf("%s\n", s);
			cJSON_free(s);
		}
		cJSON_Delete(o.json);
	} else if (!sg_csv_writer_close(o.csv) && st == SG_OK) {
		st = sg_fail(&err, SG_EIO, "standard output: write failed");
	}
	if (st != SG_OK)
		return sg_cmd_fail(st, err);
	return SG_OK;
}
