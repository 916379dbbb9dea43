/* cmd.c: what the subcommands share: opening the store, reporting a failure, printing usage. */
#include "cmd.h"
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
