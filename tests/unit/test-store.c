/* test-store.c: the state db: migrations, registry, keys, roles, marks, ledger, status. */
#include <glib/gstdio.h>
#include <string.h>

#include "store.h"
#include "tap.h"
#include "util.h"

static void test_roles(void)
{
	static const struct {
		const char *name;
		unsigned role;
	} names[] = {
	    {"remains_upload", SG_ROLE_REMAINS_UPLOAD},
	    {"batch_vin", SG_ROLE_BATCH_VIN},
	    {"batch_frame", SG_ROLE_BATCH_FRAME},
	    {"batch_price", SG_ROLE_BATCH_PRICE},
	    {"batch_rental", SG_ROLE_BATCH_RENTAL},
	    {"admin", 0},
	    {"", 0},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
		NUM(sg_role_from_name(names[i].name), names[i].role, "role name '%s'",
		    names[i].name);
	static const struct {
		const char *method;
		unsigned role;
	} methods[] = {
	    {"warehouses", SG_ROLE_REMAINS_UPLOAD},
	    {"remains", SG_ROLE_REMAINS_UPLOAD},
	    {"vin", SG_ROLE_BATCH_VIN},
	    {"frame", SG_ROLE_BATCH_FRAME},
	    {"price", SG_ROLE_BATCH_PRICE},
	    {"rental", SG_ROLE_BATCH_RENTAL},
	    {"other", 0},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(methods); i++)
		NUM(sg_role_for_method(methods[i].method), methods[i].role, "method '%s'",
		    methods[i].method);
	g_autofree char *s = sg_roles_to_string(SG_ROLE_REMAINS_UPLOAD | SG_ROLE_BATCH_PRICE);
	IS(s, "remains_upload,batch_price", "roles to string");
	g_autofree char *e = sg_roles_to_string(0);
	IS(e, "", "no roles");
}

static void test_dealers(sg_store *st)
{
	g_autofree char *err = NULL;
	sg_dealer *d = NULL;

	NUM(sg_dealer_add(st, "D1", "Dealer One", "secret-key-1", NULL), SG_OK, "dealer add");
	NUM(sg_dealer_add(st, "D1", "again", "k", NULL), SG_EDATA, "dealer add twice");
	static const char *bad_ids[] = {
	    "", "a b", "d/1", "ключ",
	    "x2345678901234567890123456789012345678901234567890123456789012345"};
	for (size_t i = 0; i < G_N_ELEMENTS(bad_ids); i++)
		NUM(sg_dealer_add(st, bad_ids[i], "n", "k", NULL), SG_EDATA, "bad id '%s'",
		    bad_ids[i]);
	NUM(sg_dealer_add(st, "A-2_.x", "Two", "k2", NULL), SG_OK, "id with - _ .");
	NUM(sg_dealer_get(st, "D1", &d, &err), SG_OK, "dealer get");
	IS(d->name, "Dealer One", "name");
	g_autofree char *h = sg_sha256_hex("secret-key-1", 12);
	IS(d->key_sha256, h, "only the key's SHA-256 is stored");
	OK(sg_dealer_key_matches(d, "secret-key-1"), "key matches");
	OK(!sg_dealer_key_matches(d, "secret-key-2"), "other key does not match");
	OK(!sg_dealer_key_matches(d, ""), "empty key does not match");
	OK(!d->dev_mode, "dev mode off");
	sg_dealer_free(d);

	NUM(sg_dealer_set_key(st, "D1", "new-key", NULL), SG_OK, "rotate key");
	NUM(sg_dealer_set_dev_mode(st, "D1", true, NULL), SG_OK, "dev mode on");
	NUM(sg_dealer_set_dev_mode(st, "nobody", true, NULL), SG_ENOINPUT, "dev mode: no dealer");
	sg_dealer_get(st, "D1", &d, NULL);
	OK(sg_dealer_key_matches(d, "new-key") && !sg_dealer_key_matches(d, "secret-key-1"),
	   "rotated key");
	OK(d->dev_mode, "dev mode on read back");
	sg_dealer_free(d);
	NUM(sg_dealer_get(st, "nobody", &d, NULL), SG_ENOINPUT, "get unknown dealer");

	GPtrArray *list = NULL;
	NUM(sg_dealer_list(st, &list, NULL), SG_OK, "list");
	NUM(list->len, 2, "two dealers");
	IS(((sg_dealer *)list->pdata[0])->id, "A-2_.x", "sorted by id");
	g_ptr_array_unref(list);

	/* No key, hashed or not, is anywhere in the db file's text columns. */
	sqlite3_stmt *s;
	sqlite3_prepare_v2(sg_store_db(st),
			   "SELECT count(*) FROM dealers WHERE key_sha256 LIKE '%key%'", -1, &s,
			   NULL);
	sqlite3_step(s);
	NUM(sqlite3_column_int(s, 0), 0, "no plain key stored");
	sqlite3_finalize(s);
}

static void test_users(sg_store *st)
{
	sg_user *u = NULL;
	GPtrArray *list = NULL;

	NUM(sg_user_add(st, "Ivan@Example.RU", "D1", SG_ROLE_REMAINS_UPLOAD, NULL), SG_OK,
	    "user add");
	NUM(sg_user_add(st, "x@example.ru", "nobody", 1, NULL), SG_ENOINPUT, "user: no dealer");
	NUM(sg_user_add(st, "not-an-address", "D1", 1, NULL), SG_EDATA, "user: bad email");
	NUM(sg_user_get(st, "ivan@example.ru", &u, NULL), SG_OK, "user get lower case");
	IS(u->email, "ivan@example.ru", "email lower-cased");
	NUM(u->roles, SG_ROLE_REMAINS_UPLOAD, "roles");
	sg_user_free(u);
	NUM(sg_user_add(st, "IVAN@example.ru", "A-2_.x", SG_ROLE_BATCH_VIN | SG_ROLE_BATCH_FRAME,
			NULL),
	    SG_OK, "user re-add updates");
	sg_user_get(st, "ivan@EXAMPLE.ru", &u, NULL);
	IS(u->dealer, "A-2_.x", "dealer updated");
	NUM(u->roles, SG_ROLE_BATCH_VIN | SG_ROLE_BATCH_FRAME, "roles updated");
	sg_user_free(u);
	sg_user_add(st, "b@example.ru", "D1", 1, NULL);
	sg_user_add(st, "a@example.ru", "D1", 1, NULL);
	NUM(sg_user_list(st, "D1", &list, NULL), SG_OK, "user list of a dealer");
	NUM(list->len, 2, "two users of D1");
	IS(((sg_user *)list->pdata[0])->email, "a@example.ru", "sorted by email");
	g_ptr_array_unref(list);
	sg_user_list(st, NULL, &list, NULL);
	NUM(list->len, 3, "three users in all");
	g_ptr_array_unref(list);
	NUM(sg_user_remove(st, "B@example.ru", NULL), SG_OK, "user remove");
	NUM(sg_user_remove(st, "b@example.ru", NULL), SG_ENOINPUT, "user remove twice");
	NUM(sg_user_get(st, "nobody@example.ru", &u, NULL), SG_ENOINPUT, "get unknown user");
}

static void add_article(void *ctx, const char *article)
{
	g_string_append_printf(ctx, "%s|", article);
}

static void add_remains(void *ctx, const char *w, const char *a, long long q)
{
	g_string_append_printf(ctx, "%s/%s=%lld|", w, a, q);
}

/* Rows for sg_remains_replace from "article=quantity" strings. */
typedef struct {
	const char *const *rows;
	char buf[64];
} row_list;

static bool next_row(void *vctx, const char **article, long long *qty)
{
	row_list *l = vctx;
	if (!*l->rows)
		return false;
	g_strlcpy(l->buf, *l->rows++, sizeof l->buf);
	char *eq = strrchr(l->buf, '=');
	*eq = '\0';
	*article = l->buf;
	*qty = g_ascii_strtoll(eq + 1, NULL, 10);
	return true;
}

static sg_status put_list(sg_store *st, const char *dealer, const char *code,
			  const char *const *rows)
{
	row_list l = {.rows = rows};
	return sg_remains_replace(st, dealer, code, next_row, &l, NULL);
}

/* Rows i = 0 … n - 1: article "A<i>", quantity i, written in that (not sorted) order. */
static bool next_many(void *vctx, const char **article, long long *qty)
{
	static char buf[32];
	int *i = vctx;
	if (i[0] >= i[1])
		return false;
	g_snprintf(buf, sizeof buf, "A%d", i[0]);
	*article = buf;
	*qty = i[0]++;
	return true;
}

static void test_remains_lists(sg_store *st)
{
	sg_remains_reader *r = NULL;
	const char *w, *a;
	long long q;
	g_autofree char *err = NULL;

	sg_store_exec(st, "INSERT INTO warehouses VALUES ('D1','W5','addr 5','')", NULL);
	/* 20000 rows are several chunks; they come back in the order written. */
	int i[2] = {0, 20000};
	NUM(sg_remains_replace(st, "D1", "W5", next_many, i, NULL), SG_OK, "20000 rows stored");
	sqlite3_stmt *c;
	sqlite3_prepare_v2(sg_store_db(st), "SELECT count(*), max(length(lines)) FROM remains"
			   " WHERE warehouse = 'W5'", -1, &c, NULL);
	sqlite3_step(c);
	OK(sqlite3_column_int(c, 0) > 1, "in %d chunks", sqlite3_column_int(c, 0));
	OK(sqlite3_column_int(c, 1) <= 65536, "none over 64 KiB");
	sqlite3_finalize(c);
	NUM(sg_remains_open(st, "D1", "W5", &r, NULL), SG_OK, "reader");
	long n = 0;
	bool in_order = true;
	for (int pass = 0; pass < 2; pass++) {
		n = 0;
		while (sg_remains_next(r, &w, &a, &q)) {
			char want[32];
			g_snprintf(want, sizeof want, "A%ld", n);
			in_order &= strcmp(a, want) == 0 && q == n && strcmp(w, "W5") == 0;
			n++;
		}
		sg_remains_rewind(r);
	}
	NUM(n, 20000, "every row read, twice (rewind)");
	OK(in_order, "in the order written");
	NUM(sg_remains_error(r, NULL), SG_OK, "no error");
	sg_remains_close(r);

	/* Replacing a list leaves no chunk of the old one. */
	NUM(put_list(st, "D1", "W5", (const char *const[]){"z=1", NULL}), SG_OK, "replaced");
	g_autoptr(GString) s = g_string_new(NULL);
	sg_remains_each(st, "D1", "W5", add_remains, s, NULL);
	IS(s->str, "W5/z=1|", "replaced whole");

	/* What could not be read back is refused, and the list is left as it was. */
	static const char *const unstorable[][3] = {
	    {"=1", NULL}, {"a\tb=1", NULL}, {"a\nb=1", NULL}, {"ok=1", "a=-1", NULL}};
	for (size_t k = 0; k < G_N_ELEMENTS(unstorable); k++) {
		sg_store_savepoint(st, "bad", NULL);
		NUM(put_list(st, "D1", "W5", unstorable[k]), SG_EINTERNAL, "unstorable row %zu refused",
		    k);
		sg_store_rollback_to(st, "bad");
	}
	g_string_truncate(s, 0);
	sg_remains_each(st, "D1", "W5", add_remains, s, NULL);
	IS(s->str, "W5/z=1|", "the list is as it was");

	/* A damaged list is an I/O error that names the warehouse, never a short list. */
	static const char *const damaged[] = {"a\t1", "a1\n", "\t1\n", "a\tx\n", "a\t1\nb\t-2\n"};
	for (size_t k = 0; k < G_N_ELEMENTS(damaged); k++) {
		sqlite3_stmt *u;
		sqlite3_prepare_v2(sg_store_db(st), "UPDATE remains SET lines = ?1 WHERE warehouse = 'W5'",
				   -1, &u, NULL);
		sqlite3_bind_blob(u, 1, damaged[k], (int)strlen(damaged[k]), SQLITE_STATIC);
		sqlite3_step(u);
		sqlite3_finalize(u);
		g_string_truncate(s, 0);
		g_clear_pointer(&err, g_free);
		NUM(sg_remains_each(st, "D1", "W5", add_remains, s, &err), SG_EIO, "damaged %zu: SG_EIO",
		    k);
		OK(err && strstr(err, "W5") && strstr(err, "damaged"), "damaged %zu: says so: %s", k,
		   err ? err : "");
		IS(s->str, "", "damaged %zu: nothing exported", k);
	}
	sg_store_exec(st, "DELETE FROM warehouses WHERE code = 'W5'", NULL);
}

static void test_catalog_and_stock(sg_store *st)
{
	long n = -1;
	g_autoptr(GString) s = g_string_new(NULL);

	sg_catalog_add(st, "b", NULL);
	sg_catalog_add(st, "Я", NULL);
	sg_catalog_add(st, "A", NULL);
	sg_catalog_add(st, "a", NULL);
	sg_catalog_add(st, "a", NULL);
	NUM(sg_catalog_count(st, &n, NULL), SG_OK, "catalog count");
	NUM(n, 4, "four articles");
	sg_catalog_each(st, add_article, s, NULL);
	IS(s->str, "A|a|b|Я|", "catalogue in UTF-8 byte order");
	sg_catalog_clear(st, NULL);
	sg_catalog_count(st, &n, NULL);
	NUM(n, 0, "catalog cleared");

	/* Stock tables are written by stock.c; here only the cascades and exports. */
	sg_store_exec(
	    st, "INSERT INTO warehouses VALUES ('D1','W2','addr 2',''),('D1','W1','addr 1','c')",
	    NULL);
	put_list(st, "D1", "W1", (const char *const[]){"b=2", "a=1", NULL});
	put_list(st, "D1", "W2", (const char *const[]){"z=0", NULL});
	GPtrArray *ws = NULL;
	sg_warehouse_list(st, "D1", &ws, NULL);
	NUM(ws->len, 2, "two warehouses");
	IS(((sg_warehouse *)ws->pdata[0])->code, "W1", "warehouses sorted");
	IS(((sg_warehouse *)ws->pdata[0])->contacts, "c", "contacts");
	g_ptr_array_unref(ws);
	g_string_truncate(s, 0);
	sg_remains_each(st, "D1", NULL, add_remains, s, NULL);
	IS(s->str, "W1/a=1|W1/b=2|W2/z=0|", "remains sorted by warehouse, article");
	g_string_truncate(s, 0);
	sg_remains_each(st, "D1", "W2", add_remains, s, NULL);
	IS(s->str, "W2/z=0|", "remains of one warehouse");
	NUM(put_list(st, "D1", "W9", (const char *const[]){"x=1", NULL}), SG_EDATA,
	    "remains need their warehouse (foreign key)");
	sg_store_exec(st, "DELETE FROM warehouses WHERE code = 'W1'", NULL);
	g_string_truncate(s, 0);
	sg_remains_each(st, "D1", NULL, add_remains, s, NULL);
	IS(s->str, "W2/z=0|", "deleting a warehouse deletes its remains");
}

static void test_marks(sg_store *st)
{
	gint64 t = -1;
	NUM(sg_mark_get(st, "D1", "remains", "W2", &t, NULL), SG_OK, "mark get");
	NUM(t, 0, "no mark yet");
	sg_mark_set(st, "D1", "remains", "W2", 200, NULL);
	sg_mark_set(st, "D1", "remains", "W2", 100, NULL);
	sg_mark_get(st, "D1", "remains", "W2", &t, NULL);
	NUM(t, 200, "the latest mark is kept");
	sg_mark_set(st, "D1", "warehouses", NULL, 50, NULL);
	sg_mark_get(st, "D1", "warehouses", "", &t, NULL);
	NUM(t, 50, "warehouses mark under \"\"");
}

static void test_ledger(sg_store *st)
{
	sg_ledger l = {
	    .sha256 = (char *)"aaaa",
	    .source = (char *)"imap:INBOX/42",
	    .mailbox = (char *)"INBOX",
	    .uidvalidity = 7,
	    .uid = 42,
	    .message_id = (char *)"m1@example.ru",
	    .outcome = (char *)"deferred",
	    .report_state = (char *)"none",
	    .attempts = 1,
	    .first_seen = 1000,
	    .updated = 1000,
	};
	sg_ledger *g = NULL;

	NUM(sg_ledger_put(st, &l, NULL), SG_OK, "ledger put");
	l.outcome = (char *)"applied";
	l.result_json = (char *)"{}";
	l.report_state = (char *)"pending";
	l.report_path = (char *)"/spool/r.eml";
	l.attempts = 2;
	l.first_seen = 2000;
	l.updated = 2000;
	NUM(sg_ledger_put(st, &l, NULL), SG_OK, "ledger update");
	NUM(sg_ledger_get(st, "aaaa", &g, NULL), SG_OK, "ledger get by sha");
	IS(g->outcome, "applied", "outcome updated");
	NUM(g->first_seen, 1000, "first_seen kept");
	NUM(g->updated, 2000, "updated");
	NUM(g->attempts, 2, "attempts");
	IS(g->report_path, "/spool/r.eml", "report path");
	sg_ledger_free(g);
	NUM(sg_ledger_get_uid(st, "INBOX", 7, 42, &g, NULL), SG_OK, "ledger get by uid");
	IS(g->sha256, "aaaa", "same message");
	sg_ledger_free(g);
	NUM(sg_ledger_get_uid(st, "INBOX", 8, 42, &g, NULL), SG_ENOINPUT, "other uidvalidity");
	NUM(sg_ledger_get(st, "bbbb", &g, NULL), SG_ENOINPUT, "unknown sha");

	sg_ledger f = {.sha256 = (char *)"bbbb",
		       .source = (char *)"file:x.eml",
		       .outcome = (char *)"deferred"};
	sg_ledger_put(st, &f, NULL);
	sg_ledger_get(st, "bbbb", &g, NULL);
	OK(g->mailbox == NULL && g->uid == 0, "a file message has no mailbox");
	IS(g->report_state, "none", "report state defaults to none");
	sg_ledger_free(g);

	GPtrArray *p = NULL;
	NUM(sg_ledger_pending_reports(st, &p, NULL), SG_OK, "pending reports");
	NUM(p->len, 1, "one pending report");
	g_ptr_array_unref(p);
}

static void test_status(sg_store *st)
{
	sg_store_status s;
	NUM(sg_store_status_get(st, &s, NULL), SG_OK, "status");
	NUM(s.last_poll, 0, "never polled");
	NUM(GPOINTER_TO_INT(g_hash_table_lookup(s.by_outcome, "applied")), 1, "one applied");
	NUM(s.deferred, 1, "one deferred");
	NUM(s.reports_pending, 1, "one report pending");
	NUM(s.jobs_pending, 0, "no jobs");
	sg_store_status_clear(&s);

	sg_store_poll_record(st, 100, true, NULL, NULL);
	sg_store_poll_record(st, 200, false, "connection refused", NULL);
	sg_store_exec(st,
		      "INSERT INTO jobs(kind, input_sha256, created, state) VALUES"
		      " ('vin','x',1,'pending'),('vin','y',1,'done')",
		      NULL);
	sg_store_status_get(st, &s, NULL);
	NUM(s.last_poll, 200, "last poll");
	IS(s.last_poll_outcome, "failed", "last poll failed");
	IS(s.last_poll_error, "connection refused", "last poll error");
	NUM(s.jobs_pending, 1, "one job pending");
	sg_store_status_clear(&s);
	for (int i = 0; i < 600; i++)
		sg_store_poll_record(st, 300 + i, true, NULL, NULL);
	gint64 n = 0;
	sqlite3_stmt *q;
	sqlite3_prepare_v2(sg_store_db(st), "SELECT count(*) FROM polls", -1, &q, NULL);
	sqlite3_step(q);
	n = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	NUM(n, 500, "the last 500 polls are kept");
}

static void test_savepoints(sg_store *st)
{
	GPtrArray *list = NULL;
	NUM(sg_store_begin(st, NULL), SG_OK, "begin");
	sg_store_savepoint(st, "sp", NULL);
	sg_dealer_add(st, "TMP", "t", "k", NULL);
	sg_store_rollback_to(st, "sp");
	NUM(sg_store_release(st, "sp", NULL) != SG_OK, 1, "rollback_to ends the savepoint");
	sg_store_savepoint(st, "sp2", NULL);
	sg_dealer_add(st, "TMP2", "t", "k", NULL);
	NUM(sg_store_release(st, "sp2", NULL), SG_OK, "release");
	NUM(sg_store_commit(st, NULL), SG_OK, "commit");
	sg_dealer_list(st, &list, NULL);
	NUM(list->len, 3, "rolled back one, kept one");
	g_ptr_array_unref(list);
	sg_store_begin(st, NULL);
	sg_dealer_remove(st, "TMP2", NULL);
	sg_store_rollback(st);
	sg_dealer_list(st, &list, NULL);
	NUM(list->len, 3, "rollback");
	g_ptr_array_unref(list);
	NUM(sg_dealer_remove(st, "TMP2", NULL), SG_OK, "remove dealer");
	NUM(sg_dealer_remove(st, "TMP2", NULL), SG_ENOINPUT, "remove unknown dealer");
}

/* Statements are kept a connection: one user at a time, given back reset and unbound. */
static void test_kept_statements(sg_store *st)
{
	static const char sql[] = "SELECT ?1 + 1";
	sqlite3_stmt *a = NULL, *b = NULL, *c = NULL;

	NUM(sg_store_prepare(st, sql, &a, NULL), SG_OK, "prepare a statement");
	sqlite3_bind_int(a, 1, 41);
	NUM(sqlite3_step(a), SQLITE_ROW, "it runs");
	NUM(sqlite3_column_int(a, 0), 42, "with its binding");
	NUM(sg_store_prepare(st, sql, &b, NULL), SG_OK, "the same SQL while the first is in use");
	OK(b != a, "is a statement of its own");
	sqlite3_bind_int(b, 1, 1);
	NUM(sqlite3_step(b), SQLITE_ROW, "which runs beside the first");
	NUM(sqlite3_column_int(b, 0), 2, "with its own binding");
	NUM(sqlite3_column_int(a, 0), 42, "leaving the first one's row alone");
	sg_store_done(st, b);
	sg_store_done(st, a);
	NUM(sg_store_prepare(st, sql, &c, NULL), SG_OK, "prepared again");
	OK(c == a, "the kept statement is lent again");
	NUM(sqlite3_step(c), SQLITE_ROW, "from its start");
	NUM(sqlite3_column_type(c, 0), SQLITE_NULL, "without the last user's binding");
	sg_store_done(st, c);
	NUM(sg_store_prepare(st, "SELECT nonsense FROM nowhere", &a, NULL), SG_EINTERNAL,
	    "a statement that does not prepare fails");

	/* A pragma acts when prepared: it is never kept, so it acts every time it is run. */
	static const char *const levels[] = {"NORMAL", "FULL", "NORMAL", "FULL"};
	for (size_t i = 0; i < G_N_ELEMENTS(levels); i++) {
		g_autofree char *set = g_strdup_printf("PRAGMA synchronous = %s", levels[i]);
		gint64 v = -1;
		sqlite3_stmt *q = NULL;

		NUM(sg_store_exec(st, set, NULL), SG_OK, "%s", set);
		/* read with a statement of its own: a kept one would say what it said when made */
		sqlite3_prepare_v2(sg_store_db(st), "PRAGMA synchronous", -1, &q, NULL);
		if (q && sqlite3_step(q) == SQLITE_ROW)
			v = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		NUM(v, strcmp(levels[i], "FULL") == 0 ? 2 : 1, "%s acts (time %zu)", set, i + 1);
	}
}

static void test_cascade(sg_store *st)
{
	sg_user *u = NULL;
	g_autoptr(GString) s = g_string_new(NULL);
	NUM(sg_dealer_remove(st, "D1", NULL), SG_OK, "remove dealer with everything");
	NUM(sg_user_get(st, "a@example.ru", &u, NULL), SG_ENOINPUT, "its users are gone");
	sg_remains_each(st, "D1", NULL, add_remains, s, NULL);
	IS(s->str, "", "its remains are gone");
	gint64 t = -1;
	sg_mark_get(st, "D1", "remains", "W2", &t, NULL);
	NUM(t, 0, "its marks are gone");
}

int main(void)
{
	g_autofree char *dir = g_dir_make_tmp("test-store-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "state.db", NULL);
	g_autofree char *err = NULL;
	sg_store *st = NULL;

	g_setenv("SG_NOW", "1700000000", TRUE);
	test_roles();
	NUM(sg_store_open(path, &st, &err), SG_OK, "open new db %s", err ? err : "");
	sqlite3_stmt *q;
	sqlite3_prepare_v2(sg_store_db(st), "PRAGMA user_version", -1, &q, NULL);
	sqlite3_step(q);
	OK(sqlite3_column_int(q, 0) >= 4, "schema version 4 or later (%d)", sqlite3_column_int(q, 0));
	sqlite3_finalize(q);
	sqlite3_prepare_v2(sg_store_db(st), "SELECT reserved FROM journal", -1, &q, NULL);
	NUM(q != NULL, 1, "the journal keeps what a charged call reserved against its budget");
	sqlite3_finalize(q);
	/* batch-vin.c's find_row looks a delivery up by its digest first, for every delivery: by
	 * the index, not by reading the whole journal. */
	sqlite3_prepare_v2(sg_store_db(st),
			   "EXPLAIN QUERY PLAN SELECT row FROM journal WHERE kind = 'vin' AND "
			   "CASE WHEN json_valid(answer) THEN json_extract(answer, '$.delivery') END "
			   "= 'x'", -1, &q, NULL);
	{
		GString *plan = g_string_new(NULL);
		while (q && sqlite3_step(q) == SQLITE_ROW)
			g_string_append_printf(plan, "%s; ", (const char *)sqlite3_column_text(q, 3));
		OK(strstr(plan->str, "journal_vin_delivery") != NULL,
		   "a delivery's digest is looked up by index (%s)", plan->str);
		g_string_free(plan, TRUE);
	}
	sqlite3_finalize(q);
	sqlite3_prepare_v2(sg_store_db(st), "PRAGMA journal_mode", -1, &q, NULL);
	sqlite3_step(q);
	IS((const char *)sqlite3_column_text(q, 0), "wal", "WAL journal");
	sqlite3_finalize(q);

	test_dealers(st);
	test_users(st);
	test_catalog_and_stock(st);
	test_remains_lists(st);
	test_marks(st);
	test_ledger(st);
	test_status(st);
	test_savepoints(st);
	test_kept_statements(st);
	sg_store_close(st);

	st = NULL;
	NUM(sg_store_open(path, &st, &err), SG_OK, "reopen (migrations idempotent)");
	sg_dealer *d = NULL;
	NUM(sg_dealer_get(st, "D1", &d, NULL), SG_OK, "data survives reopen");
	sg_dealer_free(d);
	test_cascade(st);
	sg_store_close(st);

	sg_store *scratch = NULL;
	NUM(sg_store_open("", &scratch, &err), SG_OK, "scratch db");
	GPtrArray *list = NULL;
	sg_dealer_list(scratch, &list, NULL);
	NUM(list->len, 0, "scratch db is empty");
	g_ptr_array_unref(list);
	sg_store_close(scratch);

	/* A db from a newer stockgate is refused rather than misread. */
	sqlite3 *raw;
	sqlite3_open(path, &raw);
	sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL);
	sqlite3_close(raw);
	g_clear_pointer(&err, g_free);
	NUM(sg_store_open(path, &st, &err), SG_ECONFIG, "newer schema refused");
	OK(err && strstr(err, "newer"), "says why: %s", err ? err : "");
	g_autofree char *rm = g_strdup_printf("rm -rf '%s'", dir);
	if (system(rm) != 0)
		printf("# could not remove %s\n", dir);
	return tap_done();
}
