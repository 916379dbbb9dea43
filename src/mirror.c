/* mirror.c: the dealer REST API client of seed 004 (placeholder until the mirror lands). */
#include "mirror.h"
#include "log.h"

sg_status sg_mirror_open(const sg_config *cfg, sg_mirror **out, char **err)
{
	*out = NULL;
	if (cfg->mirror.url && *cfg->mirror.url)
		return sg_fail(err, SG_ECONFIG, "[mirror] url: the REST mirror is not built yet");
	return SG_OK;
}

void sg_mirror_close(sg_mirror *m)
{
}

sg_status sg_mirror_warehouses(sg_mirror *m, const char *key, sg_store *st, sg_file_result *fr,
			       char **err)
{
	return sg_fail(err, SG_EINTERNAL, "mirror not built");
}

sg_status sg_mirror_remains(sg_mirror *m, const char *key, const char *code, sg_store *st,
			    sg_file_result *fr, char **err)
{
	return sg_fail(err, SG_EINTERNAL, "mirror not built");
}
