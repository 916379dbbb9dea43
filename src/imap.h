/* imap.h: IMAP4rev1 response parsing over buffers (no I/O), used by the IMAP source. */
#pragma once
#include <glib.h>
#include <stdbool.h>

/*
 * Finds the end of the first complete response line in buf: the text up to CRLF, every
 * literal ({n} or {n+} before a line end) with its n bytes, and the text after it, to the final
 * CRLF. Returns 1 and sets *line_len (the bytes including the final CRLF) when complete; 0 when
 * more bytes are needed; -1 when a literal is larger than max_literal or its size is malformed.
 */
int sg_imap_line_len(const char *buf, size_t len, size_t max_literal, size_t *line_len);

/* The status of a tagged response line "TAG OK|NO|BAD text". */
typedef enum { SG_IMAP_NONE = 0, SG_IMAP_OK, SG_IMAP_NO, SG_IMAP_BAD } sg_imap_cond;

/* When line (one complete response line) is the tagged response of tag, returns its condition
 * and sets *text (may be NULL) to the text after it (borrowed, up to the CR); else SG_IMAP_NONE. */
sg_imap_cond sg_imap_tagged(const char *line, size_t len, const char *tag, const char **text,
			    size_t *text_len);

/* True when line is the server's "* BYE" (the connection is about to close). */
bool sg_imap_is_bye(const char *line, size_t len);

/*
 * Reads the number of a response code "[NAME n]" anywhere in the line (UIDVALIDITY, UIDNEXT,
 * COPYUID's first number, …). Returns true and sets *value when present.
 */
bool sg_imap_resp_code_num(const char *line, size_t len, const char *name, gint64 *value);

/* True when the line carries the response code "[NAME" (e.g. "COPYUID", "ALREADYEXISTS"). */
bool sg_imap_has_resp_code(const char *line, size_t len, const char *name);

/*
 * When line is "* CAPABILITY …" or carries "[CAPABILITY …]", sets *move and *uidplus from it
 * and returns true; else leaves them and returns false.
 */
bool sg_imap_capability(const char *line, size_t len, bool *move, bool *uidplus);

/* When line is "* SEARCH n n …" (or an ESEARCH-less empty "* SEARCH"), appends the numbers to
 * uids (guint64) and returns true; -1 on a malformed number; 0 when not a SEARCH line. */
int sg_imap_search(const char *line, size_t len, GArray *uids);

/* The data of one "* N FETCH (…)" response that the source asks for. */
typedef struct {
	gint64 seq, uid, size; /* -1 when absent */
	gint64 internaldate;   /* unix time, -1 when absent or malformed */
	bool seen;             /* FLAGS includes \Seen */
	const char *body;      /* BODY[] literal or quoted string, borrowed from the line */
	size_t body_len;
	bool has_body;
} sg_imap_fetch;

/* When line is a FETCH response, fills f and returns 1; 0 when not a FETCH line; -1 when
 * malformed. */
int sg_imap_fetch_parse(const char *line, size_t len, sg_imap_fetch *f);

/* When line is "* LIST (flags) sep name", sets *name (g_free; literal and quoted forms
 * handled) and returns true. */
bool sg_imap_list(const char *line, size_t len, char **name);

/* Parses an INTERNALDATE "22-Nov-2026 12:36:49 +0000" into unix time; -1 when malformed. */
gint64 sg_imap_parse_date(const char *s);

/* The mailbox name as an IMAP quoted string ("INBOX" → "\"INBOX\""); NULL when the name holds
 * CR, LF, NUL or is empty (it cannot be sent safely). Non-ASCII names are sent as UTF-8. */
char *sg_imap_quote(const char *s);
