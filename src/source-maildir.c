/* source-maildir.c: the Maildir mail source: messages in new/ and cur/ in arrival order, moved
 * by rename(2) into the sub-folders .Processed, .Rejected, .Failed. */
#include "source.h"
#include "log.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
	sg_source base;
	char *dir;
} maildir_source;

typedef struct {
	sg_source_msg *m;
	gint64 mtime_ns;
	char *name;
} entry;

static gint cmp_entry(gconstpointer a, gconstpointer b)
{
	const entry *x = a, *y = b;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The message name of a Maildir file: the part before the ":2," info suffix. */
static char *unique_name(const char *file)
{
	const char *colon = strchr(file, ':');
	return colon ? g_strndup(file, (gsize)(colon - file)) : g_strdup(file);
}

static sg_status scan(maildir_source *s, const char *sub, GArray *entries, char **err)
{
	g_autofree char *d = g_build_filename(s->dir, sub, NULL);
	g_autoptr(GError) gerr = NULL;
	GDir *dh = g_dir_open(d, 0, &gerr);
	if (!dh)
		return sg_fail(err, SG_EIO, "%s: %s", d, gerr->message);
	const char *name;
	while ((name = g_dir_read_name(dh))) {
		if (name[0] == '.')
			continue;
		g_autofree char *p = g_build_filename(d, name, NULL);
		struct stat sb;
		if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue; /* vanished meanwhile, or not a message */
		sg_source_msg *m = g_new0(sg_source_msg, 1);
		g_autofree char *uniq = unique_name(name);
		m->id = g_strconcat("maildir:", uniq, NULL);
		m->path = g_steal_pointer(&p);
		m->size = (gint64)sb.st_size;
		m->received = (gint64)sb.st_mtime;
		m->uidvalidity = m->uid = -1;
		entry e = {m, (gint64)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec,
			   g_strdup(name)};
		g_array_append_val(entries, e);
	}
	g_dir_close(dh);
	return SG_OK;
}

static sg_status maildir_list(sg_source *src, int max, GPtrArray **out, char **err)
{
	maildir_source *s = (maildir_source *)src;
	GArray *entries = g_array_new(FALSE, FALSE, sizeof(entry));
	sg_status st = scan(s, "new", entries, err);
	if (!st)
		st = scan(s, "cur", entries, err);
	g_array_sort(entries, cmp_entry);
	GPtrArray *msgs = g_ptr_array_new_with_free_func((GDestroyNotify)sg_source_msg_free);
	for (guint i = 0; i < entries->len; i++) {
		entry *e = &g_array_index(entries, entry, i);
		if (!st && (max <= 0 || (int)msgs->len < max))
			g_ptr_array_add(msgs, e->m);
		else
			sg_source_msg_free(e->m);
		g_free(e->name);
	}
	g_array_free(entries, TRUE);
	if (st) {
		g_ptr_array_unref(msgs);
		return st;
	}
	*out = msgs;
	return SG_OK;
}

/* The file is local: the pipeline reads only its header when it is over the size limit. */
static sg_status maildir_fetch(sg_source *src, sg_source_msg *m, bool headers_only, char **err)
{
	/* The body is the file itself; only check that it is still there. */
	if (!m->path || access(m->path, R_OK) != 0)
		return sg_fail(err, SG_ETEMP, "%s: gone from the Maildir (moved by another poller?)",
			       m->id);
	return SG_OK;
}

static sg_status mkdir_one(const char *d, char **err)
{
	if (mkdir(d, 0700) != 0 && errno != EEXIST)
		return sg_fail(err, SG_EIO, "%s: %s", d, g_strerror(errno));
	return SG_OK;
}

static sg_status maildir_move(sg_source *src, sg_source_msg *m, const char *folder, char **err)
{
	maildir_source *s = (maildir_source *)src;
	if (!folder || !*folder || strchr(folder, '/') || strcmp(folder, ".") == 0 ||
	    strcmp(folder, "..") == 0)
		return sg_fail(err, SG_ECONFIG, "[source] folder name '%s' cannot be used in a Maildir",
			       folder ? folder : "");
	g_autofree char *sub = folder[0] == '.' ? g_strdup(folder) : g_strconcat(".", folder, NULL);
	g_autofree char *fdir = g_build_filename(s->dir, sub, NULL);
	sg_status st = mkdir_one(fdir, err);
	static const char *const parts[] = {"cur", "new", "tmp"};
	for (size_t i = 0; !st && i < G_N_ELEMENTS(parts); i++) {
		g_autofree char *p = g_build_filename(fdir, parts[i], NULL);
		st = mkdir_one(p, err);
	}
	if (st)
		return st;
	/* new/ stays new/, cur/ stays cur/: the file name (and its flags) is kept. */
	g_autofree char *parent = g_path_get_dirname(m->path);
	g_autofree char *subdir = g_path_get_basename(parent);
	g_autofree char *base = g_path_get_basename(m->path);
	g_autofree char *to = g_build_filename(fdir, strcmp(subdir, "new") == 0 ? "new" : "cur", base,
					       NULL);
	if (rename(m->path, to) != 0) {
		if (errno == ENOENT) {
			log_warnx("%s: already gone from the Maildir (another poller?)", m->id);
			return SG_OK;
		}
		return sg_fail(err, SG_EIO, "%s → %s: %s", m->path, to, g_strerror(errno));
	}
	log_debug("%s: moved to %s", m->id, sub);
	g_free(m->path);
	m->path = g_steal_pointer(&to);
	return SG_OK;
}

static void maildir_close(sg_source *src)
{
	maildir_source *s = (maildir_source *)src;
	if (!s)
		return;
	g_free(s->dir);
	g_free(s);
}

static const sg_source_ops maildir_ops = {
	.name = "maildir",
	.list = maildir_list,
	.fetch = maildir_fetch,
	.move = maildir_move,
	.close = maildir_close,
};

sg_status sg_source_maildir_open(const sg_config *cfg, const char *dir, sg_source **out,
				 char **err)
{
	*out = NULL;
	if (!dir || !*dir)
		return sg_fail(err, SG_ECONFIG, "[source] url 'maildir:' names no directory");
	if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
		return sg_fail(err, SG_ECONFIG, "[source] url 'maildir:%s': no such directory", dir);
	/* A fresh Maildir may lack its sub-directories until the first delivery. */
	static const char *const parts[] = {"cur", "new", "tmp"};
	for (size_t i = 0; i < G_N_ELEMENTS(parts); i++) {
		g_autofree char *p = g_build_filename(dir, parts[i], NULL);
		sg_status st = mkdir_one(p, err);
		if (st)
			return st;
	}
	maildir_source *s = g_new0(maildir_source, 1);
	s->base.ops = &maildir_ops;
	s->dir = g_strdup(dir);
	*out = &s->base;
	return SG_OK;
}
