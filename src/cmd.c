/* cmd.c: what the subcommands share: opening the store, reporting a failure, options, usage. */
#include "cmd.h"
#include <cjson/cJSON.h>
#include <getopt.h>
#include <string.h>

#include "log.h"

sg_status sg_ctx_store(sg_ctx *ctx, sg_store **out)
{
	g_autofree char *err = NULL;
	sg_status st;

	*out = NULL;
	if (!ctx->cfg) {
		log_error("internal: the command needs a configuration but none was loaded");
		return SG_EINTERNAL;
	}
	st = sg_store_open(ctx->cfg->store.path, out, &err);
	if (st != SG_OK) {
		log_error("%s: cannot open the store ([store] path in %s): %s",
			  ctx->cfg->store.path, ctx->cfg->path ? ctx->cfg->path : "the defaults",
			  err ? err : "unknown error");
		return st;
	}
	return SG_OK;
}

sg_status sg_ctx_dealer(sg_ctx *ctx, const char *id, sg_store **store, sg_dealer **dealer)
{
	g_autofree char *err = NULL;
	sg_status st = sg_ctx_store(ctx, store);

	if (st != SG_OK)
		return st;
	st = sg_dealer_get(*store, id, dealer, &err);
	if (st == SG_ENOINPUT) {
		g_clear_pointer(&err, g_free);
		sg_fail(&err, st, "dealer '%s': no such dealer; see `stockgate dealer list`", id);
	}
	if (st != SG_OK) {
		sg_store_close(*store);
		*store = NULL;
		return sg_cmd_fail(st, err);
	}
	return SG_OK;
}

sg_status sg_cmd_fail(sg_status st, const char *err)
{
	if (err)
		log_error("%s", err);
	return st;
}

sg_status sg_cmd_usage(const char *usage, sg_status st)
{
	FILE *f = st == SG_OK ? stdout : stderr;

	fputs(usage, f);
	if (*usage && usage[strlen(usage) - 1] != '\n')
		fputc('\n', f);
	return st;
}

/* What getopt_long returns for row i: its letter, else a value past every char. */
static int opt_val(const sg_opt *o, size_t i)
{
	return o->letter ? o->letter : 256 + (int)i;
}

bool sg_cmd_options(int argc, char **argv, const char *order, const sg_opt *opts,
		    const char *usage, sg_status *st)
{
	size_t n = 0;
	int c;

	while (opts && opts[n].name)
		n++;
	/* --help goes last: getopt_long names the candidates of an ambiguous abbreviation in table
	 * order, and a command's own options come first. */
	g_autofree struct option *longopts = g_new0(struct option, n + 2);
	g_autoptr(GString) shortopts = g_string_new(order);
	g_string_append_c(shortopts, 'h');
	for (size_t i = 0; i < n; i++) {
		longopts[i] = (struct option){ opts[i].name,
					       opts[i].value ? required_argument : no_argument, NULL,
					       opt_val(&opts[i], i) };
		if (opts[i].letter)
			g_string_append_printf(shortopts, "%c%s", opts[i].letter,
					       opts[i].value ? ":" : "");
	}
	longopts[n] = (struct option){ "help", no_argument, NULL, 'h' };

	while ((c = getopt_long(argc, argv, shortopts->str, longopts, NULL)) != -1) {
		const sg_opt *o = NULL;

		for (size_t i = 0; i < n && !o; i++)
			if (c == opt_val(&opts[i], i))
				o = &opts[i];
		if (!o) {
			*st = sg_cmd_usage(usage, c == 'h' ? SG_OK : SG_EUSAGE);
			return false;
		}
		if (o->value)
			*o->value = optarg;
		else
			*o->flag = true;
	}
	return true;
}

bool sg_cmd_format_ok(const char *cmd, const char *format, const char *a, const char *b)
{
	if (strcmp(format, a) == 0 || strcmp(format, b) == 0)
		return true;
	log_error("%s: --format '%s': write %s or %s", cmd, format, a, b);
	return false;
}

/*
 * Helpers of `check` and `import`, which print one file's verdict the same way.
 */

/* "FILE:LINE: column 'X': message" for every error, warnings, then the verdict. */
void sg_cmd_print_verdict(FILE *f, const char *path, const sg_file_result *fr)
{
	for (guint i = 0; i < fr->errors->len; i++) {
		const sg_issue *is = g_ptr_array_index(fr->errors, i);
		g_autofree char *where = is->line > 0 ? g_strdup_printf("%s:%ld", path, is->line)
						      : g_strdup(path);
		if (is->column)
			fprintf(f, "%s: column '%s': %s\n", where, is->column,
				is->message ? is->message : is->code);
		else
			fprintf(f, "%s: %s\n", where, is->message ? is->message : is->code);
	}
	for (guint i = 0; i < fr->warnings->len; i++) {
		const sg_issue *is = g_ptr_array_index(fr->warnings, i);
		g_autofree char *where = is->line > 0 ? g_strdup_printf("%s:%ld", path, is->line)
						      : g_strdup(path);
		fprintf(f, "%s: warning: %s%s%s%s\n", where, is->code, is->value ? " '" : "",
			is->value ? is->value : "", is->value ? "'" : "");
	}
	if (!fr->applied)
		fprintf(f, "%s: rejected: %s%s%s\n", path, fr->reason ? fr->reason : "rejected",
			fr->detail ? ": " : "", fr->detail ? fr->detail : "");
}

/* One element of "files" of the result record, printed by sg.c so that the shape is the same. */
char *sg_cmd_file_json(const sg_file_result *fr)
{
	g_autoptr(sg_result) r = sg_result_new("file:");
	g_autofree char *json = NULL;
	char *out = NULL;
	cJSON *root, *files;

	/* The record borrows fr only for printing. */
	g_ptr_array_set_free_func(r->files, NULL);
	g_ptr_array_add(r->files, (gpointer)fr);
	json = sg_result_to_json(r);
	root = json ? cJSON_Parse(json) : NULL;
	files = root ? cJSON_GetObjectItemCaseSensitive(root, "files") : NULL;
	if (cJSON_IsArray(files) && cJSON_GetArraySize(files) == 1)
		out = cJSON_PrintUnformatted(cJSON_GetArrayItem(files, 0));
	cJSON_Delete(root);
	if (!out)
		return g_strdup("{}");
	char *copy = g_strdup(out);
	cJSON_free(out);
	return copy;
}
