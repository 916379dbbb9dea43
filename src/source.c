/* source.c: opens the mail source named by [source] url, and reads message files given on the
 * command line (`process FILE.eml…|-`). */
#include "source.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

sg_status sg_source_open(const sg_config *cfg, sg_source **out, char **err)
{
	const char *url = cfg->source.url;
	*out = NULL;
	if (!url || !*url)
		return sg_fail(err, SG_ECONFIG, "%s: [source] url is not set",
			       cfg->path ? cfg->path : "configuration");
	if (g_str_has_prefix(url, "maildir:"))
		return sg_source_maildir_open(cfg, url + strlen("maildir:"), out, err);
	if (g_ascii_strncasecmp(url, "imaps://", 8) == 0 || g_ascii_strncasecmp(url, "imap://", 7) == 0)
		return sg_source_imap_open(cfg, out, err);
	return sg_fail(err, SG_ECONFIG,
		       "%s: [source] url '%s': use imaps://host/MAILBOX, imap://… or maildir:/path",
		       cfg->path ? cfg->path : "configuration", url);
}

void sg_source_close(sg_source *s)
{
	if (s)
		s->ops->close(s);
}

sg_status sg_source_fetch_set(sg_source *s, sg_source_msg **ms, guint n, gint64 max_size,
			      char **err)
{
	if (s->ops->fetch_set)
		return s->ops->fetch_set(s, ms, n, max_size, err);
	for (guint i = 0; i < n; i++) {
		g_autofree char *e = NULL;
		bool big = max_size > 0 && ms[i]->size > max_size;
		sg_status st = s->ops->fetch(s, ms[i], big, &e);

		if (st == SG_ETEMP) {
			log_warnx("%s: %s", ms[i]->id, e ? e : "not fetched; next poll");
			if (ms[i]->path_is_temp)
				unlink(ms[i]->path);
			g_clear_pointer(&ms[i]->path, g_free);
			continue;
		}
		if (st != SG_OK)
			return sg_fail(err, st, "%s: %s", ms[i]->id, e ? e : "cannot fetch");
	}
	return SG_OK;
}

sg_status sg_source_move_set(sg_source *s, sg_source_msg **ms, guint n, const char *folder,
			     char **err)
{
	if (s->ops->move_set)
		return s->ops->move_set(s, ms, n, folder, err);
	for (guint i = 0; i < n; i++) {
		sg_status st = s->ops->move(s, ms[i], folder, err);

		if (st != SG_OK)
			return st;
	}
	return SG_OK;
}

void sg_source_msg_free(sg_source_msg *m)
{
	if (!m)
		return;
	if (m->path && m->path_is_temp)
		unlink(m->path);
	g_free(m->id);
	g_free(m->path);
	g_free(m->mailbox);
	g_free(m);
}

/* Copies standard input into a private temporary file. */
static sg_status spool_stdin(char **path, gint64 *size, char **err)
{
	int fd = sg_scratch_file("stdin", path, err);
	if (fd < 0)
		return SG_EIO;
	char buf[65536];
	gint64 total = 0;
	sg_status st = SG_OK;
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			st = sg_fail(err, SG_EIO, "standard input: %s", g_strerror(errno));
			break;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				st = sg_fail(err, SG_EIO, "%s: %s", *path, g_strerror(errno));
				break;
			}
			off += w;
		}
		if (st)
			break;
		total += n;
	}
	close(fd);
	if (st) {
		unlink(*path);
		g_clear_pointer(path, g_free);
		return st;
	}
	*size = total;
	return SG_OK;
}

sg_status sg_source_msg_from_file(const char *arg, sg_source_msg **out, char **err)
{
	*out = NULL;
	sg_source_msg *m = g_new0(sg_source_msg, 1);
	m->uidvalidity = m->uid = -1;
	if (strcmp(arg, "-") == 0) {
		sg_status st = spool_stdin(&m->path, &m->size, err);
		if (st) {
			sg_source_msg_free(m);
			return st;
		}
		m->id = g_strdup("file:-");
		m->path_is_temp = true;
		m->received = sg_now();
		*out = m;
		return SG_OK;
	}
	struct stat sb;
	if (stat(arg, &sb) != 0) {
		int e = errno;
		sg_source_msg_free(m);
		return sg_fail(err, e == ENOENT || e == ENOTDIR ? SG_ENOINPUT : SG_EIO, "%s: %s", arg,
			       g_strerror(e));
	}
	if (!S_ISREG(sb.st_mode)) {
		sg_source_msg_free(m);
		return sg_fail(err, SG_ENOINPUT, "%s: not a regular file", arg);
	}
	if (access(arg, R_OK) != 0) {
		int e = errno;
		sg_source_msg_free(m);
		return sg_fail(err, SG_EIO, "%s: %s", arg, g_strerror(e));
	}
	m->id = g_strconcat("file:", arg, NULL);
	m->path = g_strdup(arg);
	m->size = (gint64)sb.st_size;
	m->received = (gint64)sb.st_mtime;
	*out = m;
	return SG_OK;
}
