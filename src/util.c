/* util.c: small helpers shared by the modules: hashing, the clock, durations, sizes, text. */
#include "util.h"
#include "sg.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *sg_sha256_hex(const void *data, size_t len)
{
	return g_compute_checksum_for_data(G_CHECKSUM_SHA256, data, len);
}

char *sg_sha256_file(const char *path)
{
	g_autoptr(GChecksum) ck = g_checksum_new(G_CHECKSUM_SHA256);
	unsigned char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	while ((n = read(fd, buf, sizeof buf)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return NULL;
		}
		g_checksum_update(ck, buf, (gssize)n);
	}
	close(fd);
	return g_strdup(g_checksum_get_string(ck));
}

/* Compares every byte whatever the first difference, so timing does not tell a key's prefix. */
bool sg_secure_equal(const char *a, const char *b)
{
	size_t la, lb;
	unsigned char d = 0;

	if (a == NULL || b == NULL)
		return false;
	la = strlen(a);
	lb = strlen(b);
	if (la != lb)
		return false;
	for (size_t i = 0; i < la; i++)
		d |= (unsigned char)a[i] ^ (unsigned char)b[i];
	return d == 0;
}

gint64 sg_now(void)
{
	const char *s = g_getenv("SG_NOW");

	if (s != NULL && *s != '\0') {
		char *end = NULL;
		gint64 t = g_ascii_strtoll(s, &end, 10);
		if (end != s && *end == '\0')
			return t;
	}
	return g_get_real_time() / G_USEC_PER_SEC;
}

const char *sg_boot_id(void)
{
	static char *boot;
	const char *hook = g_getenv("SG_BOOT_ID");
	g_autofree char *text = NULL;

	if (hook != NULL)
		return hook;
	if (boot == NULL) {
		g_file_get_contents("/proc/sys/kernel/random/boot_id", &text, NULL, NULL);
		boot = g_strdup(text ? g_strstrip(text) : "");
	}
	return boot;
}

char *sg_iso_time(gint64 t)
{
	g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);

	if (dt == NULL)
		return g_strdup("1970-01-01T00:00:00Z");
	return g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ");
}

/* Digits then at most one unit letter from units (multipliers in mult); -1 when malformed. */
static gint64 parse_scaled(const char *s, const char *units, const gint64 *mult)
{
	guint64 v = 0;
	const char *p = s;
	gint64 m = 1;

	if (s == NULL || !g_ascii_isdigit(*s))
		return -1;
	while (g_ascii_isdigit(*p)) {
		if (v > (guint64)G_MAXINT64 / 10)
			return -1;
		v = v * 10 + (guint64)(*p - '0');
		p++;
	}
	if (*p != '\0') {
		const char *u = strchr(units, g_ascii_tolower(*p));
		if (u == NULL || p[1] != '\0')
			return -1;
		m = mult[u - units];
	}
	if (v > (guint64)(G_MAXINT64 / m))
		return -1;
	return (gint64)v * m;
}

gint64 sg_parse_duration(const char *s)
{
	static const gint64 mult[] = { 1, 60, 3600, 86400 };

	return parse_scaled(s, "smhd", mult);
}

gint64 sg_parse_size(const char *s)
{
	static const gint64 mult[] = { 1, 1024, 1024 * 1024, 1024 * 1024 * 1024 };

	return parse_scaled(s, "bkmg", mult);
}

/* Length of the blank at p (ASCII blank, NBSP, narrow NBSP, figure space, BOM), 0 when none. */
static size_t blank_len(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	if (*u == ' ' || *u == '\t' || *u == '\r' || *u == '\n' || *u == '\v' || *u == '\f')
		return 1;
	if (u[0] == 0xC2 && u[1] == 0xA0)
		return 2;
	if (u[0] == 0xE2 && u[1] == 0x80 && (u[2] == 0xAF || u[2] == 0x87))
		return 3;
	if (u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF)
		return 3;
	return 0;
}

/* Length of a blank that ends exactly at end (start of the string at s), 0 when none. */
static size_t blank_len_before(const char *s, const char *end)
{
	size_t avail = (size_t)(end - s);

	for (size_t n = 1; n <= 3 && n <= avail; n++)
		if (blank_len(end - n) == n)
			return n;
	return 0;
}

char *sg_trim(char *s)
{
	char *p, *end;
	size_t n;

	if (s == NULL)
		return s;
	p = s;
	while ((n = blank_len(p)) > 0)
		p += n;
	end = p + strlen(p);
	while (end > p && (n = blank_len_before(p, end)) > 0)
		end -= n;
	*end = '\0';
	if (p != s)
		memmove(s, p, (size_t)(end - p) + 1);
	return s;
}

char *sg_truncate(const char *s, size_t max)
{
	g_autofree char *v = NULL;
	const char *cut;

	if (s == NULL)
		return NULL;
	v = g_utf8_make_valid(s, -1);
	if ((size_t)g_utf8_strlen(v, -1) <= max)
		return g_steal_pointer(&v);
	if (max == 0)
		return g_strdup("");
	/* Keep max-1 characters and the ellipsis, so the result is never longer than max. */
	cut = g_utf8_offset_to_pointer(v, (glong)max - 1);
	return g_strdup_printf("%.*s…", (int)(cut - v), v);
}

/* Characters that must not reach a report: controls, and the bidi marks that disguise a name
 * ("invoice\u202Evsc.exe" shows as "invoiceexe.csv"). */
static bool unsafe_char(gunichar c)
{
	if (c < 0x20 || (c >= 0x7F && c <= 0x9F))
		return true;
	if ((c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069))
		return true;
	if (c == 0x200E || c == 0x200F || c == 0x061C || c == 0xFEFF)
		return true;
	return false;
}

#define SG_NAME_MAX 100

char *sg_sanitize_filename(const char *name)
{
	g_autofree char *valid = NULL;
	GString *out;
	const char *base, *p;
	glong len;

	if (name == NULL)
		return g_strdup("attachment");
	base = name;
	for (p = name; *p != '\0'; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	valid = g_utf8_make_valid(base, -1);
	out = g_string_new(NULL);
	for (p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (unsafe_char(c))
			continue;
		/* Leading dots would hide the file or climb a directory; leading blanks hide it. */
		if (out->len == 0 && (c == '.' || c == ' '))
			continue;
		g_string_append_unichar(out, c);
	}
	while (out->len > 0 && out->str[out->len - 1] == ' ')
		g_string_truncate(out, out->len - 1);
	if (out->len == 0) {
		g_string_free(out, TRUE);
		return g_strdup("attachment");
	}
	len = g_utf8_strlen(out->str, -1);
	if (len > SG_NAME_MAX) {
		/* Keep a short extension so that the name still says what the file is. */
		const char *dot = strrchr(out->str, '.');
		glong extlen = dot ? g_utf8_strlen(dot, -1) : 0;
		char *res;

		if (extlen < 2 || extlen > 10)
			extlen = 0;
		const char *cut = g_utf8_offset_to_pointer(out->str, SG_NAME_MAX - 1 - extlen);
		res = g_strdup_printf("%.*s…%s", (int)(cut - out->str), out->str,
				      extlen ? dot : "");
		g_string_free(out, TRUE);
		return res;
	}
	return g_string_free(out, FALSE);
}

bool sg_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

char *sg_write_temp(const char *path, const void *data, size_t len, int mode, char **err)
{
	g_autofree char *dir = g_path_get_dirname(path);
	g_autofree char *base = g_path_get_basename(path);
	char *tmp = g_strdup_printf("%s/.%s.XXXXXX", dir, base);
	int fd, e;
	bool ok;

	fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, mode ? mode : 0600);
	if (fd < 0) {
		e = errno;
		if (err && !*err)
			*err = g_strdup_printf("%s: cannot create a file in %s: %s", path, dir,
					       g_strerror(e));
		g_free(tmp);
		return NULL;
	}
	ok = fchmod(fd, (mode_t)(mode ? mode : 0600)) == 0 && sg_write_all(fd, data, len) &&
	     fsync(fd) == 0;
	e = errno;
	if (close(fd) < 0 && ok) {
		ok = false;
		e = errno;
	}
	if (!ok) {
		unlink(tmp);
		g_free(tmp);
		if (err && !*err)
			*err = g_strdup_printf("%s: write failed: %s", path, g_strerror(e));
		return NULL;
	}
	return tmp;
}

bool sg_rename_durable(const char *tmp, const char *path, char **err)
{
	g_autofree char *dir = g_path_get_dirname(path);
	int dfd, e;

	if (rename(tmp, path) < 0) {
		e = errno;
		if (err && !*err)
			*err = g_strdup_printf("%s: cannot write: %s", path, g_strerror(e));
		return false;
	}
	/* The rename is durable only once the directory itself reaches the disk. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return true;
}

bool sg_write_atomic(const char *path, const void *data, size_t len, int mode, char **err)
{
	g_autofree char *tmp = sg_write_temp(path, data, len, mode, err);

	if (tmp && !sg_rename_durable(tmp, path, err)) {
		unlink(tmp);
		return false;
	}
	return tmp != NULL;
}

char *sg_oauth2_token(const char *section, const char *command, char **err)
{
	const char *argv[] = {"/bin/sh", "-c", command, NULL};
	g_autofree char *out = NULL;
	g_autofree char *errout = NULL;
	g_autoptr(GError) gerr = NULL;
	int wstatus = 0;
	if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &errout,
			  &wstatus, &gerr)) {
		sg_fail(err, SG_ETEMP, "%s oauth2_token_command: %s", section, gerr->message);
		return NULL;
	}
	if (!g_spawn_check_wait_status(wstatus, NULL)) {
		sg_fail(err, SG_ETEMP, "%s oauth2_token_command failed: %s", section,
			errout ? g_strstrip(errout) : "");
		return NULL;
	}
	g_strstrip(out);
	if (!*out || strpbrk(out, "\r\n")) {
		sg_fail(err, SG_ETEMP, "%s oauth2_token_command printed no single-line token",
			section);
		return NULL;
	}
	return g_steal_pointer(&out);
}

/* nftw callback: removes what it is given (children first, FTW_DEPTH). */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Removes the scratch directories in base whose process is gone. A pid that was taken again
 * keeps its old directory until that process ends too: never one of a live process. */
static void sweep_scratch(const char *base)
{
	g_autoptr(GDir) d = g_dir_open(base, 0, NULL);
	const char *name;

	while (d && (name = g_dir_read_name(d))) {
		char *end;
		long pid = strtol(name, &end, 10);
		if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 ||
		    errno != ESRCH)
			continue;
		g_autofree char *dir = g_build_filename(base, name, NULL);
		nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	}
}

static char *scratch;
static pid_t scratch_owner;

/* At exit: the process's own scratch directory goes when its files have (a forked child that
 * calls exit() leaves its parent's alone). */
static void scratch_remove(void)
{
	if (scratch && scratch_owner == getpid())
		rmdir(scratch);
}

const char *sg_scratch_dir(char **err)
{
	struct stat st;

	/* A tmp cleaner may have removed it under a long-running daemon: made again then. */
	if (scratch && scratch_owner == getpid() && stat(scratch, &st) == 0)
		return scratch;
	g_autofree char *base = g_strdup_printf("%s/stockgate-%u", g_get_tmp_dir(),
						(unsigned)getuid());
	if (mkdir(base, 0700) != 0 && errno != EEXIST) {
		sg_fail(err, SG_EIO, "%s: %s", base, g_strerror(errno));
		return NULL;
	}
	if (lstat(base, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
	    (st.st_mode & 077)) {
		sg_fail(err, SG_EIO, "%s: not a private directory of this user (remove it)", base);
		return NULL;
	}
	sweep_scratch(base);
	char *mine = g_strdup_printf("%s/%ld", base, (long)getpid());
	if (mkdir(mine, 0700) != 0 && errno != EEXIST) {
		sg_fail(err, SG_EIO, "%s: %s", mine, g_strerror(errno));
		g_free(mine);
		return NULL;
	}
	if (!scratch)
		atexit(scratch_remove);
	g_free(scratch);
	scratch = mine;
	scratch_owner = getpid();
	return scratch;
}

int sg_scratch_file(const char *prefix, char **path, char **err)
{
	const char *dir = sg_scratch_dir(err);
	int fd;

	if (!dir)
		return -1;
	*path = g_strdup_printf("%s/%s-XXXXXX.eml", dir, prefix);
	fd = g_mkstemp_full(*path, O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		sg_fail(err, SG_EIO, "%s: %s", *path, g_strerror(errno));
		g_clear_pointer(path, g_free);
	}
	return fd;
}
