/* sg.h: what every stage of the pipeline shares: statuses, and the result record of a message. */
#pragma once
#include <glib.h>
#include <stdbool.h>
#include <stdio.h>

/*
 * Status of an operation. Functions return SG_OK (0) or one of these; detail goes to an optional
 * `char **err` that the caller owns (g_free). The exit code is chosen from it in one place:
 * sg_exit_code().
 */
typedef enum {
	SG_OK = 0,
	SG_EUSAGE,    /* 64: bad command line */
	SG_EDATA,     /* 65: bad input data */
	SG_ENOINPUT,  /* 66: input missing (file, dealer, user) */
	SG_EUNAVAIL,  /* 69: a service is unavailable for good (or the last poll failed) */
	SG_EINTERNAL, /* 70: a bug or an impossible state */
	SG_EIO,       /* 74: local I/O failed */
	SG_ETEMP,     /* 75: temporary failure: try again later */
	SG_ECONFIG,   /* 78: configuration error */
} sg_status;

/* The sysexits.h code of a status. */
int sg_exit_code(sg_status st);

/* Sets *err (when err is not NULL and *err is NULL) to a formatted message; returns st. */
sg_status sg_fail(char **err, sg_status st, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* One row error or warning of a file (SPEC 5.6). */
typedef struct {
	long line;        /* the spreadsheet row; 0 when the issue is not tied to a row */
	char *column;     /* the header as written in the file, or NULL */
	const char *code; /* static: "bad_quantity", "not_in_catalog", … (SPEC 5.7) */
	char *message;    /* English sentence for the record and the log, or NULL for warnings */
	char *value;      /* the offending value, truncated to 100 characters, or NULL */
} sg_issue;

/* The verdict on one attachment. Strings are owned by the record unless marked static. */
typedef struct {
	char *name;           /* sanitised file name, safe to show (never used as a path) */
	bool applied;         /* status "applied" (true) or "rejected" */
	const char *reason;   /* static file reason (SPEC 5.7), NULL when applied */
	char *detail;         /* human detail for the report and the log (columns found and
	                       * expected, the mirror's messages, …), NULL when none; not in JSON */
	char *warehouse;      /* the warehouse a remains file is for, or NULL */
	const char *encoding; /* static: "utf-8", "utf-16le", "utf-16be", "windows-1251", NULL */
	char delimiter;       /* ';' ',' '\t' '|', or 0 when not known */
	long rows, added, updated, deleted, unchanged, skipped;
	GPtrArray *errors;    /* sg_issue *, owned; every error (the report shows the first 50) */
	GPtrArray *warnings;  /* sg_issue *, owned */
} sg_file_result;

/* The result record of one message (SPEC 5.6), printed as one JSON line. */
typedef struct {
	char *source;       /* "file:x.eml", "imap:INBOX/42", "maildir:NAME" */
	char *message_id;   /* without angle brackets, or NULL */
	char *from;         /* the lower-cased From address, or NULL */
	char *dealer;       /* set whenever the sender is a registered user, else NULL */
	char *method;       /* "warehouses", "remains", "vin", "frame", "price", "rental", or NULL */
	bool dev_mode;
	const char *outcome; /* static: applied partial failed rejected duplicate deferred */
	const char *reason;  /* static message-level reason, or NULL */
	char *detail;        /* human detail for the log and report (not in JSON), or NULL */
	GPtrArray *files;    /* sg_file_result *, owned, in attachment order */
	const char *report;  /* static: "sent", "written", "none" */
} sg_result;

sg_file_result *sg_file_result_new(const char *name);
void sg_file_result_free(sg_file_result *fr);
/* Adds an error (message formatted) or a warning; value and column are copied (NULL allowed). */
void sg_file_error(sg_file_result *fr, long line, const char *column, const char *code,
		   const char *value, const char *fmt, ...) G_GNUC_PRINTF(6, 7);
void sg_file_warning(sg_file_result *fr, long line, const char *column, const char *code,
		     const char *value);
/* Marks the file rejected with a static reason and an optional formatted detail. */
void sg_file_reject(sg_file_result *fr, const char *reason, const char *fmt, ...)
	G_GNUC_PRINTF(3, 4);

sg_result *sg_result_new(const char *source);
void sg_result_free(sg_result *r);
/* The record as one line of JSON (no newline); g_free the result. */
char *sg_result_to_json(const sg_result *r);
/* A stored record printed again by the run that finishes its message after a crash cut its
 * handling short (SPEC 5.6): the same record with "resumed": true; g_free. */
char *sg_record_resumed(const char *json);
/* Sets outcome from the files: applied (all), partial (some), failed (none). */
void sg_result_settle(sg_result *r);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(sg_result, sg_result_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sg_file_result, sg_file_result_free)
