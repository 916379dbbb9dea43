/* util.h: small helpers used across modules: hashing, time, text. */
#pragma once
#include <glib.h>
#include <stdbool.h>

/* SHA-256 of a buffer / of a file's bytes as 64 lower-case hex digits; g_free. NULL on I/O error. */
char *sg_sha256_hex(const void *data, size_t len);
char *sg_sha256_file(const char *path);
/* Constant-time comparison of two NUL-terminated strings of the same length. */
bool sg_secure_equal(const char *a, const char *b);
/* Seconds since the epoch; SG_NOW (a number) fixes it for tests. */
gint64 sg_now(void);
/* This boot of the machine (/proc/sys/kernel/random/boot_id; the test hook SG_BOOT_ID stands for
 * another), "" when it cannot be read. A file written and not synced is on disk or in the page
 * cache while the boot lasts; after another boot it may be gone. */
const char *sg_boot_id(void);
/* "2026-11-22T12:00:00Z" for a unix time; g_free. */
char *sg_iso_time(gint64 t);
/* Parses a duration "90", "30s", "15m", "24h", "7d" into seconds; -1 when malformed. */
gint64 sg_parse_duration(const char *s);
/* Parses a size "25M", "64K", "1G", "1000" into bytes; -1 when malformed. */
gint64 sg_parse_size(const char *s);
/* Trims ASCII blanks and the Unicode spaces U+00A0, U+202F, U+2007, U+FEFF in place; returns s. */
char *sg_trim(char *s);
/* A copy of s cut to at most max characters (UTF-8 aware), with "…" when cut; g_free. */
char *sg_truncate(const char *s, size_t max);
/* A name safe to show in a report: no path, no control or bidi characters, at most 100 chars. */
char *sg_sanitize_filename(const char *name);
/* Writes all of buf to fd (retrying short writes and EINTR); false with errno on failure. */
bool sg_write_all(int fd, const void *buf, size_t len);
/* Writes data to path atomically (temp file in the same directory, fsync, rename). */
bool sg_write_atomic(const char *path, const void *data, size_t len, int mode, char **err);
/* The first half of sg_write_atomic: data in a new temp file ".NAME.XXXXXX" beside path,
 * fsynced; its name (g_free), or NULL with *err. The caller renames it into place when the name
 * is its to take (sg_rename_durable), or unlinks it. */
char *sg_write_temp(const char *path, const void *data, size_t len, int mode, char **err);
/* The second half: renames tmp (any file of the same file system) to path and fsyncs path's
 * directory; on failure tmp stays where it was. */
bool sg_rename_durable(const char *tmp, const char *path, char **err);

/*
 * The process's scratch directory, for files that live one run (a fetched message, standard
 * input, an e-mailed batch list): "$TMPDIR/stockgate-UID/PID", mode 700, made on first use.
 * Making it removes the directories of processes that are gone, so what a killed run left (a
 * dealer's stock, among others) is gone with the next run instead of staying in /tmp. The
 * parent must be a real directory owned by the user (not a link another user planted). Borrowed
 * for the process's life; NULL with *err (SG_EIO) when it cannot be made.
 */
const char *sg_scratch_dir(char **err);
/* Opens a new file "PREFIX-XXXXXX.eml" in the scratch directory (mode 600): the fd, *path
 * (g_free); -1 with *err. */
int sg_scratch_file(const char *prefix, char **path, char **err);

/* Runs an oauth2_token_command of a config section ("[source]") and returns the access token it
 * prints (g_free), or NULL with *err (SG_ETEMP). The token is never logged. */
char *sg_oauth2_token(const char *section, const char *command, char **err);

/* Test hook (STYLE 15): when $SG_CRASH names this point, the process kills itself here. */
void sg_crash_point(const char *name);
/* Whether this passing of the point is the one $SG_CRASH names (every passing without ":N",
 * only the Nth with it), for a hook that acts elsewhere (message-child: the parser worker). */
bool sg_crash_due(const char *name);
/* Test hook: when $SG_PAUSE names this point, its Nth passing (counted across threads) waits
 * on the FIFO "$SG_PAUSE_FIFO.N" if the test made one: it writes "point\n" into it (the test
 * reads it: the point is reached), then reads it to its end (the test writes: go on). */
void sg_pause_point(const char *name);
