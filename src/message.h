/* message.h: an incoming message taken apart safely: parsed by gmime in a worker process under
 * a CPU-time limit and the [limits], reduced to the facts the pipeline needs (SPEC 5, 10). */
#pragma once
#include <sys/types.h>

#include "sg.h"

typedef struct {
	char *name;         /* sanitised file name to show (sg_sanitize_filename), never a path;
	                     * "attachment-N" when the part has none */
	char *content_type; /* "type/subtype", lower case, no parameters */
	char *charset;      /* the charset parameter, or NULL */
	GBytes *data;       /* the decoded content (owned), as the worker sent it */
	gint64 size;        /* decoded size in bytes: the length of data */
} sg_attachment;

typedef struct {
	char *from;            /* the single From address (addr-spec), lower case; NULL unless
	                        * from_count is 1 */
	int from_count;        /* addresses in all From headers (!= 1: several_senders); a group
	                        * counts as at least 2 */
	char *sender;          /* the Sender address, lower case, or NULL when there is no Sender
	                        * header; a Sender that is not one address is kept as its text */
	bool return_path_null; /* Return-Path: <> */
	char *message_id;      /* without <>, or NULL */
	char *subject;         /* decoded UTF-8, control characters replaced by spaces */
	gint64 date;           /* the Date header as a unix time, or -1 when missing/unparseable */
	char *auto_submitted;  /* the header value, or NULL */
	char *precedence;      /* the header value, or NULL */
	bool has_list_id;      /* a List-Id header */
	bool is_report;        /* top-level multipart/report (a delivery report) */
	bool own_report;       /* carries stockgate's own X-Stockgate-Report header */
	char **auth_results;   /* Authentication-Results values, topmost first, NULL-terminated */
	char *key;             /* the first non-empty line of the text body, trimmed (of the HTML
	                        * body's text when there is no plain one), or NULL */
	GPtrArray *attachments; /* sg_attachment *, in order; inline images with Content-ID,
	                         * signatures and vCards already left out */
	int parts;             /* MIME parts seen */
	int depth;             /* deepest nesting seen */
} sg_message;

typedef struct {
	gint64 max_message_size;
	gint64 max_header_size; /* any single header field (folded) or the whole header block */
	int max_mime_depth;
	int max_parts;
	int max_attachments; /* more: too_many_attachments (decided by the pipeline, not here) */
	int cpu_seconds;     /* CPU time a message may take in the parser worker */
	bool in_process;     /* fuzz targets only: parse in this process, without the worker (no
	                      * CPU limit; crashes are not contained) */
} sg_message_limits;

/*
 * Parses the message file at path. Returns:
 *   SG_OK with *out set;
 *   SG_EDATA with *reason set to "too_large", "too_complex" or "unparseable" (the parser failed,
 *     crashed or ran out of its CPU time), and *out still set when the headers could be read
 *     (so that From is known for too_large/too_complex replies, and the record of an
 *     unparseable one names its sender; then without attachments or key) or NULL;
 *   SG_EIO/SG_EINTERNAL for local failures (the file, the worker).
 * Limits left at 0 mean none, except max_header_size (1 MiB) and cpu_seconds (10).
 * A parameter given twice with different values (e.g. two filenames, gmime's conflicting-parameter
 * warning) makes the message "unparseable": no name is guessed for the file.
 * The parse runs in this process's parser worker: one process, started at the first parse, that
 * takes message after message (no fork per message); each message gets cpu_seconds of CPU time
 * there and three times that in wall-clock time, past which the worker is killed (the message
 * is "unparseable"; the next one starts a fresh worker, as does every 256th). The worker holds
 * no file descriptor of this process but its own socket (and 0-2) and dies with it.
 * Attachments come back in memory (never a file, never a name from the message as a path); a
 * message/rfc822 part is one attachment: the forwarded message written back by gmime from its
 * parsed headers and parts (refused as "unparseable" when one of its multiparts has no boundary).
 */
sg_status sg_message_parse(const char *path, const sg_message_limits *lim, sg_message **out,
			   const char **reason, char **err);
/* The same, and *sha256 (g_free; NULL when the file could not be read) the hex SHA-256 of the
 * file's bytes, computed while the worker parses. */
sg_status sg_message_parse_hashed(const char *path, const sg_message_limits *lim,
				  sg_message **out, const char **reason, char **sha256, char **err);
/*
 * Starts the parse of the message file at path in the worker now, so that it runs while this
 * process works on the message before it; the sg_message_parse(_hashed) of the same path with
 * the same limits takes its answer (its deadline counted from then), any other parse drops it.
 * Nothing is started while another job is ahead, in process, or for a message whose pre-scan
 * decides it (too large, a header block over the limit, not a message): its parse does that.
 */
void sg_message_parse_ahead(const char *path, const sg_message_limits *lim);
/* The parser worker's pid, or 0 when this process has none running (for tests). */
pid_t sg_message_worker_pid(void);
void sg_message_free(sg_message *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sg_message, sg_message_free)

/*
 * The method named by a subject (SPEC 5.3): Re:/Fwd:/Fw:/Отв:/Пересл: prefixes (repeated, any
 * case, also "Re[2]:") and blanks stripped, compared without case; "склады" → "warehouses",
 * "остатки" → "remains"; "vin", "frame", "price", "rental". Returns a static string or NULL.
 */
const char *sg_subject_method(const char *subject);
