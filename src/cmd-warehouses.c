/* cmd-warehouses.c: `stockgate warehouses list --dealer ID`: a dealer's warehouses as CSV or JSON. */
#include <cjson/cJSON.h>
#include <string.h>

#include "cmd.h"
#include "csvin.h"

static const char usage_text[] =
	"usage: stockgate warehouses list --dealer ID [--format csv|json]\n"
	"CSV (the default): header code,address,contacts, UTF-8, RFC 4180, LF line ends.\n"
	"JSON: an array of {\"code\",\"address\",\"contacts\"}. Both sorted by code.\n";

sg_status cmd_warehouses(sg_ctx *ctx, int argc, char **argv)
{
	const char *dealer = NULL, *format = "csv";
	const sg_opt opts[] = {
		{ "dealer", .value = &dealer },
		{ "format", .value = &format },
		{ NULL },
	};
	g_autofree char *err = NULL;
	g_autoptr(GPtrArray) list = NULL;
	g_autoptr(sg_dealer) d = NULL;
	sg_store *store = NULL;
	sg_status st;

	if (!sg_cmd_options(argc, argv, "", opts, usage_text, &st))
		return st;
	if (argc - optind != 1 || strcmp(argv[optind], "list") != 0 || !dealer ||
	    !sg_cmd_format_ok("warehouses", format, "csv", "json"))
		return sg_cmd_usage(usage_text, SG_EUSAGE);

	st = sg_ctx_dealer(ctx, dealer, &store, &d);
	if (st != SG_OK)
		return st;
	st = sg_warehouse_list(store, dealer, &list, &err);
	sg_store_close(store);
	if (st != SG_OK)
		return sg_cmd_fail(st, err);

	if (strcmp(format, "json") == 0) {
		cJSON *arr = cJSON_CreateArray();
		for (guint i = 0; i < list->len; i++) {
			const sg_warehouse *w = g_ptr_array_index(list, i);
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "code", w->code);
			cJSON_AddStringToObject(o, "address", w->address ? w->address : "");
			cJSON_AddStringToObject(o, "contacts", w->contacts ? w->contacts : "");
			cJSON_AddItemToArray(arr, o);
		}
		char *s = cJSON_PrintUnformatted(arr);
		printf("%s\n", s);
		cJSON_free(s);
		cJSON_Delete(arr);
		return SG_OK;
	}
	sg_csv_writer *w = sg_csv_writer_new(stdout, "utf-8", ',', false, false, "\n");
	static const char *const header[] = { "code", "address", "contacts" };
	sg_csv_write_row(w, header, 3);
	for (guint i = 0; i < list->len; i++) {
		const sg_warehouse *wh = g_ptr_array_index(list, i);
		const char *cells[] = { wh->code, wh->address ? wh->address : "",
					wh->contacts ? wh->contacts : "" };
		sg_csv_write_row(w, cells, 3);
	}
	if (!sg_csv_writer_close(w))
		return sg_cmd_fail(SG_EIO, "standard output: write failed");
	return SG_OK;
}
