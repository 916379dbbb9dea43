/* store.c: the SQLite state db: schema migrations, registry, stock, ledger, polls and marks. */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "util.h"

struct sg_store {
	sqlite3 *db;
	bool normal;	  /* synchronous = NORMAL: commits do not wait for the disk */
	bool unsynced;	  /* a commit made while not durable is not yet known to be on disk */
	GHashTable *kept; /* SQL text -> kept_stmt: statements prepared once (see prepare) */
};

typedef struct {
	sqlite3_stmt *s;
	bool lent; /* handed out by prepare, not yet given back by sg_store_done */
} kept_stmt;

/*
 * The schema, one SQL script per version: migrations[i] takes user_version i to i + 1. Append
 * new versions at the end; never edit a script that has shipped.
 *
 * WITHOUT ROWID where the primary key is the natural lookup (text keys, no rowid indirection).
 * The ledger keeps a rowid table: its rows are wide (the result JSON) and it has a second index.
 * The (mailbox, uidvalidity, uid) index is not UNIQUE on purpose: a server that reuses a UID
 * against the RFC must not make the pipeline fail on a constraint; lookups take the newest row.
 */
static sg_status remains_to_lists(sg_store *st, char **err);

static const struct {
	const char *sql;
	sg_status (*then)(sg_store *st, char **err); /* run after sql, in its transaction */
} migrations[] = {
    /* 1 */
    {
    "CREATE TABLE dealers ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, key_sha256 TEXT NOT NULL,"
    "  dev_mode INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE users ("
    "  email TEXT PRIMARY KEY,"
    "  dealer TEXT NOT NULL REFERENCES dealers(id) ON DELETE CASCADE,"
    "  roles INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX users_dealer ON users(dealer);"
    "CREATE TABLE catalog (article TEXT PRIMARY KEY) WITHOUT ROWID;"
    "CREATE TABLE warehouses ("
    "  dealer TEXT NOT NULL REFERENCES dealers(id) ON DELETE CASCADE,"
    "  code TEXT NOT NULL, address TEXT NOT NULL, contacts TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY (dealer, code)) WITHOUT ROWID;"
    "CREATE TABLE remains ("
    "  dealer TEXT NOT NULL, warehouse TEXT NOT NULL, article TEXT NOT NULL,"
    "  quantity INTEGER NOT NULL,"
    "  PRIMARY KEY (dealer, warehouse, article),"
    "  FOREIGN KEY (dealer, warehouse) REFERENCES warehouses(dealer, code)"
    "    ON DELETE CASCADE) WITHOUT ROWID;"
    "CREATE TABLE marks ("
    "  dealer TEXT NOT NULL REFERENCES dealers(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL, warehouse TEXT NOT NULL, time INTEGER NOT NULL,"
    "  PRIMARY KEY (dealer, kind, warehouse)) WITHOUT ROWID;"
    "CREATE TABLE ledger ("
    "  sha256 TEXT PRIMARY KEY, source TEXT, mailbox TEXT, uidvalidity INTEGER NOT NULL DEFAULT 0,"
    "  uid INTEGER NOT NULL DEFAULT 0, message_id TEXT, outcome TEXT, reason TEXT,"
    "  result_json TEXT, report_state TEXT NOT NULL DEFAULT 'none', report_path TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0, first_seen INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL);"
    "CREATE INDEX ledger_uid ON ledger(mailbox, uidvalidity, uid) WHERE mailbox IS NOT NULL;"
    "CREATE INDEX ledger_report ON ledger(report_state) WHERE report_state = 'pending';"
    "CREATE TABLE polls (id INTEGER PRIMARY KEY, time INTEGER NOT NULL, ok INTEGER NOT NULL,"
    "  error TEXT);"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, input_sha256 TEXT NOT NULL,"
    "  created INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'pending', owner_email TEXT,"
    "  message_sha256 TEXT);"
    "CREATE INDEX jobs_state ON jobs(state);"
    "CREATE TABLE journal ("
    "  kind TEXT NOT NULL, input_sha256 TEXT NOT NULL, row INTEGER NOT NULL,"
    "  state TEXT NOT NULL, sent_at INTEGER, answer TEXT,"
    "  PRIMARY KEY (kind, input_sha256, row)) WITHOUT ROWID;",
    NULL},
    /* 2: remains kept as one list a warehouse (see "Remains are kept as lists" below) */
    {"ALTER TABLE remains RENAME TO remains_v1;"
     "CREATE TABLE remains ("
     "  dealer TEXT NOT NULL, warehouse TEXT NOT NULL, chunk INTEGER NOT NULL,"
     "  lines BLOB NOT NULL,"
     "  PRIMARY KEY (dealer, warehouse, chunk),"
     "  FOREIGN KEY (dealer, warehouse) REFERENCES warehouses(dealer, code)"
     "    ON DELETE CASCADE);",
     remains_to_lists},
    /* 3: how many copies of each message came again (duplicates have no ledger row of their
     * own: the ledger is keyed by the message's bytes) */
    {"ALTER TABLE ledger ADD COLUMN duplicates INTEGER NOT NULL DEFAULT 0;", NULL},
    /* 4: the e-mail facts of a batch job (batch.c). stockgate 0.1 created this table on first
     * use, outside the versions: IF NOT EXISTS keeps such a db's rows. */
    {"CREATE TABLE IF NOT EXISTS batch_jobs ("
     "  job_id INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,"
     "  input_name TEXT NOT NULL, charset TEXT, message_id TEXT,"
     "  report_state TEXT NOT NULL DEFAULT 'none', report_path TEXT,"
     "  attempts INTEGER NOT NULL DEFAULT 0, finished INTEGER NOT NULL DEFAULT 0);",
     NULL},
    /* the VIN service's deliveries (`serve`): those that matched no journal row, kept for the
     * operator (one row a distinct body, so a repeated delivery adds nothing), and the vin rows
     * indexed by the queue's id and, while waiting, by VIN (batch-vin.c's find_row uses these
     * exact expressions), so that filing a delivery does not read the whole journal */
    {"CREATE TABLE deliveries ("
     "  id INTEGER PRIMARY KEY, received INTEGER NOT NULL, body_sha256 TEXT NOT NULL UNIQUE,"
     "  delivery_id TEXT, vin TEXT, status TEXT, url TEXT, file TEXT);"
     "CREATE INDEX journal_vin_id ON journal ("
     "  (CASE WHEN json_valid(answer) THEN json_extract(answer, '$.id') END))"
     "  WHERE kind = 'vin';"
     "CREATE INDEX journal_vin_waiting ON journal ("
     "  (CASE WHEN json_valid(answer) THEN json_extract(answer, '$.vin') END))"
     "  WHERE kind = 'vin' AND state = 'waiting';",
     NULL},
    /* the cost a batch row's charged call reserved against its job's cap (price's
     * --max-cost), in hundredths: batch.c sums it per job before each charged call */
    {"ALTER TABLE journal ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0;", NULL},
    /* the report spool in the db: a report waiting for the transport is a row written in its
     * message's own transaction (pipeline.c), instead of a file and two directory syncs beside
     * the db; the row goes with the mark of its delivery */
    {"CREATE TABLE report_spool (sha256 TEXT PRIMARY KEY, message BLOB NOT NULL);", NULL},
    /* the vin rows indexed by the delivery they were filed with (its digest), which find_row
     * looks up first so that a repeat finds its own row: the exact expression again */
    {"CREATE INDEX journal_vin_delivery ON journal ("
     "  (CASE WHEN json_valid(answer) THEN json_extract(answer, '$.delivery') END))"
     "  WHERE kind = 'vin';",
     NULL},
    /* a spooled report written to the outbox but not synced yet: the boot it was written in
     * (NULL: not handed over), so that after another boot it is sent again (pipeline.c) */
    {"ALTER TABLE report_spool ADD COLUMN unsynced TEXT;", NULL},
};

/* How many poll records `status` history keeps. */
#define POLLS_KEPT 500

static sg_status db_status(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return SG_ETEMP;
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_PERM:
		return SG_EIO;
	case SQLITE_CONSTRAINT:
		return SG_EDATA;
	default:
		return SG_EINTERNAL;
	}
}

static sg_status db_fail(sg_store *st, char **err, int rc, const char *what)
{
	return sg_fail(err, db_status(rc), "state db: %s: %s", what, sqlite3_errmsg(st->db));
}

static void kept_free(gpointer p)
{
	kept_stmt *k = p;

	sqlite3_finalize(k->s);
	g_free(k);
}

/*
 * Statements are prepared once a connection and kept, keyed by their SQL text: preparing the
 * ledger's and the stock's statements afresh for every message was a sixth of a poll. A kept
 * statement is lent to one user at a time; a second user of the same SQL while it is lent (a
 * nested query) gets one of its own, finalized when given back. Every statement from here goes
 * back through sg_store_done, never sqlite3_finalize.
 */
sg_status sg_store_prepare(sg_store *st, const char *sql, sqlite3_stmt **out, char **err)
{
	/* A pragma may act when it is prepared, not when it is stepped (SQLite's documentation
	 * says so of several): kept, "PRAGMA synchronous = NORMAL" would not act again. */
	bool keep = g_ascii_strncasecmp(sql, "PRAGMA", 6) != 0;
	kept_stmt *k = keep ? g_hash_table_lookup(st->kept, sql) : NULL;
	int rc;

	if (k != NULL && !k->lent) {
		k->lent = true;
		*out = k->s;
		return SG_OK;
	}
	rc = sqlite3_prepare_v3(st->db, sql, -1, k || !keep ? 0 : SQLITE_PREPARE_PERSISTENT, out,
				NULL);
	if (rc != SQLITE_OK)
		return db_fail(st, err, rc, "prepare");
	if (k == NULL && keep) {
		k = g_new0(kept_stmt, 1);
		k->s = *out;
		k->lent = true;
		g_hash_table_insert(st->kept, g_strdup(sql), k);
	}
	return SG_OK;
}

void sg_store_done(sg_store *st, sqlite3_stmt *s)
{
	kept_stmt *k;

	if (s == NULL)
		return;
	k = g_hash_table_lookup(st->kept, sqlite3_sql(s));
	if (k == NULL || k->s != s) {
		sqlite3_finalize(s);
		return;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	k->lent = false;
}

static sg_status prepare(sg_store *st, const char *sql, sqlite3_stmt **out, char **err)
{
	return sg_store_prepare(st, sql, out, err);
}

/* Binds text, NULL for NULL. */
static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static char *col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? g_strdup((const char *)t) : NULL;
}

/* Steps a statement that returns no rows, then finalizes it. */
static sg_status step_done(sg_store *st, sqlite3_stmt *s, const char *what, char **err)
{
	int rc = sqlite3_step(s);
	sg_status ret = SG_OK;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = db_fail(st, err, rc, what);
	sg_store_done(st, s);
	return ret;
}

sg_status sg_store_exec(sg_store *st, const char *sql, char **err)
{
	char *msg = NULL;
	int rc;

	/* One statement (the transactions, savepoints, a file's staging) runs as a kept one; a
	 * script (migrations, the pragmas at open) through sqlite3_exec. */
	if (strchr(sql, ';') == NULL) {
		sqlite3_stmt *s;

		if (sg_store_prepare(st, sql, &s, NULL) == SG_OK) {
			while ((rc = sqlite3_step(s)) == SQLITE_ROW)
				;
			if (rc != SQLITE_DONE) {
				sg_status ret = sg_fail(err, db_status(rc), "state db: %s",
							sqlite3_errmsg(st->db));
				sg_store_done(st, s);
				return ret;
			}
			sg_store_done(st, s);
			return SG_OK;
		}
	}
	rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		sg_status ret =
		    sg_fail(err, db_status(rc), "state db: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return ret;
	}
	return SG_OK;
}

static sg_status query_int(sg_store *st, const char *sql, gint64 *out, char **err)
{
	sqlite3_stmt *s;
	if (prepare(st, sql, &s, err))
		return SG_EINTERNAL;
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sg_status ret = db_fail(st, err, rc, sql);
		sg_store_done(st, s);
		return ret;
	}
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sg_store_done(st, s);
	return SG_OK;
}

static sg_status migrate(sg_store *st, char **err)
{
	const gint64 latest = G_N_ELEMENTS(migrations);
	gint64 v;
	sg_status ret;

	if ((ret = query_int(st, "PRAGMA user_version", &v, err)))
		return ret;
	if (v > latest)
		return sg_fail(err, SG_ECONFIG,
			       "state db: schema version %" G_GINT64_FORMAT
			       " is newer than this stockgate knows (%" G_GINT64_FORMAT
			       "); upgrade stockgate",
			       v, latest);
	while (v < latest) {
		/* One transaction a version; re-read the version inside it, as another process
		 * may have migrated while we waited for the lock. */
		if ((ret = sg_store_exec(st, "BEGIN IMMEDIATE", err)))
			return ret;
		if ((ret = query_int(st, "PRAGMA user_version", &v, err)))
			goto fail;
		if (v >= latest) {
			sg_store_exec(st, "COMMIT", NULL);
			break;
		}
		if ((ret = sg_store_exec(st, migrations[v].sql, err)) ||
		    (migrations[v].then && (ret = migrations[v].then(st, err))))
			goto fail;
		g_autofree char *set =
		    g_strdup_printf("PRAGMA user_version = %" G_GINT64_FORMAT, v + 1);
		if ((ret = sg_store_exec(st, set, err)) || (ret = sg_store_exec(st, "COMMIT", err)))
			goto fail;
		log_debug("state db: migrated to schema version %" G_GINT64_FORMAT, v + 1);
		v++;
	}
	return SG_OK;
fail:
	sg_store_exec(st, "ROLLBACK", NULL);
	return ret;
}

sg_status sg_store_open(const char *path, sg_store **out, char **err)
{
	sg_store *st = g_new0(sg_store, 1);
	sg_status ret;

	st->kept = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, kept_free);
	*out = NULL;
	/* "" makes SQLite open a private temporary db, deleted on close. */
	int rc =
	    sqlite3_open_v2(path ? path : "", &st->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		ret = sg_fail(err, SG_EIO, "state db %s: %s", path,
			      st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		sg_store_close(st);
		return ret;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, 5000);
	/*
	 * synchronous=FULL with WAL costs one fsync of the WAL per commit, and a commit is one
	 * message (or one journal mark; a poll's messages are synced a chunk at a time instead,
	 * see sg_store_flush). NORMAL would survive a crash of stockgate itself, but an
	 * OS crash or power loss could drop the last commits after their external effect already
	 * happened: the IMAP move of an applied message (the message would be lost), or a batch
	 * call that costs money (it would be charged twice). Those effects always follow a commit,
	 * so the commit must be on disk first.
	 */
	if ((ret = sg_store_exec(st,
				 "PRAGMA journal_mode = WAL;"
				 "PRAGMA synchronous = FULL;"
				 "PRAGMA foreign_keys = ON;"
				 "PRAGMA cache_size = -16384;"
				 "PRAGMA temp.cache_size = -16384;",
				 err)) ||
	    (ret = migrate(st, err))) {
		sg_store_close(st);
		return ret;
	}
	*out = st;
	return SG_OK;
}

void sg_store_close(sg_store *st)
{
	if (!st)
		return;
	g_hash_table_destroy(st->kept);
	if (st->db)
		sqlite3_close_v2(st->db);
	g_free(st);
}

sqlite3 *sg_store_db(sg_store *st) { return st->db; }

sg_status sg_store_begin(sg_store *st, char **err)
{
	return sg_store_exec(st, "BEGIN IMMEDIATE", err);
}

sg_status sg_store_commit(sg_store *st, char **err)
{
	sg_status ret = sg_store_exec(st, "COMMIT", err);

	if (ret == SG_OK && st->normal)
		st->unsynced = true;
	return ret;
}

sg_status sg_store_durable(sg_store *st, bool durable, char **err)
{
	sg_status ret;

	if (durable == !st->normal)
		return SG_OK;
	ret = sg_store_exec(st, durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
			    err);
	if (ret == SG_OK) {
		st->normal = !durable;
		/* also what commits without sg_store_commit (a statement outside a transaction) */
		st->unsynced |= st->normal;
	}
	return ret;
}

sg_status sg_store_flush(sg_store *st, char **err)
{
	sqlite3_file *wal = NULL;
	int rc;

	if (!st->unsynced)
		return SG_OK;
	/*
	 * Every commit is in the WAL once written; syncing the WAL file makes them all durable at
	 * once (recovery replays each committed frame). A checkpoint would not do: it syncs nothing
	 * while another connection (serve, the metrics timer) holds a snapshot older than the
	 * frames. Without an open WAL (another journal mode) a checkpoint is all there is.
	 */
	rc = sqlite3_file_control(st->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
	if (rc == SQLITE_OK && wal != NULL && wal->pMethods != NULL)
		rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
	else
		rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc != SQLITE_OK)
		return sg_fail(err, db_status(rc), "state db: syncing the WAL: %s", sqlite3_errstr(rc));
	st->unsynced = false;
	return SG_OK;
}

void sg_store_rollback(sg_store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sg_store_exec(st, "ROLLBACK", NULL);
}

static char *quote_name(const char *name)
{
	GString *s = g_string_new("\"");
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			g_string_append_c(s, '"');
		g_string_append_c(s, *p);
	}
	g_string_append_c(s, '"');
	return g_string_free(s, FALSE);
}

sg_status sg_store_savepoint(sg_store *st, const char *name, char **err)
{
	g_autofree char *q = quote_name(name);
	g_autofree char *sql = g_strdup_printf("SAVEPOINT %s", q);
	return sg_store_exec(st, sql, err);
}

sg_status sg_store_release(sg_store *st, const char *name, char **err)
{
	g_autofree char *q = quote_name(name);
	g_autofree char *sql = g_strdup_printf("RELEASE %s", q);
	return sg_store_exec(st, sql, err);
}

void sg_store_rollback_to(sg_store *st, const char *name)
{
	g_autofree char *q = quote_name(name);
	g_autofree char *sql = g_strdup_printf("ROLLBACK TO %s; RELEASE %s", q, q);
	sg_store_exec(st, sql, NULL);
}

/* Roles */

static const struct {
	const char *name;
	unsigned role;
} role_names[] = {
    {"remains_upload", SG_ROLE_REMAINS_UPLOAD}, {"batch_vin", SG_ROLE_BATCH_VIN},
    {"batch_frame", SG_ROLE_BATCH_FRAME},	{"batch_price", SG_ROLE_BATCH_PRICE},
    {"batch_rental", SG_ROLE_BATCH_RENTAL},
};

unsigned sg_role_from_name(const char *name)
{
	if (!name)
		return 0;
	for (size_t i = 0; i < G_N_ELEMENTS(role_names); i++)
		if (g_ascii_strcasecmp(name, role_names[i].name) == 0)
			return role_names[i].role;
	return 0;
}

unsigned sg_role_for_method(const char *method)
{
	static const struct {
		const char *method;
		unsigned role;
	} map[] = {
	    {"warehouses", SG_ROLE_REMAINS_UPLOAD},
	    {"remains", SG_ROLE_REMAINS_UPLOAD},
	    {"vin", SG_ROLE_BATCH_VIN},
	    {"frame", SG_ROLE_BATCH_FRAME},
	    {"price", SG_ROLE_BATCH_PRICE},
	    {"rental", SG_ROLE_BATCH_RENTAL},
	};
	if (!method)
		return 0;
	for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
		if (g_ascii_strcasecmp(method, map[i].method) == 0)
			return map[i].role;
	return 0;
}

char *sg_roles_to_string(unsigned roles)
{
	GString *s = g_string_new(NULL);
	for (size_t i = 0; i < G_N_ELEMENTS(role_names); i++)
		if (roles & role_names[i].role)
			g_string_append_printf(s, "%s%s", s->len ? "," : "", role_names[i].name);
	return g_string_free(s, FALSE);
}

/* Dealers */

void sg_dealer_free(sg_dealer *d)
{
	if (!d)
		return;
	g_free(d->id);
	g_free(d->name);
	g_free(d->key_sha256);
	g_free(d);
}

static bool valid_dealer_id(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n < 1 || n > 64)
		return false;
	for (const char *p = id; *p; p++)
		if (!g_ascii_isalnum(*p) && *p != '_' && *p != '.' && *p != '-')
			return false;
	return true;
}

static char *key_hash(const char *key) { return sg_sha256_hex(key, strlen(key)); }

sg_status sg_dealer_add(sg_store *st, const char *id, const char *name, const char *key, char **err)
{
	sqlite3_stmt *s;
	if (!valid_dealer_id(id))
		return sg_fail(err, SG_EDATA,
			       "dealer id '%s' is not valid: use 1 to 64 of A-Z a-z 0-9 _ . -",
			       id ? id : "");
	if (!key || !*key)
		return sg_fail(err, SG_EUSAGE, "dealer %s: a key is required", id);
	if (prepare(st,
		    "INSERT INTO dealers(id, name, key_sha256, dev_mode, created)"
		    " VALUES (?, ?, ?, 0, ?) ON CONFLICT(id) DO NOTHING",
		    &s, err))
		return SG_EINTERNAL;
	g_autofree char *hash = key_hash(key);
	bind_text(s, 1, id);
	bind_text(s, 2, name ? name : "");
	bind_text(s, 3, hash);
	sqlite3_bind_int64(s, 4, sg_now());
	sg_status ret = step_done(st, s, "adding a dealer", err);
	if (ret == SG_OK && sqlite3_changes(st->db) == 0)
		return sg_fail(err, SG_EDATA, "dealer %s already exists", id);
	return ret;
}

static sg_dealer *dealer_from_row(sqlite3_stmt *s)
{
	sg_dealer *d = g_new0(sg_dealer, 1);
	d->id = col_dup(s, 0);
	d->name = col_dup(s, 1);
	d->key_sha256 = col_dup(s, 2);
	d->dev_mode = sqlite3_column_int(s, 3) != 0;
	d->created = sqlite3_column_int64(s, 4);
	return d;
}

#define DEALER_COLS "id, name, key_sha256, dev_mode, created"

sg_status sg_dealer_get(sg_store *st, const char *id, sg_dealer **out, char **err)
{
	sqlite3_stmt *s;
	*out = NULL;
	if (prepare(st, "SELECT " DEALER_COLS " FROM dealers WHERE id = ?", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, id);
	int rc = sqlite3_step(s);
	sg_status ret = SG_OK;
	if (rc == SQLITE_ROW)
		*out = dealer_from_row(s);
	else if (rc == SQLITE_DONE)
		ret = sg_fail(err, SG_ENOINPUT, "no dealer '%s'", id ? id : "");
	else
		ret = db_fail(st, err, rc, "reading a dealer");
	sg_store_done(st, s);
	return ret;
}

sg_status sg_dealer_list(sg_store *st, GPtrArray **out, char **err)
{
	sqlite3_stmt *s;
	int rc;
	*out = NULL;
	if (prepare(st, "SELECT " DEALER_COLS " FROM dealers ORDER BY id", &s, err))
		return SG_EINTERNAL;
	GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)sg_dealer_free);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		g_ptr_array_add(a, dealer_from_row(s));
	sg_store_done(st, s);
	if (rc != SQLITE_DONE) {
		g_ptr_array_unref(a);
		return db_fail(st, err, rc, "listing dealers");
	}
	*out = a;
	return SG_OK;
}

/* Runs an UPDATE/DELETE on one dealer; SG_ENOINPUT when no row matched. */
static sg_status dealer_change(sg_store *st, sqlite3_stmt *s, const char *id, const char *what,
			       char **err)
{
	sg_status ret = step_done(st, s, what, err);
	if (ret == SG_OK && sqlite3_changes(st->db) == 0)
		return sg_fail(err, SG_ENOINPUT, "no dealer '%s'", id ? id : "");
	return ret;
}

sg_status sg_dealer_remove(sg_store *st, const char *id, char **err)
{
	sqlite3_stmt *s;
	/* users, warehouses (and through them remains) and marks go by ON DELETE CASCADE. */
	if (prepare(st, "DELETE FROM dealers WHERE id = ?", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, id);
	return dealer_change(st, s, id, "removing a dealer", err);
}

sg_status sg_dealer_set_key(sg_store *st, const char *id, const char *key, char **err)
{
	sqlite3_stmt *s;
	if (!key || !*key)
		return sg_fail(err, SG_EUSAGE, "dealer %s: a key is required", id ? id : "");
	if (prepare(st, "UPDATE dealers SET key_sha256 = ? WHERE id = ?", &s, err))
		return SG_EINTERNAL;
	g_autofree char *hash = key_hash(key);
	bind_text(s, 1, hash);
	bind_text(s, 2, id);
	return dealer_change(st, s, id, "setting a dealer's key", err);
}

sg_status sg_dealer_set_dev_mode(sg_store *st, const char *id, bool on, char **err)
{
	sqlite3_stmt *s;
	if (prepare(st, "UPDATE dealers SET dev_mode = ? WHERE id = ?", &s, err))
		return SG_EINTERNAL;
	sqlite3_bind_int(s, 1, on ? 1 : 0);
	bind_text(s, 2, id);
	return dealer_change(st, s, id, "setting development mode", err);
}

bool sg_dealer_key_matches(const sg_dealer *d, const char *key)
{
	if (!d || !d->key_sha256 || !key || !*key)
		return false;
	g_autofree char *hash = key_hash(key);
	if (strlen(hash) != strlen(d->key_sha256))
		return false;
	return sg_secure_equal(hash, d->key_sha256);
}

/* Users */

void sg_user_free(sg_user *u)
{
	if (!u)
		return;
	g_free(u->email);
	g_free(u->dealer);
	g_free(u);
}

static char *email_norm(const char *email)
{
	g_autofree char *t = g_strstrip(g_strdup(email ? email : ""));
	return g_utf8_strdown(t, -1);
}

sg_status sg_user_add(sg_store *st, const char *email, const char *dealer, unsigned roles,
		      char **err)
{
	sqlite3_stmt *s;
	g_autofree char *e = email_norm(email);
	const char *at = strchr(e, '@');
	if (!g_utf8_validate(e, -1, NULL) || !at || at == e || !at[1] || strchr(at + 1, '@'))
		return sg_fail(err, SG_EDATA, "'%s' is not an e-mail address", email ? email : "");
	if (prepare(st, "SELECT 1 FROM dealers WHERE id = ?", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, dealer);
	int rc = sqlite3_step(s);
	sg_store_done(st, s);
	if (rc == SQLITE_DONE)
		return sg_fail(err, SG_ENOINPUT, "no dealer '%s'", dealer ? dealer : "");
	if (rc != SQLITE_ROW)
		return db_fail(st, err, rc, "reading a dealer");
	if (prepare(st,
		    "INSERT INTO users(email, dealer, roles) VALUES (?, ?, ?)"
		    " ON CONFLICT(email) DO UPDATE SET dealer = excluded.dealer, roles = "
		    "excluded.roles",
		    &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, e);
	bind_text(s, 2, dealer);
	sqlite3_bind_int64(s, 3, roles);
	return step_done(st, s, "adding a user", err);
}

static sg_user *user_from_row(sqlite3_stmt *s)
{
	sg_user *u = g_new0(sg_user, 1);
	u->email = col_dup(s, 0);
	u->dealer = col_dup(s, 1);
	u->roles = (unsigned)sqlite3_column_int64(s, 2);
	return u;
}

sg_status sg_user_get(sg_store *st, const char *email, sg_user **out, char **err)
{
	sqlite3_stmt *s;
	g_autofree char *e = email_norm(email);
	*out = NULL;
	if (prepare(st, "SELECT email, dealer, roles FROM users WHERE email = ?", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, e);
	int rc = sqlite3_step(s);
	sg_status ret = SG_OK;
	if (rc == SQLITE_ROW)
		*out = user_from_row(s);
	else if (rc == SQLITE_DONE)
		ret = sg_fail(err, SG_ENOINPUT, "no user '%s'", e);
	else
		ret = db_fail(st, err, rc, "reading a user");
	sg_store_done(st, s);
	return ret;
}

sg_status sg_user_list(sg_store *st, const char *dealer, GPtrArray **out, char **err)
{
	sqlite3_stmt *s;
	int rc;
	*out = NULL;
	if (prepare(st,
		    "SELECT email, dealer, roles FROM users WHERE ?1 IS NULL OR dealer = ?1"
		    " ORDER BY email",
		    &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, dealer);
	GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)sg_user_free);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		g_ptr_array_add(a, user_from_row(s));
	sg_store_done(st, s);
	if (rc != SQLITE_DONE) {
		g_ptr_array_unref(a);
		return db_fail(st, err, rc, "listing users");
	}
	*out = a;
	return SG_OK;
}

sg_status sg_user_remove(sg_store *st, const char *email, char **err)
{
	sqlite3_stmt *s;
	g_autofree char *e = email_norm(email);
	if (prepare(st, "DELETE FROM users WHERE email = ?", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, e);
	sg_status ret = step_done(st, s, "removing a user", err);
	if (ret == SG_OK && sqlite3_changes(st->db) == 0)
		return sg_fail(err, SG_ENOINPUT, "no user '%s'", e);
	return ret;
}

/* Catalogue */

sg_status sg_catalog_add(sg_store *st, const char *article, char **err)
{
	sqlite3_stmt *s;
	if (!article || !*article)
		return sg_fail(err, SG_EDATA, "an empty article cannot be in the catalogue");
	if (prepare(st, "INSERT OR IGNORE INTO catalog(article) VALUES (?)", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, article);
	return step_done(st, s, "adding to the catalogue", err);
}

sg_status sg_catalog_clear(sg_store *st, char **err)
{
	return sg_store_exec(st, "DELETE FROM catalog", err);
}

sg_status sg_catalog_count(sg_store *st, long *n, char **err)
{
	gint64 v = 0;
	sg_status ret = query_int(st, "SELECT count(*) FROM catalog", &v, err);
	*n = (long)v;
	return ret;
}

sg_status sg_catalog_each(sg_store *st, void (*fn)(void *ctx, const char *article), void *ctx,
			  char **err)
{
	sqlite3_stmt *s;
	int rc;
	if (prepare(st, "SELECT article FROM catalog ORDER BY article", &s, err))
		return SG_EINTERNAL;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		fn(ctx, (const char *)sqlite3_column_text(s, 0));
	sg_store_done(st, s);
	return rc == SQLITE_DONE ? SG_OK : db_fail(st, err, rc, "reading the catalogue");
}

/* Stock */

void sg_warehouse_free(sg_warehouse *w)
{
	if (!w)
		return;
	g_free(w->code);
	g_free(w->address);
	g_free(w->contacts);
	g_free(w);
}

sg_status sg_warehouse_list(sg_store *st, const char *dealer, GPtrArray **out, char **err)
{
	sqlite3_stmt *s;
	int rc;
	*out = NULL;
	if (prepare(st,
		    "SELECT code, address, contacts FROM warehouses WHERE dealer = ? ORDER BY code",
		    &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, dealer);
	GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)sg_warehouse_free);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		sg_warehouse *w = g_new0(sg_warehouse, 1);
		w->code = col_dup(s, 0);
		w->address = col_dup(s, 1);
		w->contacts = col_dup(s, 2);
		g_ptr_array_add(a, w);
	}
	sg_store_done(st, s);
	if (rc != SQLITE_DONE) {
		g_ptr_array_unref(a);
		return db_fail(st, err, rc, "listing warehouses");
	}
	*out = a;
	return SG_OK;
}

/*
 * Remains are kept as lists. A remains file replaces everything its warehouse had, so the unit
 * stored is the warehouse's list: the articles of the last file applied, each once, as lines
 * "article<TAB>quantity<LF>" in the order the file first named them, cut into chunks of at
 * most REMAINS_CHUNK bytes (rows of the remains table, numbered from 0; a line never spans two).
 * Writing a million-row file as a million SQLite rows took about half of `process`; as chunks
 * it is a few hundred rows. Articles hold no TAB or LF: stock.c refuses control characters.
 * `sqlite3 state.db "SELECT CAST(lines AS TEXT) FROM remains"` shows a list as text.
 */
#define REMAINS_CHUNK 65536

struct sg_remains_reader {
	sg_store *st;
	sqlite3_stmt *s;
	char *warehouse; /* of the chunk in buf */
	GByteArray *buf; /* the chunk, its lines split in place */
	size_t pos;
	bool end;	 /* no more chunks */
	sg_status status;
	char *err;
};

sg_status sg_remains_open(sg_store *st, const char *dealer, const char *code,
			  sg_remains_reader **out, char **err)
{
	sg_remains_reader *r;
	sqlite3_stmt *s;

	*out = NULL;
	if (prepare(st,
		    "SELECT warehouse, lines FROM remains"
		    " WHERE dealer = ?1 AND (?2 IS NULL OR warehouse = ?2) ORDER BY warehouse, chunk",
		    &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, dealer);
	bind_text(s, 2, code);
	r = g_new0(sg_remains_reader, 1);
	r->st = st;
	r->s = s;
	r->buf = g_byte_array_new();
	*out = r;
	return SG_OK;
}

static bool remains_damaged(sg_remains_reader *r)
{
	r->status = SG_EIO;
	r->err = g_strdup_printf("state db: the stored remains of warehouse %s are damaged",
				 r->warehouse ? r->warehouse : "?");
	r->end = true;
	return false;
}

/* Loads the next chunk; false at the end or on an error. */
static bool remains_chunk(sg_remains_reader *r)
{
	int rc = sqlite3_step(r->s);
	if (rc != SQLITE_ROW) {
		r->end = true;
		if (rc != SQLITE_DONE) {
			r->status = db_status(rc);
			r->err = g_strdup_printf("state db: reading remains: %s",
						 sqlite3_errmsg(r->st->db));
		}
		return false;
	}
	const char *w = (const char *)sqlite3_column_text(r->s, 0);
	if (!r->warehouse || strcmp(r->warehouse, w) != 0) {
		g_free(r->warehouse);
		r->warehouse = g_strdup(w);
	}
	g_byte_array_set_size(r->buf, 0);
	g_byte_array_append(r->buf, sqlite3_column_blob(r->s, 1), sqlite3_column_bytes(r->s, 1));
	r->pos = 0;
	if (r->buf->len && r->buf->data[r->buf->len - 1] != '\n')
		return remains_damaged(r);
	return true;
}

bool sg_remains_next(sg_remains_reader *r, const char **warehouse, const char **article,
		     long long *quantity)
{
	while (r->pos >= r->buf->len)
		if (r->end || !remains_chunk(r))
			return false;
	char *line = (char *)r->buf->data + r->pos;
	char *nl = memchr(line, '\n', r->buf->len - r->pos); /* found: the chunk ends with one */
	char *tab = memchr(line, '\t', (size_t)(nl - line));
	char *end;
	if (!tab || tab == line || !g_ascii_isdigit(tab[1]))
		return remains_damaged(r);
	*tab = *nl = '\0';
	errno = 0;
	*quantity = g_ascii_strtoll(tab + 1, &end, 10);
	if (*end || errno)
		return remains_damaged(r);
	r->pos = (size_t)(nl + 1 - (char *)r->buf->data);
	*warehouse = r->warehouse;
	*article = line;
	return true;
}

void sg_remains_rewind(sg_remains_reader *r)
{
	sqlite3_reset(r->s);
	g_byte_array_set_size(r->buf, 0);
	r->pos = 0;
	r->end = false;
	r->status = SG_OK;
	g_clear_pointer(&r->err, g_free);
}

sg_status sg_remains_error(const sg_remains_reader *r, char **err)
{
	return r->status ? sg_fail(err, r->status, "%s", r->err) : SG_OK;
}

void sg_remains_close(sg_remains_reader *r)
{
	if (!r)
		return;
	sg_store_done(r->st, r->s);
	g_free(r->warehouse);
	g_byte_array_unref(r->buf);
	g_free(r->err);
	g_free(r);
}

static sg_status put_chunk(sg_store *st, sqlite3_stmt *s, int chunk, const GString *b, char **err)
{
	sqlite3_bind_int(s, 3, chunk);
	sqlite3_bind_blob(s, 4, b->str, (int)b->len, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SG_OK : db_fail(st, err, rc, "writing remains");
}

sg_status sg_remains_replace(sg_store *st, const char *dealer, const char *code,
			     sg_remains_next_fn next, void *ctx, char **err)
{
	sqlite3_stmt *s;
	const char *article;
	long long qty;
	sg_status ret;
	int chunk = 0;

	if (prepare(st, "DELETE FROM remains WHERE dealer = ?1 AND warehouse = ?2", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, dealer);
	bind_text(s, 2, code);
	if ((ret = step_done(st, s, "replacing remains", err)))
		return ret;
	if (prepare(st, "INSERT INTO remains(dealer, warehouse, chunk, lines) VALUES (?1, ?2, ?3, ?4)",
		    &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, dealer);
	bind_text(s, 2, code);
	GString *b = g_string_sized_new(REMAINS_CHUNK);
	while (ret == SG_OK && next(ctx, &article, &qty)) {
		char q[24];
		int qn = g_snprintf(q, sizeof q, "%lld", qty);
		size_t alen = strlen(article);
		/* What the reader could not read back is refused here, never stored. */
		if (alen == 0 || strpbrk(article, "\t\n") || qty < 0) {
			ret = sg_fail(err, SG_EINTERNAL,
				      "remains of %s: cannot store article '%s' with quantity %lld",
				      code, article, qty);
			break;
		}
		if (b->len + alen + (size_t)qn + 2 > REMAINS_CHUNK && b->len) {
			ret = put_chunk(st, s, chunk++, b, err);
			g_string_truncate(b, 0);
		}
		g_string_append_len(b, article, (gssize)alen);
		g_string_append_c(b, '\t');
		g_string_append_len(b, q, qn);
		g_string_append_c(b, '\n');
	}
	if (ret == SG_OK && b->len)
		ret = put_chunk(st, s, chunk, b, err);
	g_string_free(b, TRUE);
	sg_store_done(st, s);
	return ret;
}

typedef struct {
	guint32 off; /* of the article in text */
	long long qty;
} remains_row;

static gint remains_row_cmp(gconstpointer a, gconstpointer b, gpointer text)
{
	return strcmp((const char *)text + ((const remains_row *)a)->off,
		      (const char *)text + ((const remains_row *)b)->off);
}

/* Sorts one warehouse's rows by article and hands them to fn. */
static void remains_emit(const char *w, GByteArray *text, GArray *rows,
			 void (*fn)(void *, const char *, const char *, long long), void *ctx)
{
	g_array_sort_with_data(rows, remains_row_cmp, text->data);
	for (guint i = 0; i < rows->len; i++) {
		const remains_row *x = &g_array_index(rows, remains_row, i);
		fn(ctx, w, (const char *)text->data + x->off, x->qty);
	}
	g_byte_array_set_size(text, 0);
	g_array_set_size(rows, 0);
}

sg_status sg_remains_each(sg_store *st, const char *dealer, const char *code,
			  void (*fn)(void *ctx, const char *warehouse, const char *article,
				     long long quantity),
			  void *ctx, char **err)
{
	sg_remains_reader *r;
	const char *w, *a;
	long long q;
	g_autofree char *cur = NULL;
	sg_status ret;

	if ((ret = sg_remains_open(st, dealer, code, &r, err)))
		return ret;
	/* A list is kept in file order; the export is sorted (BINARY: UTF-8 byte order). */
	GByteArray *text = g_byte_array_new();
	GArray *rows = g_array_new(FALSE, FALSE, sizeof(remains_row));
	while (sg_remains_next(r, &w, &a, &q)) {
		if (cur && strcmp(cur, w) != 0)
			remains_emit(cur, text, rows, fn, ctx);
		if (!cur || strcmp(cur, w) != 0) {
			g_free(cur);
			cur = g_strdup(w);
		}
		remains_row x = {.off = text->len, .qty = q};
		g_byte_array_append(text, (const guint8 *)a, (guint)strlen(a) + 1);
		g_array_append_val(rows, x);
	}
	if ((ret = sg_remains_error(r, err)) == SG_OK && cur)
		remains_emit(cur, text, rows, fn, ctx);
	sg_remains_close(r);
	g_byte_array_unref(text);
	g_array_unref(rows);
	return ret;
}

/* Migration 2: the rows of remains_v1 (one an article) become lists, then the table goes. */
typedef struct {
	sqlite3_stmt *s;
	int rc;
} v1_rows;

static bool v1_next(void *vctx, const char **article, long long *qty)
{
	v1_rows *v = vctx;
	if ((v->rc = sqlite3_step(v->s)) != SQLITE_ROW)
		return false;
	*article = (const char *)sqlite3_column_text(v->s, 0);
	*qty = sqlite3_column_int64(v->s, 1);
	return true;
}

static sg_status remains_to_lists(sg_store *st, char **err)
{
	sqlite3_stmt *lists;
	v1_rows v = {0};
	sg_status ret = SG_OK;
	int rc = SQLITE_DONE;

	if (prepare(st, "SELECT DISTINCT dealer, warehouse FROM remains_v1", &lists, err))
		return SG_EINTERNAL;
	if (prepare(st,
		    "SELECT article, quantity FROM remains_v1 WHERE dealer = ?1 AND warehouse = ?2"
		    " ORDER BY article",
		    &v.s, err)) {
		sg_store_done(st, lists);
		return SG_EINTERNAL;
	}
	while (ret == SG_OK && (rc = sqlite3_step(lists)) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(lists, 0);
		const char *w = (const char *)sqlite3_column_text(lists, 1);
		sqlite3_reset(v.s);
		bind_text(v.s, 1, d);
		bind_text(v.s, 2, w);
		ret = sg_remains_replace(st, d, w, v1_next, &v, err);
		if (ret == SG_OK && v.rc != SQLITE_DONE)
			ret = db_fail(st, err, v.rc, "reading remains_v1");
	}
	if (ret == SG_OK && rc != SQLITE_DONE)
		ret = db_fail(st, err, rc, "listing remains_v1");
	sg_store_done(st, v.s);
	sg_store_done(st, lists);
	if (ret == SG_OK)
		ret = sg_store_exec(st, "DROP TABLE remains_v1", err);
	return ret;
}

sg_status sg_mark_get(sg_store *st, const char *dealer, const char *kind, const char *warehouse,
		      gint64 *when, char **err)
{
	sqlite3_stmt *s;
	*when = 0;
	if (prepare(st, "SELECT time FROM marks WHERE dealer = ? AND kind = ? AND warehouse = ?",
		    &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, dealer);
	bind_text(s, 2, kind);
	bind_text(s, 3, warehouse ? warehouse : "");
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*when = sqlite3_column_int64(s, 0);
	sg_store_done(st, s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SG_OK
						     : db_fail(st, err, rc, "reading a mark");
}

sg_status sg_mark_set(sg_store *st, const char *dealer, const char *kind, const char *warehouse,
		      gint64 when, char **err)
{
	sqlite3_stmt *s;
	if (prepare(st,
		    "INSERT INTO marks(dealer, kind, warehouse, time) VALUES (?, ?, ?, ?)"
		    " ON CONFLICT(dealer, kind, warehouse) DO UPDATE"
		    " SET time = max(time, excluded.time)",
		    &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, dealer);
	bind_text(s, 2, kind);
	bind_text(s, 3, warehouse ? warehouse : "");
	sqlite3_bind_int64(s, 4, when);
	return step_done(st, s, "recording a mark", err);
}

/* Ledger */

void sg_ledger_free(sg_ledger *l)
{
	if (!l)
		return;
	g_free(l->sha256);
	g_free(l->source);
	g_free(l->mailbox);
	g_free(l->message_id);
	g_free(l->outcome);
	g_free(l->reason);
	g_free(l->result_json);
	g_free(l->report_state);
	g_free(l->report_path);
	g_free(l);
}

#define LEDGER_COLS                                                                                \
	"sha256, source, mailbox, uidvalidity, uid, message_id, outcome, reason, result_json,"     \
	" report_state, report_path, attempts, first_seen, updated"

static sg_ledger *ledger_from_row(sqlite3_stmt *s)
{
	sg_ledger *l = g_new0(sg_ledger, 1);
	l->sha256 = col_dup(s, 0);
	l->source = col_dup(s, 1);
	l->mailbox = col_dup(s, 2);
	l->uidvalidity = sqlite3_column_int64(s, 3);
	l->uid = sqlite3_column_int64(s, 4);
	l->message_id = col_dup(s, 5);
	l->outcome = col_dup(s, 6);
	l->reason = col_dup(s, 7);
	l->result_json = col_dup(s, 8);
	l->report_state = col_dup(s, 9);
	l->report_path = col_dup(s, 10);
	l->attempts = sqlite3_column_int(s, 11);
	l->first_seen = sqlite3_column_int64(s, 12);
	l->updated = sqlite3_column_int64(s, 13);
	return l;
}

static sg_status ledger_one(sg_store *st, sqlite3_stmt *s, sg_ledger **out, char **err)
{
	int rc = sqlite3_step(s);
	sg_status ret = SG_OK;
	if (rc == SQLITE_ROW)
		*out = ledger_from_row(s);
	else if (rc == SQLITE_DONE)
		ret = sg_fail(err, SG_ENOINPUT, "message not in the ledger");
	else
		ret = db_fail(st, err, rc, "reading the ledger");
	sg_store_done(st, s);
	return ret;
}

sg_status sg_ledger_get(sg_store *st, const char *sha256, sg_ledger **out, char **err)
{
	sqlite3_stmt *s;
	*out = NULL;
	if (prepare(st, "SELECT " LEDGER_COLS " FROM ledger WHERE sha256 = ?", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, sha256);
	return ledger_one(st, s, out, err);
}

sg_status sg_ledger_get_uid(sg_store *st, const char *mailbox, gint64 uidvalidity, gint64 uid,
			    sg_ledger **out, char **err)
{
	sqlite3_stmt *s;
	*out = NULL;
	if (prepare(st,
		    "SELECT " LEDGER_COLS " FROM ledger"
		    " WHERE mailbox = ? AND uidvalidity = ? AND uid = ?"
		    " ORDER BY updated DESC, rowid DESC LIMIT 1",
		    &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, mailbox);
	sqlite3_bind_int64(s, 2, uidvalidity);
	sqlite3_bind_int64(s, 3, uid);
	return ledger_one(st, s, out, err);
}

sg_status sg_ledger_put(sg_store *st, const sg_ledger *l, char **err)
{
	sqlite3_stmt *s;
	if (!l->sha256 || !*l->sha256)
		return sg_fail(err, SG_EINTERNAL, "ledger: a message without its SHA-256");
	if (prepare(st,
		    "INSERT INTO ledger(" LEDGER_COLS ")"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
		    " ON CONFLICT(sha256) DO UPDATE SET source = excluded.source,"
		    " mailbox = excluded.mailbox, uidvalidity = excluded.uidvalidity,"
		    " uid = excluded.uid, message_id = excluded.message_id,"
		    " outcome = excluded.outcome, reason = excluded.reason,"
		    " result_json = excluded.result_json, report_state = excluded.report_state,"
		    " report_path = excluded.report_path, attempts = excluded.attempts,"
		    " updated = excluded.updated",
		    &s, err))
		return SG_EINTERNAL;
	gint64 now = sg_now();
	bind_text(s, 1, l->sha256);
	bind_text(s, 2, l->source);
	bind_text(s, 3, l->mailbox);
	sqlite3_bind_int64(s, 4, l->uidvalidity);
	sqlite3_bind_int64(s, 5, l->uid);
	bind_text(s, 6, l->message_id);
	bind_text(s, 7, l->outcome);
	bind_text(s, 8, l->reason);
	bind_text(s, 9, l->result_json);
	bind_text(s, 10, l->report_state ? l->report_state : "none");
	bind_text(s, 11, l->report_path);
	sqlite3_bind_int(s, 12, l->attempts);
	sqlite3_bind_int64(s, 13, l->first_seen ? l->first_seen : now);
	sqlite3_bind_int64(s, 14, l->updated ? l->updated : now);
	return step_done(st, s, "writing the ledger", err);
}

sg_status sg_ledger_count_duplicate(sg_store *st, const char *sha256, char **err)
{
	sqlite3_stmt *s;
	if (prepare(st, "UPDATE ledger SET duplicates = duplicates + 1 WHERE sha256 = ?", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, sha256);
	return step_done(st, s, "counting a duplicate", err);
}

sg_status sg_ledger_pending_reports(sg_store *st, GPtrArray **out, char **err)
{
	sqlite3_stmt *s;
	int rc;
	*out = NULL;
	if (prepare(st,
		    "SELECT " LEDGER_COLS " FROM ledger WHERE report_state = 'pending'"
		    " ORDER BY first_seen, rowid",
		    &s, err))
		return SG_EINTERNAL;
	GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)sg_ledger_free);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		g_ptr_array_add(a, ledger_from_row(s));
	sg_store_done(st, s);
	if (rc != SQLITE_DONE) {
		g_ptr_array_unref(a);
		return db_fail(st, err, rc, "reading the ledger");
	}
	*out = a;
	return SG_OK;
}

/* The report spool */

sg_status sg_report_spool_put(sg_store *st, const char *sha256, const char *data, size_t len,
			      char **err)
{
	sqlite3_stmt *s;

	if (prepare(st, "INSERT OR REPLACE INTO report_spool(sha256, message) VALUES (?, ?)", &s,
		    err))
		return SG_EINTERNAL;
	bind_text(s, 1, sha256);
	sqlite3_bind_blob64(s, 2, data, (sqlite3_uint64)len, SQLITE_STATIC);
	return step_done(st, s, "spooling a report", err);
}

sg_status sg_report_spool_get(sg_store *st, const char *sha256, char **data, gsize *len,
			      char **err)
{
	sqlite3_stmt *s;
	sg_status ret = SG_OK;
	int rc;

	*data = NULL;
	*len = 0;
	if (prepare(st, "SELECT message FROM report_spool WHERE sha256 = ?", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, sha256);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*len = (gsize)sqlite3_column_bytes(s, 0);
		*data = g_memdup2(sqlite3_column_blob(s, 0), *len);
	} else if (rc == SQLITE_DONE) {
		ret = sg_fail(err, SG_ENOINPUT, "no report spooled");
	} else {
		ret = db_fail(st, err, rc, "reading the report spool");
	}
	sg_store_done(st, s);
	return ret;
}

sg_status sg_report_spool_drop(sg_store *st, const char *sha256, char **err)
{
	sqlite3_stmt *s;

	if (prepare(st, "DELETE FROM report_spool WHERE sha256 = ?", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, sha256);
	return step_done(st, s, "dropping a spooled report", err);
}

sg_status sg_report_spool_unsynced(sg_store *st, const char *sha256, const char *boot,
				   char **err)
{
	sqlite3_stmt *s;

	if (prepare(st, "UPDATE report_spool SET unsynced = ? WHERE sha256 = ?", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, boot);
	bind_text(s, 2, sha256);
	return step_done(st, s, "marking a report written", err);
}

sg_status sg_report_spool_synced(sg_store *st, const char *boot, bool synced, char **err)
{
	sqlite3_stmt *s;

	if (prepare(st,
		    synced ? "DELETE FROM report_spool WHERE unsynced = ?"
			   : "UPDATE report_spool SET unsynced = '' WHERE unsynced = ?",
		    &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, boot);
	return step_done(st, s, "settling the reports written", err);
}

sg_status sg_report_spool_lost(sg_store *st, const char *sha256, const char *boot, bool *lost,
			       char **err)
{
	sqlite3_stmt *s;
	int rc;

	*lost = false;
	if (prepare(st, "SELECT unsynced IS NOT NULL AND unsynced IS NOT ? FROM report_spool"
			" WHERE sha256 = ?",
		    &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, boot);
	bind_text(s, 2, sha256);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*lost = sqlite3_column_int(s, 0) != 0;
	sg_store_done(st, s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, rc, "reading the report spool");
	return SG_OK;
}

sg_status sg_report_spool_any_unsynced(sg_store *st, const char *boot, bool *any, char **err)
{
	sqlite3_stmt *s;
	int rc;

	*any = false;
	if (prepare(st, "SELECT 1 FROM report_spool WHERE unsynced = ? LIMIT 1", &s, err))
		return SG_EINTERNAL;
	bind_text(s, 1, boot);
	rc = sqlite3_step(s);
	*any = rc == SQLITE_ROW;
	sg_store_done(st, s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, rc, "reading the report spool");
	return SG_OK;
}

/* Status */

sg_status sg_store_poll_record(sg_store *st, gint64 when, bool ok, const char *error, char **err)
{
	sqlite3_stmt *s;
	sg_status ret;
	if (prepare(st, "INSERT INTO polls(time, ok, error) VALUES (?, ?, ?)", &s, err))
		return SG_EINTERNAL;
	sqlite3_bind_int64(s, 1, when);
	sqlite3_bind_int(s, 2, ok ? 1 : 0);
	bind_text(s, 3, ok ? NULL : error);
	if ((ret = step_done(st, s, "recording a poll", err)))
		return ret;
	return sg_store_exec(
	    st,
	    "DELETE FROM polls WHERE id <= (SELECT max(id) FROM polls) - " G_STRINGIFY(POLLS_KEPT),
	    err);
}

sg_status sg_store_status_get(sg_store *st, sg_store_status *out, char **err)
{
	sqlite3_stmt *s;
	int rc;
	gint64 n;
	sg_status ret;

	memset(out, 0, sizeof *out);
	out->by_outcome = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	if (prepare(st, "SELECT time, ok, error FROM polls ORDER BY id DESC LIMIT 1", &s, err))
		return SG_EINTERNAL;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out->last_poll = sqlite3_column_int64(s, 0);
		out->last_poll_outcome = g_strdup(sqlite3_column_int(s, 1) ? "ok" : "failed");
		out->last_poll_error = col_dup(s, 2);
	}
	sg_store_done(st, s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(st, err, rc, "reading polls");

	if (prepare(
		st,
		"SELECT outcome, count(*) FROM ledger WHERE outcome IS NOT NULL GROUP BY outcome",
		&s, err))
		return SG_EINTERNAL;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		g_hash_table_insert(out->by_outcome, col_dup(s, 0),
				    GINT_TO_POINTER(sqlite3_column_int(s, 1)));
	sg_store_done(st, s);
	if (rc != SQLITE_DONE)
		return db_fail(st, err, rc, "reading the ledger");
	out->deferred = GPOINTER_TO_INT(g_hash_table_lookup(out->by_outcome, "deferred"));
	if ((ret = query_int(st, "SELECT coalesce(sum(duplicates), 0) FROM ledger", &n, err)))
		return ret;
	if (n)
		g_hash_table_insert(out->by_outcome, g_strdup("duplicate"), GINT_TO_POINTER((int)n));

	/* Reports of messages and results reports of batch jobs. */
	if ((ret = query_int(st,
			     "SELECT (SELECT count(*) FROM ledger WHERE report_state = 'pending') +"
			     " (SELECT count(*) FROM batch_jobs WHERE report_state = 'pending')",
			     &n, err)))
		return ret;
	out->reports_pending = (long)n;
	if ((ret = query_int(st, "SELECT count(*) FROM deliveries", &n, err)))
		return ret;
	out->deliveries_unknown = (long)n;
	if ((ret = query_int(st, "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')",
			     &n, err)))
		return ret;
	out->jobs_pending = (long)n;
	return SG_OK;
}

void sg_store_status_clear(sg_store_status *s)
{
	if (!s)
		return;
	g_free(s->last_poll_outcome);
	g_free(s->last_poll_error);
	if (s->by_outcome)
		g_hash_table_unref(s->by_outcome);
	memset(s, 0, sizeof *s);
}
