/* source.h: where messages come from: an IMAP mailbox, a Maildir, or message files. One struct
 * of function pointers, one file per driver (source-imap.c, source-maildir.c, source-file.c). */
#pragma once
#include "config.h"

/* One message of a source. */
typedef struct {
	char *id;          /* the record's source: "imap:INBOX/42", "maildir:NAME", "file:x.eml" */
	char *path;        /* a local file with the message bytes (a temp file for IMAP, filled by
	                    * fetch), or NULL before fetch */
	bool path_is_temp; /* path is removed by sg_source_msg_free */
	bool path_is_kept; /* path is one of the source's files for fetched bodies: rewritten by
	                    * its next fetch_set, removed when the source closes */
	gint64 size;       /* RFC822.SIZE or the file size */
	gint64 received;   /* INTERNALDATE or the file's mtime (unix time) */
	bool headers_only; /* path holds only the header block (a message over
	                    * max_message_size: fetched for the reply decision alone) */
	char *mailbox;     /* the IMAP mailbox, or NULL */
	gint64 uidvalidity, uid;
} sg_source_msg;
void sg_source_msg_free(sg_source_msg *m);

typedef struct sg_source sg_source;
typedef struct {
	const char *name;
	/* The pending messages in arrival order, at most max (bodies not fetched). */
	sg_status (*list)(sg_source *s, int max, GPtrArray **out /* sg_source_msg * */, char **err);
	/* A driver has fetch or fetch_set, and move or move_set (the set version when both).
	 * Fetches the message (BODY.PEEK[]), or with headers_only its header block
	 * (BODY.PEEK[HEADER]), into m->path, never marking it seen. */
	sg_status (*fetch)(sg_source *s, sg_source_msg *m, bool headers_only, char **err);
	/* Moves the message to folder (created when missing). */
	sg_status (*move)(sg_source *s, sg_source_msg *m, const char *folder, char **err);
	/* Fetches ms[0..n) in one round trip, each message over
	 * max_size (0: no limit) headers only, as fetch does; so is one whose body turns out over
	 * max_size all the same (its listed size was smaller), its size then set over max_size.
	 * A message the server no longer has keeps path NULL. The paths may be kept files
	 * (path_is_kept), valid until the next fetch_set. SG_ETEMP when the connection failed. */
	sg_status (*fetch_set)(sg_source *s, sg_source_msg **ms, guint n, gint64 max_size,
			       char **err);
	/* Moves ms[0..n) to folder with one command (or one
	 * COPY + STORE + EXPUNGE of the set). */
	sg_status (*move_set)(sg_source *s, sg_source_msg **ms, guint n, const char *folder,
			      char **err);
	void (*close)(sg_source *s);
} sg_source_ops;

struct sg_source {
	const sg_source_ops *ops; /* drivers embed this struct first */
};

/* Fetches ms[0..n) with the driver's fetch_set, or one by one: a message not fetched (gone,
 * or a failure of its own, logged) keeps path NULL. SG_ETEMP when the connection failed, a
 * local failure (SG_EIO) as it comes. */
sg_status sg_source_fetch_set(sg_source *s, sg_source_msg **ms, guint n, gint64 max_size,
			      char **err);
/* Moves ms[0..n) to folder with the driver's move_set, or one by one. */
sg_status sg_source_move_set(sg_source *s, sg_source_msg **ms, guint n, const char *folder,
			     char **err);

/* Opens the source named by [source] url. SG_ECONFIG when missing or unknown. */
sg_status sg_source_open(const sg_config *cfg, sg_source **out, char **err);
void sg_source_close(sg_source *s);

sg_status sg_source_maildir_open(const sg_config *cfg, const char *dir, sg_source **out,
				 char **err);
sg_status sg_source_imap_open(const sg_config *cfg, sg_source **out, char **err);
/* A message file given on the command line ("-": standard input, spooled to a temp file). */
sg_status sg_source_msg_from_file(const char *arg, sg_source_msg **out, char **err);
