/* transport-dir.c: the dir: report transport, one .eml file per report in an outbox directory. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h" /* before log.h, which needs bool from sg.h */
#include "log.h"
#include "util.h"

typedef struct {
	sg_transport base; /* first, so that a sg_transport * is a dir_transport * */
	char *dir;
	int dfd;           /* the outbox, open from the start: syncfs reports the write-back
	                    * errors seen since its descriptor was opened */
	GPtrArray *unsynced; /* paths written while deferred, not synced yet */
} dir_transport;

/* Reports written by this process, so that two in one second get distinct names. */
static unsigned dir_counter;

/*
 * The file is written under a dot name (which readers of the outbox skip) and renamed when
 * complete, so that nobody picks up half a report; link() refuses to replace an existing file.
 * Deferred (a poll's chunk), the file and the directory are synced by dir_sync instead.
 */
static sg_status dir_send(sg_transport *t, const char *envelope_from, const char *const *rcpts,
			  const char *data, size_t len, char **err)
{
	dir_transport *d = (dir_transport *)t;
	g_autofree char *tmp = g_strdup_printf("%s/.report.XXXXXX", d->dir);
	g_autofree char *path = NULL;
	int fd, e;

	fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		return sg_fail(err, SG_EIO, "report outbox %s: cannot create a file: %s", d->dir,
			       g_strerror(e));
	}
	if (fchmod(fd, 0600) < 0 || !sg_write_all(fd, data, len) ||
	    (!t->deferred && fsync(fd) < 0)) {
		e = errno;
		close(fd);
		unlink(tmp);
		return sg_fail(err, SG_EIO, "report outbox %s: write failed: %s", d->dir,
			       g_strerror(e));
	}
	if (close(fd) < 0) {
		e = errno;
		unlink(tmp);
		return sg_fail(err, SG_EIO, "report outbox %s: write failed: %s", d->dir,
			       g_strerror(e));
	}
	for (int tries = 0;; tries++) {
		g_free(path);
		path = g_strdup_printf("%s/%" G_GINT64_FORMAT "-%u-%ld.eml", d->dir, sg_now(),
				       ++dir_counter, (long)getpid());
		if (link(tmp, path) == 0)
			break;
		e = errno;
		if (e != EEXIST || tries >= 1000) {
			unlink(tmp);
			return sg_fail(err, SG_EIO, "report outbox %s: cannot name the report: %s",
				       d->dir, g_strerror(e));
		}
	}
	unlink(tmp);
	if (t->deferred)
		g_ptr_array_add(d->unsynced, g_strdup(path));
	else
		(void)fsync(d->dfd);
	log_debug("report for %s written to %s", rcpts && rcpts[0] ? rcpts[0] : "(nobody)", path);
	return SG_OK;
}

/* Whether each file written (a consumer of the outbox may have taken it already) and then the
 * directory are synced. */
static bool fsync_each(dir_transport *d)
{
	for (guint i = 0; i < d->unsynced->len; i++) {
		int fd = open(d->unsynced->pdata[i], O_RDONLY | O_CLOEXEC);

		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0 || fsync(fd) < 0) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			errno = e;
			return false;
		}
		close(fd);
	}
	return fsync(d->dfd) == 0;
}

/*
 * The deferred reports made durable at once: one syncfs of the outbox's file system costs one
 * cache flush for a whole chunk, where a sync of each file and of the directory cost two a
 * report. Where syncfs is refused (a filter), each file is synced (all: after a sync() of
 * everything, which reports no error).
 */
static sg_status dir_sync(sg_transport *t, bool all, char **err)
{
	dir_transport *d = (dir_transport *)t;

	if (d->unsynced->len == 0 && !all)
		return SG_OK;
	/* the test hook SG_CRASH=outbox-sync: the disk refuses the sync */
	if (sg_crash_due("outbox-sync"))
		return sg_fail(err, SG_EIO, "report outbox %s: sync failed: %s", d->dir,
			       g_strerror(EIO));
	if (syncfs(d->dfd) < 0) {
		int e = errno;
		if (e == ENOSYS || e == EPERM) {
			if (all)
				sync();
			if (fsync_each(d))
				goto synced;
			e = errno;
		}
		return sg_fail(err, SG_EIO, "report outbox %s: sync failed: %s", d->dir,
			       g_strerror(e));
	}
synced:
	g_ptr_array_set_size(d->unsynced, 0);
	return SG_OK;
}

static void dir_close(sg_transport *t)
{
	dir_transport *d = (dir_transport *)t;

	close(d->dfd);
	g_ptr_array_unref(d->unsynced);
	g_free(d->dir);
	g_free(d);
}

static const sg_transport_ops dir_ops = {
	.name = "dir",
	.done = "written",
	.send = dir_send,
	.sync = dir_sync,
	.close = dir_close,
};

sg_status sg_transport_dir_open(const char *dir, sg_transport **out, char **err)
{
	struct stat st;
	dir_transport *d;

	*out = NULL;
	if (dir == NULL || *dir == '\0')
		return sg_fail(err, SG_ECONFIG, "[report] url: dir: names no directory");
	if (stat(dir, &st) < 0) {
		int e = errno;
		return sg_fail(err, SG_EIO,
			       "report outbox %s: %s (create the directory or fix [report] url)", dir,
			       g_strerror(e));
	}
	if (!S_ISDIR(st.st_mode))
		return sg_fail(err, SG_EIO, "report outbox %s: not a directory (fix [report] url)",
			       dir);
	if (access(dir, W_OK | X_OK) < 0) {
		int e = errno;
		return sg_fail(err, SG_EIO, "report outbox %s: not writable: %s", dir,
			       g_strerror(e));
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int e = errno;
		return sg_fail(err, SG_EIO, "report outbox %s: %s", dir, g_strerror(e));
	}
	d = g_new0(dir_transport, 1);
	d->base.ops = &dir_ops;
	d->dir = g_strdup(dir);
	d->dfd = dfd;
	d->unsynced = g_ptr_array_new_with_free_func(g_free);
	*out = &d->base;
	return SG_OK;
}
