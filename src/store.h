/* store.h: the SQLite state db: registry (dealers, users, catalogue), stock (warehouses,
 * remains), the message ledger, and the batch journal. One connection, migrations via
 * PRAGMA user_version. All functions return SG_OK or a status with *err set (err may be NULL). */
#pragma once
#include <sqlite3.h>
#include "sg.h"

typedef struct sg_store sg_store;

/* Opens (creating and migrating) the db at path; "" opens a private scratch db (for `check`). */
sg_status sg_store_open(const char *path, sg_store **out, char **err);
void sg_store_close(sg_store *st);
/* The connection, for modules that run their own statements (stock, batch journal). */
sqlite3 *sg_store_db(sg_store *st);
/* A statement of the connection's kept ones, prepared at its first use (a second one while it
 * is in use; a PRAGMA, which may act when prepared, every time); give it back with
 * sg_store_done (reset, bindings cleared), never finalize it. */
sg_status sg_store_prepare(sg_store *st, const char *sql, sqlite3_stmt **out, char **err);
void sg_store_done(sg_store *st, sqlite3_stmt *s);

/* Transactions (BEGIN IMMEDIATE) and named savepoints. */
sg_status sg_store_begin(sg_store *st, char **err);
sg_status sg_store_commit(sg_store *st, char **err);
void sg_store_rollback(sg_store *st);
sg_status sg_store_savepoint(sg_store *st, const char *name, char **err);
sg_status sg_store_release(sg_store *st, const char *name, char **err);
/* Rolls back to the savepoint and releases it: the savepoint is gone afterwards. */
void sg_store_rollback_to(sg_store *st, const char *name);
/*
 * Whether the following commits wait for the disk (synchronous FULL, the default) or not
 * (NORMAL: durable at the next synced commit or flush). Only for a commit whose loss in an OS
 * crash repeats something harmless, such as the mark that a report was delivered.
 */
sg_status sg_store_durable(sg_store *st, bool durable, char **err);
/* Makes every commit so far durable (the WAL synced), before an effect outside the db that
 * must follow them (a message moved out of the mailbox). Nothing to do after synced commits. */
sg_status sg_store_flush(sg_store *st, char **err);
/* Runs one SQL statement without results (for DDL and simple updates). */
sg_status sg_store_exec(sg_store *st, const char *sql, char **err);

/* Roles of a user (bit set). */
enum {
	SG_ROLE_REMAINS_UPLOAD = 1 << 0,
	SG_ROLE_BATCH_VIN = 1 << 1,
	SG_ROLE_BATCH_FRAME = 1 << 2,
	SG_ROLE_BATCH_PRICE = 1 << 3,
	SG_ROLE_BATCH_RENTAL = 1 << 4,
};
/* "remains_upload" → SG_ROLE_REMAINS_UPLOAD …; 0 when unknown. */
unsigned sg_role_from_name(const char *name);
/* The role a method needs ("warehouses"/"remains" → remains_upload, "vin" → batch_vin …). */
unsigned sg_role_for_method(const char *method);
/* Comma-separated role names of a set; g_free. */
char *sg_roles_to_string(unsigned roles);

typedef struct {
	char *id, *name;
	char *key_sha256; /* 64 hex digits */
	bool dev_mode;
	gint64 created;
} sg_dealer;
void sg_dealer_free(sg_dealer *d);

/* SG_EDATA when the id exists or is malformed (1–64 of [A-Za-z0-9_.-]). */
sg_status sg_dealer_add(sg_store *st, const char *id, const char *name, const char *key, char **err);
/* SG_ENOINPUT when there is no such dealer. */
sg_status sg_dealer_get(sg_store *st, const char *id, sg_dealer **out, char **err);
sg_status sg_dealer_list(sg_store *st, GPtrArray **out /* sg_dealer *, sorted by id */, char **err);
/* Removes the dealer with its users, warehouses and remains. */
sg_status sg_dealer_remove(sg_store *st, const char *id, char **err);
sg_status sg_dealer_set_key(sg_store *st, const char *id, const char *key, char **err);
sg_status sg_dealer_set_dev_mode(sg_store *st, const char *id, bool on, char **err);
/* Whether key (as sent) matches the stored SHA-256, compared in constant time. */
bool sg_dealer_key_matches(const sg_dealer *d, const char *key);

typedef struct {
	char *email; /* lower case */
	char *dealer;
	unsigned roles;
} sg_user;
void sg_user_free(sg_user *u);
/* Adds the user, or sets its dealer and roles when it exists. SG_ENOINPUT: no such dealer. */
sg_status sg_user_add(sg_store *st, const char *email, const char *dealer, unsigned roles,
		      char **err);
sg_status sg_user_get(sg_store *st, const char *email, sg_user **out, char **err);
sg_status sg_user_list(sg_store *st, const char *dealer /* NULL: all */, GPtrArray **out,
		       char **err);
sg_status sg_user_remove(sg_store *st, const char *email, char **err);

/* The catalogue of allowed articles. */
sg_status sg_catalog_add(sg_store *st, const char *article, char **err);
sg_status sg_catalog_clear(sg_store *st, char **err);
sg_status sg_catalog_count(sg_store *st, long *n, char **err);
/* Calls fn for each article in UTF-8 byte order. */
sg_status sg_catalog_each(sg_store *st, void (*fn)(void *ctx, const char *article), void *ctx,
			  char **err);

typedef struct {
	char *code, *address, *contacts;
} sg_warehouse;
void sg_warehouse_free(sg_warehouse *w);
/* The dealer's warehouses sorted by code (UTF-8 byte order). */
sg_status sg_warehouse_list(sg_store *st, const char *dealer, GPtrArray **out, char **err);
/*
 * A warehouse's remains are stored as one list, the articles of the last file applied for it
 * (see store.c). A reader gives the rows of the dealer's lists (one warehouse's when code is not
 * NULL) by warehouse, each list in its stored order; the strings stay valid until the next call.
 * sg_remains_next returns false at the end or on an error: sg_remains_error tells which.
 */
typedef struct sg_remains_reader sg_remains_reader;
sg_status sg_remains_open(sg_store *st, const char *dealer, const char *code,
			  sg_remains_reader **out, char **err);
bool sg_remains_next(sg_remains_reader *r, const char **warehouse, const char **article,
		     long long *quantity);
/* Back to the first row (a list read twice: the mirror sizes its body, then sends it). */
void sg_remains_rewind(sg_remains_reader *r);
/* SG_OK while no error happened (a damaged list is SG_EIO), else the error with *err set. */
sg_status sg_remains_error(const sg_remains_reader *r, char **err);
void sg_remains_close(sg_remains_reader *r);
/* Gives the next row to store: false when there are no more. */
typedef bool (*sg_remains_next_fn)(void *ctx, const char **article, long long *quantity);
/* Replaces the list of warehouse code with the rows next gives, in that order: each article once,
 * without TAB or LF. */
sg_status sg_remains_replace(sg_store *st, const char *dealer, const char *code,
			     sg_remains_next_fn next, void *ctx, char **err);
/* Calls fn for each remains row of the dealer (one warehouse when code is not NULL), sorted by
 * warehouse then article. */
sg_status sg_remains_each(sg_store *st, const char *dealer, const char *code,
			  void (*fn)(void *ctx, const char *warehouse, const char *article,
				     long long quantity),
			  void *ctx, char **err);

/* The time of the last file applied for (dealer, kind, warehouse or "" for warehouses files);
 * 0 when none. Used for `superseded`. */
sg_status sg_mark_get(sg_store *st, const char *dealer, const char *kind, const char *warehouse,
		      gint64 *when, char **err);
/* Records it, keeping the latest. */
sg_status sg_mark_set(sg_store *st, const char *dealer, const char *kind, const char *warehouse,
		      gint64 when, char **err);

/* The message ledger: one row per message, keyed by the SHA-256 of its bytes, also known by
 * (mailbox, uidvalidity, uid) when it came from IMAP. */
typedef struct {
	char *sha256;
	char *source;            /* "imap:INBOX/42" … */
	char *mailbox;           /* NULL unless IMAP */
	gint64 uidvalidity, uid; /* 0 unless IMAP */
	char *message_id;
	char *outcome;           /* the last outcome (deferred while pending) */
	char *reason;
	char *result_json;       /* the record (SPEC 5.6) */
	char *report_state;      /* "none", "pending", "sent", "written" */
	char *report_path;       /* spooled report (.eml) while pending, or NULL */
	int attempts;
	gint64 first_seen, updated;
} sg_ledger;
void sg_ledger_free(sg_ledger *l);
/* SG_ENOINPUT when unknown. */
sg_status sg_ledger_get(sg_store *st, const char *sha256, sg_ledger **out, char **err);
sg_status sg_ledger_get_uid(sg_store *st, const char *mailbox, gint64 uidvalidity, gint64 uid,
			    sg_ledger **out, char **err);
/* Inserts or updates the row with every field of l (first_seen kept from the first insert). */
sg_status sg_ledger_put(sg_store *st, const sg_ledger *l, char **err);
/* Counts one more copy of a known message (status shows the sum as outcome "duplicate"). */
sg_status sg_ledger_count_duplicate(sg_store *st, const char *sha256, char **err);
/* Messages whose report is still pending. */
sg_status sg_ledger_pending_reports(sg_store *st, GPtrArray **out /* sg_ledger * */, char **err);

/* The report spool: a report built and waiting for the transport, keyed by its message's
 * SHA-256, written in the transaction that records the message. get: SG_ENOINPUT when none;
 * *data g_free. */
sg_status sg_report_spool_put(sg_store *st, const char *sha256, const char *data, size_t len,
			      char **err);
sg_status sg_report_spool_get(sg_store *st, const char *sha256, char **data, gsize *len,
			      char **err);
sg_status sg_report_spool_drop(sg_store *st, const char *sha256, char **err);
/*
 * A report handed to a deferring transport (sg_transport_defer) in boot `boot` stays spooled,
 * so marked, until the transport has synced it: then sg_report_spool_synced drops every such
 * report of the boot; a failed sync leaves them marked for sending again. lost: whether the
 * report of sha256 was handed over unsynced and may not be on disk any more (another boot, or
 * its sync failed): the ledger's "written" for it is not to be trusted.
 */
sg_status sg_report_spool_unsynced(sg_store *st, const char *sha256, const char *boot,
				   char **err);
sg_status sg_report_spool_synced(sg_store *st, const char *boot, bool synced, char **err);
sg_status sg_report_spool_lost(sg_store *st, const char *sha256, const char *boot, bool *lost,
			       char **err);
/* Whether reports handed over unsynced in boot `boot` wait for a sync (a poll killed before it). */
sg_status sg_report_spool_any_unsynced(sg_store *st, const char *boot, bool *any, char **err);

/* Counters for `status`. */
typedef struct {
	gint64 last_poll;        /* 0 when never */
	char *last_poll_outcome; /* "ok" or "failed", or NULL */
	char *last_poll_error;   /* or NULL */
	GHashTable *by_outcome;  /* outcome → GINT_TO_POINTER(count) */
	long deferred, reports_pending;
	long jobs_pending;       /* jobs in state 'pending' or 'running' */
	long deliveries_unknown; /* VIN reports delivered for no journal row (`serve`) */
} sg_store_status;
sg_status sg_store_status_get(sg_store *st, sg_store_status *out, char **err);
void sg_store_status_clear(sg_store_status *s);
/* Records a poll (error ignored when ok); the last 500 are kept. */
sg_status sg_store_poll_record(sg_store *st, gint64 when, bool ok, const char *error, char **err);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(sg_dealer, sg_dealer_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sg_user, sg_user_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sg_ledger, sg_ledger_free)
