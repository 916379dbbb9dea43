/* report.h: the processing report mailed to the sender (SPEC 6). */
#pragma once
#include "sg.h"

typedef struct {
	const char *from;        /* [report] from, e.g. "Stock API" <api@example.com> */
	const char *to;          /* the address as stored in the registry */
	const char *bcc;         /* or NULL */
	const char *language;    /* "ru" or "en" */
	const char *in_reply_to; /* the original Message-ID without <>, or NULL */
	const char *method;      /* for the subject; NULL when unknown */
	const char *extra_name;  /* an extra attachment (batch results CSV), or NULL */
	const char *extra_path;
	const char *const *files; /* more attachments by path (VIN reports: .pdf or .html, named
	                           * by their basename), NULL-terminated, or NULL */
} sg_report_opts;

/*
 * The report for a result as RFC 5322 bytes, CRLF line ends: threading headers,
 * Auto-Submitted: auto-replied, X-Stockgate-Report, the body per file, and errors.csv (UTF-8 with
 * BOM, ';', formula cells guarded) when there are errors. *msgid gets the new Message-ID
 * (without <>). No header is built from unchecked input. g_free *out and *msgid.
 */
sg_status sg_report_build(const sg_result *r, const sg_report_opts *o, char **out, size_t *len,
			  char **msgid, char **err);

/* The header that marks stockgate's own reports (for loop detection). */
#define SG_REPORT_HEADER "X-Stockgate-Report"
