/* transport.c: picks the report transport from [report] url and closes it. */
#include "transport.h"

#include <string.h>

#include "util.h"

sg_status sg_transport_open(const sg_config *cfg, sg_transport **out, char **err)
{
	const char *url = cfg->report.url;
	const char *where = cfg->path ? cfg->path : "configuration";

	*out = NULL;
	if (url == NULL || *url == '\0')
		return sg_fail(err, SG_ECONFIG,
			       "%s: [report] url is not set: use dir:/path/to/outbox or smtps://host:465",
			       where);
	if (g_str_has_prefix(url, "dir:")) {
		if (url[4] == '\0')
			return sg_fail(err, SG_ECONFIG,
				       "%s: [report] url '%s' names no directory: use dir:/path/to/outbox",
				       where, url);
		return sg_transport_dir_open(url + 4, out, err);
	}
	if (g_ascii_strncasecmp(url, "smtp://", 7) == 0 || g_ascii_strncasecmp(url, "smtps://", 8) == 0)
		return sg_transport_smtp_open(cfg, out, err);
	return sg_fail(err, SG_ECONFIG,
		       "%s: [report] url '%s' has an unknown scheme: use smtps://, smtp:// or dir:",
		       where, url);
}

void sg_transport_close(sg_transport *t)
{
	if (t != NULL && t->ops != NULL && t->ops->close != NULL)
		t->ops->close(t);
}

bool sg_transport_defer(sg_transport *t, bool on)
{
	if (t == NULL || t->ops->sync == NULL)
		return false;
	t->deferred = on && *sg_boot_id() != '\0';
	return t->deferred;
}

sg_status sg_transport_sync(sg_transport *t, bool all, char **err)
{
	if (t == NULL || t->ops->sync == NULL)
		return SG_OK;
	return t->ops->sync(t, all, err);
}
