/* batch.c: the batch engine (SPEC 9): list in, journal, concurrent calls with retries, list out. */
#include "batch.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csvin.h"
#include "log.h"
#include "util.h"

/* An answer larger than this is not a vendor answer: the call fails. */
#define BATCH_MAX_ANSWER (1 << 20)
/* The longest Retry-After obeyed; a longer one is taken as this. */
#define BATCH_MAX_RETRY_AFTER 600.0

const char *sg_row_status_name(sg_row_status s)
{
	switch (s) {
	case SG_ROW_OK: return "ok";
	case SG_ROW_INVALID: return "invalid";
	case SG_ROW_FAILED: return "failed";
	case SG_ROW_UNKNOWN: return "unknown";
	case SG_ROW_PENDING: return "pending";
	}
	return "pending";
}

const sg_batch_kind *sg_batch_kind_find(const char *name)
{
	static const sg_batch_kind *const kinds[] = { &sg_batch_vin, &sg_batch_frame,
						      &sg_batch_price, &sg_batch_rental };

	for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++)
		if (strcmp(kinds[i]->name, name) == 0)
			return kinds[i];
	return NULL;
}

void sg_batch_opts_init(sg_batch_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->concurrency = 4;
	o->max_wait = 30 * 60;
	o->poll_interval = 10;
	o->timeout = 30;
	o->connect_timeout = 10;
	o->max_attempts = 6;
	o->backoff_base = 0.5;
	o->backoff_cap = 30;
}

/* ---- small helpers ---------------------------------------------------------------------- */

char *sg_batch_latin_upper(const char *s)
{
	/* Cyrillic letters that look like Latin ones, as typed on a Russian keyboard. */
	static const struct { gunichar cyr; char lat; } map[] = {
		{ 0x0410, 'A' }, { 0x0412, 'B' }, { 0x0415, 'E' }, { 0x041A, 'K' }, { 0x041C, 'M' },
		{ 0x041D, 'H' }, { 0x041E, 'O' }, { 0x0420, 'P' }, { 0x0421, 'C' }, { 0x0422, 'T' },
		{ 0x0425, 'X' }, { 0x0423, 'Y' }, { 0x0430, 'A' }, { 0x0432, 'B' }, { 0x0435, 'E' },
		{ 0x043A, 'K' }, { 0x043C, 'M' }, { 0x043D, 'H' }, { 0x043E, 'O' }, { 0x0440, 'P' },
		{ 0x0441, 'C' }, { 0x0442, 'T' }, { 0x0445, 'X' }, { 0x0443, 'Y' },
	};
	GString *out = g_string_new(NULL);

	if (!g_utf8_validate(s, -1, NULL))
		return g_string_free(out, FALSE);
	for (const char *p = s; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		size_t i;

		if (c == ' ' || c == '\t' || c == 0xA0 || c == 0x202F || c == 0x2007 || c == 0xFEFF)
			continue;
		for (i = 0; i < G_N_ELEMENTS(map); i++)
			if (map[i].cyr == c)
				break;
		if (i < G_N_ELEMENTS(map))
			g_string_append_c(out, map[i].lat);
		else if (c < 0x80)
			g_string_append_c(out, g_ascii_toupper((char)c));
		else
			g_string_append_unichar(out, g_unichar_toupper(c));
	}
	return g_string_free(out, FALSE);
}

double sg_batch_retry_after(const char *value, gint64 now)
{
	char *end;
	double v;

	if (value == NULL)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (g_ascii_isdigit(*value)) {
		errno = 0;
		v = g_ascii_strtod(value, &end);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (errno || *end || v < 0 || !isfinite(v))
			return -1;
		return v;
	}
	/* An HTTP-date (RFC 9110 5.6.7), in any of the three forms curl knows. */
	time_t t = curl_getdate(value, NULL);
	if (t == (time_t)-1)
		return -1;
	return t > now ? (double)(t - now) : 0;
}

double sg_batch_backoff(int attempt, double base, double cap, double rnd01)
{
	double ceil_ = base;

	if (attempt < 1)
		attempt = 1;
	for (int i = 1; i < attempt && ceil_ < cap; i++)
		ceil_ *= 2;
	if (ceil_ > cap)
		ceil_ = cap;
	if (rnd01 < 0)
		rnd01 = 0;
	if (rnd01 >= 1)
		rnd01 = 0.999999;
	return ceil_ * rnd01;
}

double sg_batch_parse_seconds(const char *s)
{
	char *end;
	double v, mul = 1;

	if (s == NULL || !(g_ascii_isdigit(*s) || *s == '.'))
		return -1;
	errno = 0;
	v = g_ascii_strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -1;
	if (strcmp(end, "ms") == 0)
		mul = 0.001;
	else if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
		mul = 1;
	else if (strcmp(end, "m") == 0)
		mul = 60;
	else if (strcmp(end, "h") == 0)
		mul = 3600;
	else if (strcmp(end, "d") == 0)
		mul = 86400;
	else
		return -1;
	return v * mul;
}

char *sg_batch_redact_url(const char *url)
{
	const char *q = strpbrk(url, "?#");

	return q ? g_strndup(url, (gsize)(q - url)) : g_strdup(url);
}

char *sg_batch_json_str(const char *s)
{
	cJSON *j = cJSON_CreateString(s ? s : "");
	char *txt = cJSON_PrintUnformatted(j);
	char *out = g_strdup(txt);

	cJSON_free(txt);
	cJSON_Delete(j);
	return out;
}

void *sg_batch_easy_new(const sg_batch_conn *conn, double timeout, double connect_timeout)
{
	CURL *e = curl_easy_init();

	if (e == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, conn->tls->off ? "http,https" : "https");
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (conn->tls->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, conn->tls->ca_file);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_timeout * 1000));
	curl_easy_setopt(e, CURLOPT_USERAGENT, "stockgate/" SG_VERSION);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	return e;
}

/* Checks the endpoint's scheme against the section's tls setting. */
static sg_status conn_check(const sg_batch_conn *c, char **err)
{
	if (g_ascii_strncasecmp(c->url, "https://", 8) == 0)
		return SG_OK;
	if (g_ascii_strncasecmp(c->url, "http://", 7) == 0) {
		if (c->tls->off) {
			log_debug("[%s] url: plaintext http:// (tls = off)", c->section);
			return SG_OK;
		}
		return sg_fail(err, SG_ECONFIG,
			       "[%s] url: http:// is plaintext: use https://, or tls = off for a "
			       "loopback test", c->section);
	}
	return sg_fail(err, SG_ECONFIG, "[%s] url: not an https:// URL", c->section);
}

/* A transport error that trying again will not mend: TLS or the URL. */
static bool permanent_error(CURLcode rc)
{
	return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
	       rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT;
}

static double mono_now(void)
{
	return (double)g_get_monotonic_time() / 1e6;
}

/* ---- the job ---------------------------------------------------------------------------- */

typedef struct job job;

typedef struct brow {
	sg_batch_row pub;
	long index;         /* in job->rows */
	char **cells;       /* input cells as read, NULL-terminated (g_strfreev) */
	size_t ncells;
	char *invalid;      /* reason the row is invalid, or NULL */
	long leader;        /* index of the earlier identical row, or -1 */
	bool active;        /* a transfer is under way */
	bool gone;          /* no more calls in this run */
	bool charged_now;   /* the current call is charged and was journalled "sent" for it */
	bool claiming;      /* its "sent" is being journalled now: a claim on the row */
	bool claim_lost;    /* another process journalled the row first: this one must not call */
	char *known;        /* the state this run last read from or wrote to the journal (NULL:
	                     * no row): a write applies only while the journal still holds it */
	double due;         /* monotonic time of the next call when waiting */
	int attempts;       /* tries of the current call */
	int polls;          /* WAIT steps so far */
	char *prev_state, *prev_answer; /* journal before the current charged call */
	gint64 reserved, prev_reserved; /* the journal's reserved cost (hundredths), and before */
	bool over_budget;   /* the current charged call would pass opts->max_cost: not made */
	sg_batch_call call;
	GByteArray *body;
	bool too_big; /* the answer passed BATCH_MAX_ANSWER: cut, not the service's */
	CURL *easy;
	struct curl_slist *headers;
	char *retry_after;
	bool dirty; /* journal needs writing */
	bool written; /* journal_flush wrote it in the transaction it is committing */
	/* A kind's sequence (rental's ra): the neighbours of the row in file order, and whether
	 * it waits for the one before it to end ok. */
	struct brow *seq_prev, *seq_next;
	bool held;
	char *note; /* why a held row was not sent */
} brow;

struct job {
	const sg_batch_kind *kind;
	const sg_batch_opts *o;
	sg_batch_conn conn;
	sqlite3 *db;
	char *sha;
	char *input_name;
	GPtrArray *rows; /* brow * */
	long header_line;
	sg_csv_info info;
	size_t *colmap; /* kind column → input cell index, or (size_t)-1 */

	GQueue ready;     /* brow *, to call now */
	GPtrArray *waits; /* brow *, to call at their due time */
	/* The session's renewal (kind->renew): a call of its own in the loop, not a row of the
	 * list; the rows refused for the stale session wait for it in renew_wait. */
	struct brow *renewal;
	GPtrArray *renew_wait;
	bool renewing;     /* the renewal is under way (in flight, or waiting for renew_due) */
	double renew_due;  /* monotonic time of its next try, 0 when none waits */
	CURLM *multi;
	int active;
	double started, rate_next, pause_until, deadline;
	bool stopping;
	char *stop_reason;
	sg_batch_summary *sum;
	long finished, total_work;
	double last_progress;
	bool progress_shown;
	sg_status io_status;
	char *io_err;
};

static volatile sig_atomic_t batch_interrupted;

static void on_signal(int sig)
{
	batch_interrupted = sig;
}

static void brow_free(gpointer p)
{
	brow *r = p;

	if (r->pub.vals)
		g_strfreev(r->pub.vals);
	g_free(r->pub.state);
	g_free(r->pub.answer);
	g_free(r->pub.error);
	g_strfreev(r->cells);
	g_free(r->invalid);
	g_free(r->note);
	g_free(r->prev_state);
	g_free(r->prev_answer);
	g_free(r->known);
	g_free(r->call.url);
	g_free(r->call.body);
	g_free(r->call.header);
	if (r->body)
		g_byte_array_unref(r->body);
	g_free(r->retry_after);
	g_free(r);
}

/* ---- reading the list ------------------------------------------------------------------- */

static bool header_matches(const sg_batch_column *c, const char *key)
{
	g_autofree char *k = sg_csv_header_key(c->name);

	if (strcmp(k, key) == 0)
		return true;
	for (const char *const *a = c->aliases; a && *a; a++) {
		g_autofree char *ak = sg_csv_header_key(*a);
		if (strcmp(ak, key) == 0)
			return true;
	}
	return false;
}

/* Maps the kind's columns to cells; true when every required column is there. */
static bool map_columns(const sg_batch_kind *k, char **cells, size_t n, size_t *map)
{
	for (size_t c = 0; c < k->ncolumns; c++)
		map[c] = (size_t)-1;
	for (size_t i = 0; i < n; i++) {
		g_autofree char *key = sg_csv_header_key(cells[i]);
		for (size_t c = 0; c < k->ncolumns; c++)
			if (map[c] == (size_t)-1 && header_matches(&k->columns[c], key)) {
				map[c] = i;
				break;
			}
	}
	bool any = false;

	for (size_t c = 0; c < k->ncolumns; c++) {
		if (k->columns[c].required && map[c] == (size_t)-1)
			return false;
		any |= map[c] != (size_t)-1;
	}
	/* A kind of optional columns only (price) still needs one of them to know its header. */
	return any;
}

static bool on_header(void *ctx, char **cells, size_t n)
{
	job *j = ctx;
	g_autofree size_t *map = g_new(size_t, j->kind->ncolumns);

	return map_columns(j->kind, cells, n, map);
}

static int on_row(void *ctx, long line, char **cells, size_t n)
{
	job *j = ctx;
	brow *r;

	if (j->o->max_rows > 0 && (long)j->rows->len >= j->o->max_rows)
		return 1;
	r = g_new0(brow, 1);
	r->pub.line = line;
	r->index = j->rows->len;
	r->leader = -1;
	r->ncells = n;
	r->cells = g_new0(char *, n + 1);
	for (size_t i = 0; i < n; i++)
		r->cells[i] = g_strdup(cells[i]);
	g_ptr_array_add(j->rows, r);
	return 0;
}

static char *required_names(const sg_batch_kind *k)
{
	GString *s = g_string_new(NULL);

	for (size_t c = 0; c < k->ncolumns; c++)
		if (k->columns[c].required)
			g_string_append_printf(s, "%s%s", s->len ? ", " : "", k->columns[c].name);
	return g_string_free(s, FALSE);
}

static sg_status read_list(job *j, char **err)
{
	sg_csv_opts co = { .charset_label = j->o->charset_label, .header = on_header,
			   .row = on_row, .ctx = j };
	sg_status st;
	g_autofree char *req = required_names(j->kind);

	st = sg_csv_read(j->o->input, &co, &j->info, err);
	if (st == SG_EDATA)
		j->sum->reason = j->info.reason ? j->info.reason : "malformed_csv";
	if (st == SG_EDATA && j->info.reason && strcmp(j->info.reason, "bad_header") == 0)
		return sg_fail(err, SG_EDATA,
			       "%s: no header row with the columns %s (first row: %s)",
			       j->input_name, req, j->info.detail ? j->info.detail : "empty");
	if (st != SG_OK)
		return sg_fail(err, st, "%s: %s%s%s", j->input_name,
			       j->info.reason ? j->info.reason : "cannot be read",
			       j->info.detail ? ": " : "", j->info.detail ? j->info.detail : "");
	if (j->info.stopped) {
		j->sum->reason = "too_many_rows";
		return sg_fail(err, SG_EDATA, "%s: more than %ld rows ([limits] max_rows)",
			       j->input_name, j->o->max_rows);
	}
	j->colmap = g_new(size_t, j->kind->ncolumns);
	if (!map_columns(j->kind, j->info.header, j->info.header_n, j->colmap)) {
		j->sum->reason = "bad_header";
		return sg_fail(err, SG_EDATA, "%s: no header row with the columns %s",
			       j->input_name, req);
	}
	j->sum->encoding = j->info.encoding;
	j->sum->delimiter = j->info.delimiter;
	return SG_OK;
}

/* Validates every row and finds duplicates (rows asking the same as an earlier row). */
static void validate_rows(job *j)
{
	const sg_batch_kind *k = j->kind;
	g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

	for (guint i = 0; i < j->rows->len; i++) {
		brow *r = j->rows->pdata[i];
		const char *warning = NULL;

		r->pub.vals = g_new0(char *, k->ncolumns + 1);
		for (size_t c = 0; c < k->ncolumns; c++) {
			size_t ci = j->colmap[c];
			const char *v = ci != (size_t)-1 && ci < r->ncells ? r->cells[ci] : "";

			r->pub.vals[c] = g_strdup(v);
			if (j->o->max_field_length > 0 && r->invalid == NULL &&
			    sg_csv_cell_chars(v) > (size_t)j->o->max_field_length)
				r->invalid = g_strdup_printf(
					"%s: longer than %d characters ([limits] max_field_length)",
					k->columns[c].name, j->o->max_field_length);
		}
		if (r->invalid == NULL)
			r->invalid = k->validate(r->pub.vals, &warning);
		if (r->invalid) {
			log_info("%s:%ld: %s", j->input_name, r->pub.line, r->invalid);
			continue;
		}
		if (warning) {
			j->sum->warnings++;
			log_debug("%s:%ld: %s", j->input_name, r->pub.line, warning);
		}
		if (k->sequence)
			/* A row of a sequence is a command in its place (a second identical update
			 * after another one changes the contract again): never merged. */
			continue;
		g_autofree char *key = g_strjoinv("\x1f", r->pub.vals);
		gpointer leader;
		if (g_hash_table_lookup_extended(seen, key, NULL, &leader)) {
			r->leader = GPOINTER_TO_INT(leader);
			j->sum->duplicates++;
		} else {
			g_hash_table_insert(seen, g_steal_pointer(&key), GINT_TO_POINTER(i));
		}
	}
}

/* ---- the journal -------------------------------------------------------------------------- */

static sg_status db_exec(sqlite3 *db, const char *sql, char **err)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		sg_fail(err, SG_EIO, "journal: %s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return SG_EIO;
	}
	return SG_OK;
}

static sg_status journal_init(job *j, char **err)
{
	/* store.c creates the table; this keeps the engine usable on a bare connection (tests). */
	sg_status st = db_exec(j->db,
			       "CREATE TABLE IF NOT EXISTS journal (kind TEXT NOT NULL, "
			       "input_sha256 TEXT NOT NULL, row INTEGER NOT NULL, state TEXT, "
			       "sent_at INTEGER, answer TEXT, reserved INTEGER NOT NULL DEFAULT 0, "
			       "PRIMARY KEY (kind, input_sha256, row))",
			       err);
	if (st != SG_OK)
		return st;
	/* A commit must reach the disk before a charged call goes out (P12). */
	return db_exec(j->db, "PRAGMA synchronous = FULL", err);
}

static sg_status journal_load(job *j, char **err)
{
	sqlite3_stmt *s = NULL;
	g_autoptr(GHashTable) byline = g_hash_table_new(g_direct_hash, g_direct_equal);

	for (guint i = 0; i < j->rows->len; i++) {
		brow *r = j->rows->pdata[i];
		g_hash_table_insert(byline, GINT_TO_POINTER((gint)r->pub.line), r);
	}
	if (sqlite3_prepare_v2(j->db,
			       "SELECT row, state, answer, reserved FROM journal WHERE kind = ? AND "
			       "input_sha256 = ?", -1, &s, NULL) != SQLITE_OK)
		return sg_fail(err, SG_EIO, "journal: %s", sqlite3_errmsg(j->db));
	sqlite3_bind_text(s, 1, j->kind->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, j->sha, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW) {
		brow *r = g_hash_table_lookup(byline, GINT_TO_POINTER(sqlite3_column_int(s, 0)));
		if (r == NULL || r->invalid || r->leader >= 0)
			continue;
		g_free(r->pub.state);
		g_free(r->pub.answer);
		r->pub.state = g_strdup((const char *)sqlite3_column_text(s, 1));
		r->pub.answer = g_strdup((const char *)sqlite3_column_text(s, 2));
		r->reserved = sqlite3_column_int64(s, 3);
		r->known = g_strdup(r->pub.state);
	}
	sqlite3_finalize(s);
	return SG_OK;
}

static void set_state(brow *r, const char *state, const char *answer);

/* Undoes a charged call the service did not carry out: its cost is no longer reserved (the
 * job's budget is not spent on money never charged) and, with restore, the row's journal state
 * goes back to what it was before the call, so that a later run makes it. */
static void give_back(brow *r, bool restore)
{
	if (restore)
		set_state(r, r->prev_state, r->prev_answer);
	r->reserved = r->prev_reserved;
	r->charged_now = false;
	r->dirty = true;
}

/* A cost in hundredths of the currency unit: sums of decimal prices stay exact. */
static gint64 cents(double v)
{
	return (gint64)llround(v * 100);
}

/*
 * Reserves the cost of a row's charged call against the job's cap (opts->max_cost), inside
 * journal_flush's transaction: 0 reserved (r->reserved holds it), 1 over the cap (the row is now
 * failed with over_budget, its state before kept in the answer for a run with a larger cap),
 * -1 a db error.
 */
static int reserve(job *j, sqlite3_stmt *sum, brow *r)
{
	gint64 total, cost = cents(r->call.cost), cap = cents(j->o->max_cost);

	sqlite3_reset(sum);
	sqlite3_bind_text(sum, 1, j->kind->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(sum, 2, j->sha, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sum, 3, r->pub.line);
	if (sqlite3_step(sum) != SQLITE_ROW)
		return -1;
	total = sqlite3_column_int64(sum, 0);
	if (total + cost <= cap) {
		r->reserved = cost;
		return 0;
	}
	cJSON *a = cJSON_CreateObject();
	g_autofree char *msg = g_strdup_printf(
		"over_budget: this row costs %.2f and the job has reserved %.2f of max_cost %.2f: "
		"re-run with a larger --max-cost to continue", (double)cost / 100,
		(double)total / 100, (double)cap / 100);
	cJSON_AddStringToObject(a, "error", msg);
	if (r->prev_state)
		cJSON_AddStringToObject(a, "resume_state", r->prev_state);
	if (r->prev_answer)
		cJSON_AddStringToObject(a, "resume_answer", r->prev_answer);
	char *txt = cJSON_PrintUnformatted(a);
	set_state(r, "failed", txt);
	cJSON_free(txt);
	cJSON_Delete(a);
	give_back(r, false);
	r->over_budget = true;
	log_info("%s:%ld: failed: %s", j->input_name, r->pub.line, msg);
	return 1;
}

/* A row failed over_budget goes back to where it stood, for a run with a new cap. */
static bool resume_over_budget(brow *r)
{
	cJSON *a, *st, *an;
	bool ok = false;

	if (r->pub.state == NULL || strcmp(r->pub.state, "failed") != 0 || r->pub.answer == NULL)
		return false;
	a = cJSON_Parse(r->pub.answer);
	st = cJSON_GetObjectItemCaseSensitive(a, "resume_state");
	an = cJSON_GetObjectItemCaseSensitive(a, "resume_answer");
	if (cJSON_IsString(st)) {
		g_autofree char *ans = cJSON_IsString(an) ? g_strdup(an->valuestring) : NULL;
		set_state(r, st->valuestring, ans);
		ok = true;
	}
	cJSON_Delete(a);
	return ok;
}

/* The kind settles a row from what the db holds (kind->settle), once the row is journalled. */
static void settle(job *j, brow *r)
{
	if (j->kind->settle && !j->o->dry_run && !r->active &&
	    j->kind->settle(j->conn.state, j->db, j->sha, &r->pub)) {
		g_free(r->known);
		r->known = g_strdup(r->pub.state);
	}
}

/* Writes the journal entries of the rows marked dirty, in one transaction (one fsync); then
 * the kind may settle the rows written. */
static sg_status journal_flush(job *j, brow **rs, size_t n, char **err)
{
	sqlite3_stmt *up = NULL, *del = NULL, *claim = NULL, *sum = NULL;
	sg_status st;
	bool any = false;

	for (size_t i = 0; i < n; i++)
		any |= rs[i]->dirty;
	if (!any || j->o->dry_run)
		return SG_OK;
	if ((st = db_exec(j->db, "BEGIN IMMEDIATE", err)) != SG_OK)
		return st;
	if (sqlite3_prepare_v2(j->db,
			       "INSERT INTO journal (kind, input_sha256, row, state, sent_at, answer, "
			       "reserved) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8) ON CONFLICT (kind, "
			       "input_sha256, row) DO UPDATE SET state = excluded.state, answer = "
			       "excluded.answer, reserved = excluded.reserved, "
			       "sent_at = COALESCE(excluded.sent_at, journal.sent_at) "
			       "WHERE journal.state IS ?7",
			       -1, &up, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->db,
			       "DELETE FROM journal WHERE kind = ?1 AND input_sha256 = ?2 AND row = ?3",
			       -1, &del, NULL) != SQLITE_OK ||
	    /* A write, and a claim above all, succeeds only while the journal still holds what
	     * this run read or wrote: two processes on the same list (a CLI run beside a poll)
	     * cannot both pay for a row, nor one undo the other's progress (and reservation). */
	    sqlite3_prepare_v2(j->db,
			       "INSERT INTO journal (kind, input_sha256, row, state, sent_at, answer, "
			       "reserved) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8) ON CONFLICT (kind, "
			       "input_sha256, row) DO UPDATE SET state = excluded.state, answer = "
			       "excluded.answer, sent_at = excluded.sent_at, reserved = "
			       "excluded.reserved WHERE journal.state IS ?7",
			       -1, &claim, NULL) != SQLITE_OK ||
	    /* The job's reserved total, read inside this write transaction: every process's
	     * reservations are in it, and none can be added until this one commits. */
	    sqlite3_prepare_v2(j->db,
			       "SELECT COALESCE(SUM(reserved), 0) FROM journal WHERE kind = ?1 AND "
			       "input_sha256 = ?2 AND row <> ?3",
			       -1, &sum, NULL) != SQLITE_OK)
		goto fail;
	/* Claims last: a reservation given back in the same commit (a refused call's) is free
	 * for the rows claimed after it, whatever their order in the list. */
	for (size_t k = 0; k < 2 * n; k++) {
		brow *r = rs[k % n];
		sqlite3_stmt *s;

		if (!r->dirty || r->claiming != (k >= n))
			continue;
		if (r->claiming && r->call.cost > 0) {
			switch (reserve(j, sum, r)) {
			case -1:
				goto fail;
			case 0:
				break;
			default: /* over the cap: the row fails instead of being claimed */
				r->claiming = false;
				break;
			}
		}
		s = r->claiming ? claim : r->pub.state ? up : del;
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		sqlite3_bind_text(s, 1, j->kind->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, j->sha, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, r->pub.line);
		if (r->pub.state) {
			sqlite3_bind_text(s, 4, r->pub.state, -1, SQLITE_STATIC);
			if (strcmp(r->pub.state, "sent") == 0)
				sqlite3_bind_int64(s, 5, sg_now());
			if (r->pub.answer)
				sqlite3_bind_text(s, 6, r->pub.answer, -1, SQLITE_STATIC);
			if (r->known)
				sqlite3_bind_text(s, 7, r->known, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 8, r->reserved);
		}
		if (sqlite3_step(s) != SQLITE_DONE)
			goto fail;
		if (s != del && sqlite3_changes(j->db) == 0) {
			/* Another process has moved the row on: it is that process's now. */
			r->claim_lost = true;
		} else {
			g_free(r->known);
			r->known = g_strdup(r->pub.state);
			r->written = true;
		}
		r->claiming = false;
	}
	sqlite3_finalize(up);
	sqlite3_finalize(del);
	sqlite3_finalize(claim);
	sqlite3_finalize(sum);
	if ((st = db_exec(j->db, "COMMIT", err)) != SG_OK) {
		db_exec(j->db, "ROLLBACK", NULL);
		return st;
	}
	for (size_t i = 0; i < n; i++) {
		rs[i]->dirty = false;
		if (rs[i]->written) {
			rs[i]->written = false;
			settle(j, rs[i]);
		}
	}
	return SG_OK;
fail:
	sg_fail(err, SG_EIO, "journal: %s", sqlite3_errmsg(j->db));
	sqlite3_finalize(up);
	sqlite3_finalize(del);
	sqlite3_finalize(claim);
	sqlite3_finalize(sum);
	db_exec(j->db, "ROLLBACK", NULL);
	for (size_t i = 0; i < n; i++)
		rs[i]->written = false;
	return SG_EIO;
}

static void set_state(brow *r, const char *state, const char *answer)
{
	g_free(r->pub.state);
	g_free(r->pub.answer);
	r->pub.state = g_strdup(state);
	r->pub.answer = g_strdup(answer);
	r->dirty = true;
}

static bool state_is(const brow *r, const char *s)
{
	return r->pub.state && strcmp(r->pub.state, s) == 0;
}

static bool finished(const brow *r)
{
	return state_is(r, "ok") || state_is(r, "failed");
}

/* ---- calls ------------------------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	brow *r = ud;

	if (r->body->len + size * n > BATCH_MAX_ANSWER) {
		r->too_big = true;
		return 0;
	}
	g_byte_array_append(r->body, (const guint8 *)p, (guint)(size * n));
	return size * n;
}

static size_t on_header_line(char *p, size_t size, size_t n, void *ud)
{
	brow *r = ud;
	size_t len = size * n;

	if (len > 12 && g_ascii_strncasecmp(p, "Retry-After:", 12) == 0) {
		g_free(r->retry_after);
		r->retry_after = g_strstrip(g_strndup(p + 12, len - 12));
	}
	return len;
}

static void schedule(job *j, brow *r, double delay)
{
	if (delay <= 0) {
		g_queue_push_tail(&j->ready, r);
		return;
	}
	r->due = mono_now() + delay;
	g_ptr_array_add(j->waits, r);
}

static void seq_release(job *j, brow *r);

static void row_gone(job *j, brow *r)
{
	if (!r->gone) {
		r->gone = true;
		j->finished++;
		if (r->seq_next)
			seq_release(j, r);
	}
}

static void stop_job(job *j, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void stop_job(job *j, const char *fmt, ...)
{
	va_list ap;

	if (j->stopping)
		return;
	j->stopping = true;
	j->sum->stopped = true;
	va_start(ap, fmt);
	j->stop_reason = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	log_error("batch %s: %s; the remaining rows stay pending", j->kind->name, j->stop_reason);
}

static sg_status start_call(job *j, brow *r)
{
	CURL *e = sg_batch_easy_new(&j->conn, j->o->timeout, j->o->connect_timeout);

	if (e == NULL)
		return SG_EINTERNAL;
	r->easy = e;
	if (r->body)
		g_byte_array_set_size(r->body, 0);
	else
		r->body = g_byte_array_new();
	r->too_big = false;
	g_clear_pointer(&r->retry_after, g_free);
	curl_easy_setopt(e, CURLOPT_URL, r->call.url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header_line);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	/* libcurl sends a request again by itself when a reused connection dies before an
	 * answer: for a charged call the server may have taken the first, so it gets a
	 * connection of its own and any second try is the engine's decision. */
	if (r->call.charged) {
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
		/* Closed after it: an idle one would hold a slot of the connection limit. */
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	}
	if (r->call.body) {
		g_autofree char *ct = g_strdup_printf("Content-Type: %s", r->call.content_type
					? r->call.content_type : "application/json");
		r->headers = curl_slist_append(NULL, ct);
		r->headers = curl_slist_append(r->headers, "Expect:");
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->call.body);
	}
	if (r->call.method)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->call.method);
	if (r->call.header)
		r->headers = curl_slist_append(r->headers, r->call.header);
	if (r->headers)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	r->active = true;
	j->active++;
	if (r != j->renewal) /* a session's calls are not the list's (nor is the first login) */
		j->sum->calls++;
	if (sg_log_level() >= SG_LOG_DEBUG) {
		g_autofree char *u = sg_batch_redact_url(r->call.url);
		g_autofree char *who = r == j->renewal ? g_strdup("the session")
						       : g_strdup_printf("row %ld", r->pub.line);
		log_debug("batch %s: %s: %s %s %s", j->kind->name, who, r->call.what,
			  r->call.method ? r->call.method : r->call.body ? "POST" : "GET", u);
	}
	curl_multi_add_handle(j->multi, e);
	return SG_OK;
}

static void end_call(job *j, brow *r)
{
	curl_multi_remove_handle(j->multi, r->easy);
	curl_easy_cleanup(r->easy);
	r->easy = NULL;
	curl_slist_free_all(r->headers);
	r->headers = NULL;
	r->active = false;
	j->active--;
}

sg_status sg_batch_fetch(const sg_batch_conn *conn, const char *method, const char *body,
			 const char *header, double timeout, double connect_timeout, long *http,
			 char **answer, double *retry_after, bool *permanent, char **err)
{
	/* A row of its own, so that the answer is read (and capped) as a job's are. */
	brow r = { .body = g_byte_array_new() };
	CURL *e = sg_batch_easy_new(conn, timeout, connect_timeout);
	struct curl_slist *h = NULL;
	CURLcode rc;

	*http = 0;
	*answer = NULL;
	*retry_after = -1;
	*permanent = false;
	if (e == NULL) {
		g_byte_array_unref(r.body);
		return sg_fail(err, SG_EINTERNAL, "cannot set up a call");
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	if (header)
		h = curl_slist_append(h, header);
	curl_easy_setopt(e, CURLOPT_URL, conn->url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header_line);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &r);
	rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, http);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	*retry_after = sg_batch_retry_after(r.retry_after, sg_now());
	g_free(r.retry_after);
	if (rc != CURLE_OK) {
		*permanent = permanent_error(rc);
		g_byte_array_unref(r.body);
		return sg_fail(err, SG_ETEMP, "%s", curl_easy_strerror(rc));
	}
	g_byte_array_append(r.body, (const guint8 *)"", 1);
	*answer = (char *)g_byte_array_free(r.body, FALSE);
	return SG_OK;
}

/* Undoes the "sent" of a charged call the service surely did not carry out. */
static void unsend(brow *r)
{
	if (r->charged_now)
		give_back(r, true);
}

static void fail_row(job *j, brow *r, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void fail_row(job *j, brow *r, const char *fmt, ...)
{
	va_list ap;
	g_autofree char *msg = NULL;
	char *ans;
	cJSON *a = cJSON_CreateObject();
	cJSON *had = r->pub.answer ? cJSON_Parse(r->pub.answer) : NULL;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(a, "error", msg);
	/* What the service answered in the kind's result columns (rental's code) stays with the
	 * row, beside the reason: only those keys, not the kind's own state in the answer. */
	for (const char *const *c = j->kind->result_columns; cJSON_IsObject(had) && *c; c++) {
		cJSON *v = cJSON_GetObjectItemCaseSensitive(had, *c);
		if (v && strcmp(*c, "error") != 0)
			cJSON_AddItemToObject(a, *c, cJSON_Duplicate(v, true));
	}
	ans = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	cJSON_Delete(had);
	set_state(r, "failed", ans);
	cJSON_free(ans);
	log_info("%s:%ld: failed: %s", j->input_name, r->pub.line, msg);
	row_gone(j, r);
}

/* A transient failure: the same call again after a backoff, or give up. */
static void retry(job *j, brow *r, const char *why, double retry_after, bool can_unsend)
{
	double d;

	if (r->attempts >= j->o->max_attempts) {
		if (can_unsend) {
			/* The service never took the call: the row can be tried in a later run. */
			unsend(r);
			stop_job(j, "%s (%d attempts)", why, r->attempts);
			row_gone(j, r);
		} else {
			fail_row(j, r, "%s (%d attempts)", why, r->attempts);
		}
		return;
	}
	d = sg_batch_backoff(r->attempts, j->o->backoff_base, j->o->backoff_cap,
			     g_random_double());
	if (retry_after >= 0)
		d = MAX(d, MIN(retry_after, BATCH_MAX_RETRY_AFTER));
	log_debug("batch %s: row %ld: %s; retry in %.1fs", j->kind->name, r->pub.line, why, d);
	schedule(j, r, d);
}

static void call_clear(brow *r)
{
	g_clear_pointer(&r->call.url, g_free);
	g_clear_pointer(&r->call.body, g_free);
	g_clear_pointer(&r->call.header, g_free);
	memset(&r->call, 0, sizeof(r->call));
}

/* The next call of a row in its state, or the row is done for this run. */
static void advance(job *j, brow *r)
{
	call_clear(r);
	r->attempts = 0;
	r->charged_now = false;
	if (finished(r) || j->stopping ||
	    (state_is(r, "sent") && !j->o->retry_unknown) ||
	    !j->kind->next(j->conn.state, &r->pub, &r->call)) {
		row_gone(j, r);
		return;
	}
	g_queue_push_tail(&j->ready, r);
}

/* A row of a sequence ended in this run: the next one goes now, fails unsent when this one
 * failed, or keeps waiting when this one's outcome is unknown or it is still under way. */
static void seq_release(job *j, brow *r)
{
	brow *n = r->seq_next;

	if (!n->held || j->stopping)
		return;
	if (state_is(r, "ok")) {
		n->held = false;
		j->total_work++;
		advance(j, n);
	} else if (state_is(r, "failed")) {
		n->held = false;
		j->total_work++;
		fail_row(j, n, "not sent: row %ld for the same %s failed", r->pub.line,
			 j->kind->sequence);
	}
}

/* The rows of each value of the kind's sequence column, chained in file order; from the
 * journal, a row runs when the one before it ended ok, fails unsent when that one is invalid or
 * failed, and waits otherwise (seq_release lets it go when that one ends). */
static void sequence_rows(job *j)
{
	size_t col = (size_t)-1;
	g_autoptr(GHashTable) last = NULL;

	for (size_t c = 0; j->kind->sequence && c < j->kind->ncolumns; c++)
		if (strcmp(j->kind->columns[c].name, j->kind->sequence) == 0)
			col = c;
	if (col == (size_t)-1)
		return;
	last = g_hash_table_new(g_str_hash, g_str_equal);
	for (guint i = 0; i < j->rows->len; i++) {
		brow *r = j->rows->pdata[i], *p;
		const char *key = r->pub.vals[col];

		if (r->leader >= 0 || *key == 0)
			continue;
		p = g_hash_table_lookup(last, key);
		g_hash_table_insert(last, (gpointer)key, r);
		if (p == NULL)
			continue;
		r->seq_prev = p;
		p->seq_next = r;
		if (r->invalid || r->pub.state)
			continue;
		if (p->invalid)
			fail_row(j, r, "not sent: row %ld for the same %s is invalid", p->pub.line,
				 j->kind->sequence);
		else if (state_is(p, "failed"))
			fail_row(j, r, "not sent: row %ld for the same %s failed", p->pub.line,
				 j->kind->sequence);
		else if (!state_is(p, "ok")) {
			r->held = true;
			r->note = g_strdup_printf("not sent: waits for row %ld (same %s)", p->pub.line,
						  j->kind->sequence);
		}
	}
}

/* A kind with a session builds its call again as it goes out, so that a session renewed while
 * the row waited in the queue reaches it (else every queued row would be refused once). */
static bool rebuild_call(job *j, brow *r)
{
	call_clear(r);
	if (j->kind->next(j->conn.state, &r->pub, &r->call))
		return true;
	unsend(r);
	row_gone(j, r);
	return false;
}

/* The renewal's call is done with: its body held the secret, its answer the new one. */
static void renewal_clear(brow *l)
{
	if (l->call.body)
		explicit_bzero(l->call.body, strlen(l->call.body));
	if (l->body && l->body->len)
		explicit_bzero(l->body->data, l->body->len);
	call_clear(l);
}

/* The renewal ended: the rows it held go again with the new session (failure NULL and the job
 * goes on), or they are as before their refused call and the job stops (with failure). */
static void renew_end(job *j, const char *failure)
{
	j->renewing = false;
	j->renew_due = 0;
	renewal_clear(j->renewal);
	if (failure)
		stop_job(j, "%s", failure);
	/* Backwards, so that pushed to the head they keep their order, first in line: they are
	 * journalled "sent" and should not wait behind new rows. */
	for (guint i = j->renew_wait->len; i-- > 0;) {
		brow *r = j->renew_wait->pdata[i];
		if (j->stopping) {
			unsend(r);
			row_gone(j, r);
			continue;
		}
		r->attempts = 1; /* the refused call did not act: not journalled again */
		g_queue_push_head(&j->ready, r);
	}
	g_ptr_array_set_size(j->renew_wait, 0);
}

/* A row refused for a stale session waits for the renewal, which starts unless it is under
 * way or the session was renewed since the row's call. */
static void renew_start(job *j, brow *r)
{
	g_autofree char *e = NULL;

	if (j->stopping) {
		unsend(r);
		row_gone(j, r);
		return;
	}
	g_ptr_array_add(j->renew_wait, r);
	if (j->renewing)
		return;
	if (j->renewal == NULL) {
		j->renewal = g_new0(brow, 1);
		j->renewal->index = -1;
		j->renewal->leader = -1;
	}
	call_clear(j->renewal);
	if (j->kind->renew == NULL ||
	    j->kind->renew(j->conn.state, &r->pub, &j->renewal->call, &e) != SG_OK) {
		renew_end(j, e ? e : "the service refused the session");
		return;
	}
	if (j->renewal->call.url == NULL) {
		renew_end(j, NULL);
		return;
	}
	j->renewing = true;
	j->renewal->attempts = 0;
	if (start_call(j, j->renewal) != SG_OK)
		renew_end(j, "cannot start a call");
}

/* The renewal's answer: the rows go on, it is tried again after a backoff, or the job stops. */
static void renewal_done(job *j, CURLcode rc)
{
	brow *l = j->renewal;
	g_autofree char *e = NULL;
	long http = 0;
	double ra;
	sg_status st;

	curl_easy_getinfo(l->easy, CURLINFO_RESPONSE_CODE, &http);
	ra = sg_batch_retry_after(l->retry_after, sg_now());
	end_call(j, l);
	l->attempts++;
	if (rc != CURLE_OK) {
		/* generate_token changes nothing: a failure on the way may be tried again. */
		st = permanent_error(rc) || l->too_big ? SG_EUNAVAIL : SG_ETEMP;
		e = g_strdup_printf("[%s] %s: %s", j->conn.section, l->call.what,
				    l->too_big ? "an answer too large" : curl_easy_strerror(rc));
	} else {
		g_byte_array_append(l->body, (const guint8 *)"", 1);
		st = j->kind->renewed(j->conn.state, http, (const char *)l->body->data,
				      l->body->len - 1, &e);
	}
	if (l->body->len)
		explicit_bzero(l->body->data, l->body->len);
	if (st == SG_OK) {
		renew_end(j, NULL);
	} else if (st == SG_ETEMP && l->attempts < 4 && !j->stopping) {
		double d = ra >= 0 ? MIN(ra, 60.0)
				   : sg_batch_backoff(l->attempts, 0.5, 8, g_random_double());
		log_debug("%s; again in %.1fs", e, d);
		j->renew_due = mono_now() + MAX(d, 0.001);
	} else {
		renew_end(j, j->stopping ? NULL : e ? e : "the service refused the session");
	}
}

static void on_done(job *j, brow *r, CURLcode rc)
{
	long http = 0;
	curl_off_t sent = 0;
	double ra;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
	curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &sent);
	ra = sg_batch_retry_after(r->retry_after, sg_now());
	end_call(j, r);
	r->attempts++;

	if (rc != CURLE_OK) {
		g_autofree char *why =
			r->too_big ? g_strdup_printf("%s: an answer over %d KiB, not the service's",
						     r->call.what, BATCH_MAX_ANSWER / 1024)
				   : g_strdup_printf("%s: %s", r->call.what, curl_easy_strerror(rc));
		if (permanent_error(rc)) {
			unsend(r);
			stop_job(j, "%s", why);
			row_gone(j, r);
		} else if (r->too_big && !r->call.charged) {
			/* The same call would get the same answer: the row fails at once. */
			fail_row(j, r, "%s", why);
		} else if (sent == 0) {
			/* Nothing reached the service: safe to try again. */
			retry(j, r, why, -1, true);
		} else if (r->call.charged) {
			/* The service may have taken the charged call: never again by itself. */
			log_warnx("%s:%ld: %s: outcome unknown (not retried; see --retry-unknown)",
				  j->input_name, r->pub.line, why);
			row_gone(j, r);
		} else {
			retry(j, r, why, -1, false);
		}
		return;
	}
	g_byte_array_append(r->body, (const guint8 *)"", 1);

	if (http == 401 || http == 402 || http == 403) {
		unsend(r);
		stop_job(j, "the service refused access (HTTP %ld): check [%s] in the config "
			 "and the account", http, j->conn.section);
		row_gone(j, r);
		return;
	}
	if (http >= 500 && r->charged_now) {
		/* The service took the request and failed somewhere: it may have acted. */
		log_warnx("%s:%ld: %s: HTTP %ld: outcome unknown (not retried; see --retry-unknown)",
			  j->input_name, r->pub.line, r->call.what, http);
		r->charged_now = false;
		row_gone(j, r);
		return;
	}
	if (http == 429 || http >= 500) {
		g_autofree char *why = g_strdup_printf("%s: HTTP %ld", r->call.what, http);
		if (http == 429 && ra > 0)
			j->pause_until = MAX(j->pause_until,
					     mono_now() + MIN(ra, BATCH_MAX_RETRY_AFTER));
		retry(j, r, why, ra, http == 429);
		return;
	}
	if (sg_log_level() >= SG_LOG_DEBUG) {
		g_autofree char *t = g_strndup((const char *)r->body->data, 300);
		log_debug("batch %s: row %ld: HTTP %ld: %s", j->kind->name, r->pub.line, http, t);
	}
	bool was_charged = r->charged_now;
	r->charged_now = false;
	g_clear_pointer(&r->pub.error, g_free);
	r->pub.uncharged = false;
	g_autofree char *before = g_strdup(r->pub.state);
	sg_step step = j->kind->answer(j->conn.state, &r->pub, http, (const char *)r->body->data,
				       r->body->len - 1);
	if (g_strcmp0(before, r->pub.state) != 0)
		r->dirty = true;
	switch (step) {
	case SG_STEP_DONE:
		if (was_charged && r->pub.uncharged)
			/* A clean refusal: the row is finished, and what it reserved is free. */
			give_back(r, false);
		if (!state_is(r, "ok"))
			fail_row(j, r, "%s", r->pub.error ? r->pub.error : "no usable answer");
		row_gone(j, r);
		break;
	case SG_STEP_NEXT:
		advance(j, r);
		break;
	case SG_STEP_WAIT: {
		double d = j->o->poll_interval;
		for (int i = 0; i < r->polls && d < j->o->poll_interval * 6; i++)
			d *= 1.5;
		d = MIN(d, j->o->poll_interval * 6);
		r->polls++;
		if (mono_now() + d > j->deadline) {
			row_gone(j, r);
			break;
		}
		call_clear(r);
		r->charged_now = false;
		if (!j->kind->next(j->conn.state, &r->pub, &r->call)) {
			row_gone(j, r);
			break;
		}
		r->attempts = 0;
		schedule(j, r, d);
		break;
	}
	case SG_STEP_RETRY:
		retry(j, r, r->pub.error ? r->pub.error : "transient error", ra, false);
		break;
	case SG_STEP_STOP:
		if (was_charged)
			/* The service refused the call: nothing was charged, nothing stays reserved. */
			give_back(r, true);
		stop_job(j, "the service refused access: %s (check [%s] in the config and the "
			 "account)", r->pub.error ? r->pub.error : "", j->conn.section);
		row_gone(j, r);
		break;
	case SG_STEP_RENEW:
		/* The refused call did not act: it goes again with the new session, still
		 * journalled "sent" (unsend restores it if the renewal fails). */
		r->charged_now = was_charged;
		renew_start(j, r);
		break;
	case SG_STEP_UNKNOWN:
		if (!state_is(r, "sent")) {
			fail_row(j, r, "%s", r->pub.error ? r->pub.error : "no usable answer");
			break;
		}
		log_warnx("%s:%ld: %s: %s: outcome unknown (not retried; see --retry-unknown)",
			  j->input_name, r->pub.line, r->call.what,
			  r->pub.error ? r->pub.error : "the service failed");
		row_gone(j, r);
		break;
	}
}

static void progress(job *j, bool last)
{
	double now = mono_now(), el = now - j->started, rate;

	if (!j->o->progress || (!last && now - j->last_progress < 0.5))
		return;
	j->last_progress = now;
	rate = el > 0 ? j->finished / el : 0;
	if (last) {
		if (j->progress_shown)
			fprintf(stderr, "\r\033[K");
		return;
	}
	j->progress_shown = true;
	if (rate > 0 && j->finished < j->total_work)
		fprintf(stderr, "\r\033[Kbatch %s: %ld/%ld done, %.1f/s, ETA %.0fs", j->kind->name,
			j->finished, j->total_work, rate, (j->total_work - j->finished) / rate);
	else
		fprintf(stderr, "\r\033[Kbatch %s: %ld/%ld done", j->kind->name, j->finished,
			j->total_work);
	fflush(stderr);
}

static sg_status run_calls(job *j, char **err)
{
	GPtrArray *launch = g_ptr_array_new(), *flush = g_ptr_array_new();
	sg_status st = SG_OK;
	bool answers = false;

	j->multi = curl_multi_init();
	curl_multi_setopt(j->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)j->o->concurrency);
	j->started = mono_now();
	j->deadline = j->started + (j->kind->polls ? j->o->max_wait : 1e12);

	for (;;) {
		double now = mono_now(), wait = 1.0;
		int running = 0;

		if (batch_interrupted) {
			j->sum->interrupted = true;
			stop_job(j, "interrupted by signal %d", (int)batch_interrupted);
		}
		if (j->o->budget > 0 && !j->stopping && now >= j->started + j->o->budget) {
			/* The time of this run is spent (a poll must not block): the calls in flight
			 * finish; the rest is undone like a stop, without its error, for the next run. */
			log_info("batch %s: %s: time budget of %.0fs spent; the job goes on in the next "
				 "run", j->kind->name, j->input_name, j->o->budget);
			j->stopping = true;
		}
		/* Rows whose time has come. */
		for (guint i = 0; i < j->waits->len;) {
			brow *r = j->waits->pdata[i];
			if (j->stopping || r->due <= now) {
				g_ptr_array_remove_index_fast(j->waits, i);
				if (j->stopping) {
					/* A retry that will not happen: its last try was refused. */
					unsend(r);
					row_gone(j, r);
				}
				else
					g_queue_push_tail(&j->ready, r);
			} else {
				wait = MIN(wait, r->due - now);
				i++;
			}
		}
		/* The renewal's next try, or none when the job stops. */
		if (j->renew_due > 0) {
			if (j->stopping) {
				renew_end(j, NULL);
			} else if (j->renew_due <= now) {
				j->renew_due = 0;
				if (start_call(j, j->renewal) != SG_OK)
					renew_end(j, "cannot start a call");
			} else {
				wait = MIN(wait, j->renew_due - now);
			}
		}
		if (j->stopping)
			while (!g_queue_is_empty(&j->ready)) {
				brow *r = g_queue_pop_head(&j->ready);
				unsend(r);
				row_gone(j, r);
			}
		if (g_queue_is_empty(&j->ready) && j->waits->len == 0 && j->active == 0 &&
		    !j->renewing)
			break;

		/* Start what concurrency, rate and a server's Retry-After allow. */
		g_ptr_array_set_size(launch, 0);
		/* While the session is renewed no row goes out: the stale one would be refused. */
		while (!g_queue_is_empty(&j->ready) && !j->renewing &&
		       j->active + (int)launch->len < j->o->concurrency) {
			if (now < j->pause_until) {
				wait = MIN(wait, j->pause_until - now);
				break;
			}
			if (j->o->rate > 0) {
				if (now < j->rate_next) {
					wait = MIN(wait, j->rate_next - now);
					break;
				}
				j->rate_next = MAX(j->rate_next, now - 1.0 / j->o->rate) +
					       1.0 / j->o->rate;
			}
			brow *r = g_queue_pop_head(&j->ready);
			if (r->claim_lost) {
				/* Another process took the row over (journal_flush): not here. */
				r->charged_now = false;
				row_gone(j, r);
				continue;
			}
			if (j->kind->login && !rebuild_call(j, r))
				continue;
			if (r->call.charged && r->attempts == 0) {
				/* Journalled "sent" (again, for --retry-unknown) before it is made;
				 * what was there comes back if the service surely did not take it. */
				g_free(r->prev_state);
				g_free(r->prev_answer);
				r->prev_state = g_strdup(r->pub.state);
				r->prev_answer = g_strdup(r->pub.answer);
				r->prev_reserved = r->reserved;
				/* The answer stays: a kind may need it to make the call again
				 * (price's request_id) under --retry-unknown. */
				set_state(r, "sent", r->prev_answer);
				r->charged_now = true;
				r->claiming = true;
			}
			g_ptr_array_add(launch, r);
		}
		if (launch->len || answers) {
			/* The intents of charged calls reach the disk before the calls go out; the
			 * answers of the last round share their commit (one fsync). */
			g_ptr_array_set_size(flush, 0);
			for (guint i = 0; i < j->rows->len; i++) {
				brow *r = j->rows->pdata[i];
				if (r->dirty && !r->active)
					g_ptr_array_add(flush, r);
			}
			if (answers)
				sg_crash_point("batch-answer");
			answers = false;
			st = journal_flush(j, (brow **)flush->pdata, flush->len, err);
			if (st != SG_OK)
				break;
		}
		if (launch->len) {
			sg_crash_point("batch-sent");
			for (guint i = 0; i < launch->len; i++) {
				brow *r = launch->pdata[i];
				if (r->claim_lost) {
					/* Another process is paying for this row: it stays "sent"
					 * here (unknown), and a re-run reads that process's answer. */
					log_warnx("batch %s: row %ld is being called by another "
						  "stockgate process; not called here",
						  j->kind->name, r->pub.line);
					r->claim_lost = false;
					r->charged_now = false;
					r->gone = true;
					continue;
				}
				if (r->over_budget) {
					r->over_budget = false;
					row_gone(j, r);
					continue;
				}
				if ((st = start_call(j, r)) != SG_OK) {
					sg_fail(err, st, "cannot start a call");
					goto out;
				}
			}
			wait = 0;
		}

		curl_multi_perform(j->multi, &running);
		{
			CURLMsg *m;
			int left;
			GPtrArray *done = g_ptr_array_new();

			while ((m = curl_multi_info_read(j->multi, &left)))
				if (m->msg == CURLMSG_DONE) {
					brow *r = NULL;
					curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &r);
					g_ptr_array_add(done, r);
					if (r == j->renewal)
						renewal_done(j, m->data.result);
					else
						on_done(j, r, m->data.result);
				}
			if (done->len) {
				answers = true;
				wait = 0;
			}
			g_ptr_array_free(done, TRUE);
		}
		progress(j, false);
		if (wait > 0 && (j->active > 0 || j->waits->len || !g_queue_is_empty(&j->ready) ||
				 j->renewing))
			curl_multi_poll(j->multi, NULL, 0, (int)(MAX(wait, 0.001) * 1000), NULL);
	}
out:
	/* A failed journal write: abandon what is in flight; those rows stay "sent" (unknown). */
	for (guint i = 0; i < j->rows->len; i++) {
		brow *r = j->rows->pdata[i];
		if (r->active)
			end_call(j, r);
	}
	if (j->renewal && j->renewal->active)
		end_call(j, j->renewal);
	if (j->renewal)
		renewal_clear(j->renewal);
	if (st == SG_OK)
		st = journal_flush(j, (brow **)j->rows->pdata, j->rows->len, err);
	progress(j, true);
	g_ptr_array_free(launch, TRUE);
	g_ptr_array_free(flush, TRUE);
	curl_multi_cleanup(j->multi);
	return st;
}

/* Finished rows this run takes up again: those failed over_budget when a cap is given, and
 * those the kind resumes. Journalled first, so that their claims compare with what is there. */
static sg_status resume_rows(job *j, char **err)
{
	g_autoptr(GPtrArray) back = g_ptr_array_new();

	if (j->o->dry_run || j->o->no_calls)
		return SG_OK;
	for (guint i = 0; i < j->rows->len; i++) {
		brow *r = j->rows->pdata[i];
		if (r->invalid || r->leader >= 0 || !finished(r))
			continue;
		if ((j->o->max_cost > 0 && resume_over_budget(r)) ||
		    (j->kind->resume && j->kind->resume(j->conn.state, &r->pub))) {
			r->dirty = true;
			g_ptr_array_add(back, r);
		}
	}
	if (back->len)
		log_info("batch %s: %s: %u finished rows taken up again", j->kind->name,
			 j->input_name, back->len);
	return journal_flush(j, (brow **)back->pdata, back->len, err);
}

/* ---- output ----------------------------------------------------------------------------- */

/* A row's status for the output; *waiting when it is pending only until a report comes back. */
static sg_row_status row_status(const job *j, const brow *r, const char **error, cJSON **res,
				bool *waiting)
{
	*error = NULL;
	*res = NULL;
	*waiting = false;
	if (r->invalid) {
		*error = r->invalid;
		return SG_ROW_INVALID;
	}
	if (r->leader >= 0)
		return row_status(j, j->rows->pdata[r->leader], error, res, waiting);
	if (r->pub.answer)
		*res = cJSON_Parse(r->pub.answer);
	if (state_is(r, "ok"))
		return SG_ROW_OK;
	if (state_is(r, "failed")) {
		cJSON *e = cJSON_GetObjectItemCaseSensitive(*res, "error");
		*error = cJSON_IsString(e) ? e->valuestring : "failed";
		return SG_ROW_FAILED;
	}
	if (state_is(r, "sent")) {
		*error = "sent, no answer recorded: check with the service, or re-run with "
			 "--retry-unknown";
		return SG_ROW_UNKNOWN;
	}
	if (r->held && r->pub.state == NULL && r->seq_prev) {
		/* Behind a row whose outcome is unknown it can only move with --retry-unknown: it
		 * is unknown too (an e-mailed job ends); behind one under way it is pending. */
		const brow *p = r->seq_prev;
		while (p->held && p->seq_prev)
			p = p->seq_prev;
		*error = r->note;
		return state_is(p, "sent") ? SG_ROW_UNKNOWN : SG_ROW_PENDING;
	}
	{
		/* A row under way with a deadline of its own (a vin row waiting for its report):
		 * past it, the paid request is unknown and never sent again. */
		cJSON *until = cJSON_GetObjectItemCaseSensitive(*res, "wait_until");
		if (cJSON_IsNumber(until)) {
			if ((double)sg_now() >= until->valuedouble) {
				*error = "no_report: no report arrived within [vin] report_wait";
				return SG_ROW_UNKNOWN;
			}
			*error = "waiting for the report (stockgate serve files it)";
			*waiting = true;
			return SG_ROW_PENDING;
		}
	}
	if (j->o->dry_run)
		*error = r->pub.state ? "under way (dry run)" : "not sent (dry run)";
	else if (j->o->no_calls)
		*error = r->pub.state ? "not finished: the job's time ran out"
				      : "not sent: the job's time ran out";
	else if (r->pub.state)
		*error = "not ready yet: re-run to continue";
	else if (j->stop_reason)
		*error = j->stop_reason;
	return SG_ROW_PENDING;
}

static char *result_cell(cJSON *res, const char *name)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(res, name);

	if (cJSON_IsString(v))
		return g_strdup(v->valuestring);
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble == (double)(long long)v->valuedouble)
			return g_strdup_printf("%lld", (long long)v->valuedouble);
		char buf[G_ASCII_DTOSTR_BUF_SIZE];
		return g_strdup(g_ascii_dtostr(buf, sizeof(buf), v->valuedouble));
	}
	if (cJSON_IsBool(v))
		return g_strdup(cJSON_IsTrue(v) ? "true" : "false");
	return g_strdup("");
}

static sg_status write_output(job *j, FILE *f, char **err)
{
	const sg_batch_kind *k = j->kind;
	size_t nres = 0, nin = j->info.header_n, ncol;
	sg_csv_writer *w = NULL;
	bool ok = true;

	while (k->result_columns[nres])
		nres++;
	ncol = nin + 2 + nres;
	if (!j->o->json) {
		const char **hdr = g_new0(const char *, ncol);
		for (size_t i = 0; i < nin; i++)
			hdr[i] = j->info.header[i];
		hdr[nin] = "status";
		hdr[nin + 1] = "error";
		for (size_t i = 0; i < nres; i++)
			hdr[nin + 2 + i] = k->result_columns[i];
		w = sg_csv_writer_new(f, j->info.encoding ? j->info.encoding : "utf-8",
				      j->info.delimiter ? j->info.delimiter : ',', j->info.bom, true,
				      "\n");
		sg_csv_write_row(w, hdr, ncol);
		g_free(hdr);
	}
	for (guint i = 0; i < j->rows->len; i++) {
		brow *r = j->rows->pdata[i];
		const char *error;
		cJSON *res;
		bool waiting;
		sg_row_status s = row_status(j, r, &error, &res, &waiting);
		g_autofree char *dup = NULL;
		char **resv = g_new0(char *, nres + 1);

		switch (s) {
		case SG_ROW_OK: j->sum->ok++; break;
		case SG_ROW_INVALID: j->sum->invalid++; break;
		case SG_ROW_FAILED: j->sum->failed++; break;
		case SG_ROW_UNKNOWN: j->sum->unknown++; break;
		case SG_ROW_PENDING: j->sum->pending++; break;
		}
		if (waiting)
			j->sum->waiting++;
		if (r->leader >= 0) {
			brow *l = j->rows->pdata[r->leader];
			dup = g_strdup_printf("same as row %ld%s%s", l->pub.line, error ? ": " : "",
					      error ? error : "");
			error = dup;
		}
		for (size_t c = 0; c < nres; c++)
			/* A failed row too: the columns the service's answer filled (its code). */
			resv[c] = s == SG_ROW_OK || s == SG_ROW_PENDING || s == SG_ROW_FAILED
					  ? result_cell(res, k->result_columns[c]) : g_strdup("");
		if (w) {
			const char **cells = g_new0(const char *, ncol);
			for (size_t c = 0; c < nin; c++)
				cells[c] = c < r->ncells ? r->cells[c] : "";
			cells[nin] = sg_row_status_name(s);
			cells[nin + 1] = error ? error : "";
			for (size_t c = 0; c < nres; c++)
				cells[nin + 2 + c] = resv[c];
			sg_csv_write_row(w, cells, ncol);
			g_free(cells);
		} else {
			cJSON *o = cJSON_CreateObject();
			char *txt;
			cJSON_AddNumberToObject(o, "line", (double)r->pub.line);
			for (size_t c = 0; c < nin; c++)
				if (!cJSON_GetObjectItemCaseSensitive(o, j->info.header[c]))
					cJSON_AddStringToObject(o, j->info.header[c],
								c < r->ncells ? r->cells[c] : "");
			cJSON_AddStringToObject(o, "status", sg_row_status_name(s));
			cJSON_AddStringToObject(o, "error", error ? error : "");
			for (size_t c = 0; c < nres; c++)
				cJSON_AddStringToObject(o, k->result_columns[c], resv[c]);
			for (const char *const *x = k->json_columns; x && *x && s == SG_ROW_OK; x++) {
				cJSON *v = cJSON_GetObjectItemCaseSensitive(res, *x);
				if (v)
					cJSON_AddItemToObject(o, *x, cJSON_Duplicate(v, true));
			}
			txt = cJSON_PrintUnformatted(o);
			if (fprintf(f, "%s\n", txt) < 0)
				ok = false;
			cJSON_free(txt);
			cJSON_Delete(o);
		}
		g_strfreev(resv);
		cJSON_Delete(res);
	}
	if (w && !sg_csv_writer_close(w))
		ok = false;
	if (fflush(f) != 0)
		ok = false;
	return ok ? SG_OK : sg_fail(err, SG_EIO, "cannot write the output: %s", g_strerror(errno));
}

static sg_status output(job *j, char **err)
{
	const char *path = j->o->output;
	g_autofree char *tmp = NULL;
	FILE *f;
	int fd;
	sg_status st;

	if (path == NULL)
		return write_output(j, j->o->out ? j->o->out : stdout, err);
	tmp = g_strdup_printf("%s.tmpXXXXXX", path);
	fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		return sg_fail(err, SG_EIO, "%s: cannot create: %s", path, g_strerror(errno));
	f = fdopen(fd, "w");
	st = write_output(j, f, err);
	if (st == SG_OK && fsync(fileno(f)) != 0)
		st = sg_fail(err, SG_EIO, "%s: %s", path, g_strerror(errno));
	if (fclose(f) != 0 && st == SG_OK)
		st = sg_fail(err, SG_EIO, "%s: %s", path, g_strerror(errno));
	if (st == SG_OK && rename(tmp, path) != 0)
		st = sg_fail(err, SG_EIO, "%s: cannot rename into place: %s", path,
			     g_strerror(errno));
	if (st != SG_OK)
		unlink(tmp);
	return st;
}

/* ---- the run ---------------------------------------------------------------------------- */

/* Whether some row has a call to make in this run. */
static bool has_work(const job *j)
{
	for (guint i = 0; i < j->rows->len; i++) {
		const brow *r = j->rows->pdata[i];
		if (!(r->invalid || r->leader >= 0 || finished(r) || r->held ||
		      (state_is(r, "sent") && !j->o->retry_unknown)))
			return true;
	}
	return false;
}

sg_status sg_batch_run(const sg_batch_kind *kind, const sg_config *cfg, sg_store *store,
		       const sg_batch_opts *o, sg_batch_summary *sum, char **err)
{
	job jb = { .kind = kind, .o = o, .sum = sum };
	job *j = &jb;
	sg_status st;
	struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term;
	bool conn_open = false;

	memset(sum, 0, sizeof(*sum));
	j->input_name = o->name ? g_strdup(o->name) : g_path_get_basename(o->input);
	j->rows = g_ptr_array_new_with_free_func(brow_free);
	j->waits = g_ptr_array_new();
	j->renew_wait = g_ptr_array_new();
	g_queue_init(&j->ready);

	j->conn.max_cost = o->max_cost;
	if ((st = kind->open(cfg, &j->conn, err)) != SG_OK)
		goto out;
	conn_open = true;
	if ((st = conn_check(&j->conn, err)) != SG_OK)
		goto out;
	if (access(o->input, F_OK) != 0) {
		st = sg_fail(err, SG_ENOINPUT, "%s: %s", o->input, g_strerror(errno));
		goto out;
	}
	j->sha = sg_sha256_file(o->input);
	if (j->sha == NULL) {
		st = sg_fail(err, SG_ENOINPUT, "%s: cannot be read", o->input);
		goto out;
	}
	if ((st = read_list(j, err)) != SG_OK)
		goto out;
	validate_rows(j);
	sum->rows = j->rows->len;

	j->db = sg_store_db(store);
	if ((st = journal_init(j, err)) != SG_OK || (st = journal_load(j, err)) != SG_OK)
		goto out;
	for (guint i = 0; i < j->rows->len; i++) {
		brow *r = j->rows->pdata[i];
		if (r->known && !r->invalid && r->leader < 0)
			settle(j, r);
	}
	if ((st = resume_rows(j, err)) != SG_OK)
		goto out;
	sequence_rows(j);
	if (kind->login && !o->dry_run && !o->no_calls && has_work(j)) {
		/* The run's session (rental's token) before any call is built; a refusal stops
		 * the job before it starts. */
		g_autofree char *e = NULL;
		curl_global_init(CURL_GLOBAL_DEFAULT);
		if (kind->login(j->conn.state, &j->conn, o->timeout, o->connect_timeout, &e) != SG_OK)
			stop_job(j, "%s", e ? e : "the service refused the session");
	}

	for (guint i = 0; i < j->rows->len; i++) {
		brow *r = j->rows->pdata[i];
		if (r->invalid || r->leader >= 0 || finished(r) || r->held)
			continue;
		if (state_is(r, "sent") && !o->retry_unknown)
			continue;
		if (o->dry_run || o->no_calls)
			continue;
		j->total_work++;
		if (state_is(r, "sent"))
			log_warnx("%s:%ld: sent before without an answer: calling again "
				  "(--retry-unknown)", j->input_name, r->pub.line);
		advance(j, r);
		if (r->gone) {
			r->gone = false;
			j->total_work--;
			j->finished--;
		}
	}
	j->finished = 0;
	for (guint i = 0; i < j->rows->len; i++)
		((brow *)j->rows->pdata[i])->gone = false;

	if (!g_queue_is_empty(&j->ready)) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		batch_interrupted = 0;
		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
		st = run_calls(j, err);
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
		if (st != SG_OK)
			goto out;
	}
	st = output(j, err);
out:
	if (conn_open && kind->close)
		kind->close(j->conn.state);
	g_ptr_array_free(j->rows, TRUE);
	g_ptr_array_free(j->waits, TRUE);
	g_ptr_array_free(j->renew_wait, TRUE);
	if (j->renewal)
		brow_free(j->renewal);
	g_queue_clear(&j->ready);
	sg_csv_info_clear(&j->info);
	g_free(j->colmap);
	g_free(j->sha);
	g_free(j->input_name);
	g_free(j->stop_reason);
	return st;
}

sg_status sg_batch_exit_status(const sg_batch_summary *sum)
{
	if (sum->pending || sum->unknown)
		return SG_ETEMP;
	if (sum->invalid || sum->failed)
		return SG_EDATA;
	return SG_OK;
}

char *sg_batch_summary_line(const char *kind, const sg_batch_summary *s)
{
	GString *g = g_string_new(NULL);

	g_string_printf(g, "batch %s: %ld rows: %ld ok, %ld invalid, %ld failed, %ld pending, "
			"%ld unknown", kind, s->rows, s->ok, s->invalid, s->failed, s->pending,
			s->unknown);
	if (s->duplicates)
		g_string_append_printf(g, "; %ld duplicate rows", s->duplicates);
	if (s->warnings)
		g_string_append_printf(g, "; %ld warnings", s->warnings);
	g_string_append_printf(g, "; %ld calls", s->calls);
	if (s->stopped)
		g_string_append(g, "; stopped");
	return g_string_free(g, FALSE);
}

/* ---- jobs by e-mail ------------------------------------------------------------------------ */

void sg_batch_job_free(sg_batch_job *bj)
{
	if (bj == NULL)
		return;
	g_free(bj->kind);
	g_free(bj->input_sha256);
	g_free(bj->state);
	g_free(bj->owner_email);
	g_free(bj->message_sha256);
	g_free(bj->input_name);
	g_free(bj->charset);
	g_free(bj->message_id);
	g_free(bj->report_state);
	g_free(bj->report_path);
	g_free(bj);
}

char *sg_batch_job_dir(const sg_config *cfg, const char *message_sha256)
{
	const char *db = cfg->store.path && *cfg->store.path ? cfg->store.path : "stockgate.db";

	return g_strdup_printf("%s.jobs/%s", db, message_sha256);
}

static void bind_opt(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static sg_status jobs_fail(sqlite3 *db, sqlite3_stmt *s, char **err)
{
	sg_status st = sg_fail(err, SG_EIO, "state db: batch jobs: %s", sqlite3_errmsg(db));

	sqlite3_finalize(s);
	return st;
}

sg_status sg_batch_job_add(sg_store *store, sg_batch_job *bj, char **err)
{
	sqlite3 *db = sg_store_db(store);
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(db,
			       "INSERT INTO jobs (kind, input_sha256, created, state, owner_email, "
			       "message_sha256) VALUES (?, ?, ?, 'pending', ?, ?)",
			       -1, &s, NULL) != SQLITE_OK)
		return jobs_fail(db, s, err);
	bind_opt(s, 1, bj->kind);
	bind_opt(s, 2, bj->input_sha256);
	sqlite3_bind_int64(s, 3, bj->created);
	bind_opt(s, 4, bj->owner_email);
	bind_opt(s, 5, bj->message_sha256);
	if (sqlite3_step(s) != SQLITE_DONE)
		return jobs_fail(db, s, err);
	sqlite3_finalize(s);
	bj->id = sqlite3_last_insert_rowid(db);
	g_free(bj->state);
	bj->state = g_strdup("pending");
	if (bj->report_state == NULL)
		bj->report_state = g_strdup("none");
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO batch_jobs (job_id, input_name, charset, message_id, "
			       "report_state) VALUES (?, ?, ?, ?, ?)",
			       -1, &s, NULL) != SQLITE_OK)
		return jobs_fail(db, s, err);
	sqlite3_bind_int64(s, 1, bj->id);
	bind_opt(s, 2, bj->input_name ? bj->input_name : "list.csv");
	bind_opt(s, 3, bj->charset);
	bind_opt(s, 4, bj->message_id);
	bind_opt(s, 5, bj->report_state);
	if (sqlite3_step(s) != SQLITE_DONE)
		return jobs_fail(db, s, err);
	sqlite3_finalize(s);
	return SG_OK;
}

sg_status sg_batch_job_update(sg_store *store, const sg_batch_job *bj, char **err)
{
	sqlite3 *db = sg_store_db(store);
	sqlite3_stmt *s = NULL;
	sg_status st;

	if ((st = db_exec(db, "SAVEPOINT batch_job", err)) != SG_OK)
		return st;
	if (sqlite3_prepare_v2(db, "UPDATE jobs SET state = ? WHERE id = ?", -1, &s, NULL) !=
	    SQLITE_OK)
		goto fail;
	bind_opt(s, 1, bj->state);
	sqlite3_bind_int64(s, 2, bj->id);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(db,
			       "UPDATE batch_jobs SET report_state = ?, report_path = ?, attempts = ?, "
			       "finished = ? WHERE job_id = ?",
			       -1, &s, NULL) != SQLITE_OK)
		goto fail;
	bind_opt(s, 1, bj->report_state ? bj->report_state : "none");
	bind_opt(s, 2, bj->report_path);
	sqlite3_bind_int(s, 3, bj->attempts);
	sqlite3_bind_int64(s, 4, bj->finished);
	sqlite3_bind_int64(s, 5, bj->id);
	if (sqlite3_step(s) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	return db_exec(db, "RELEASE batch_job", err);
fail:
	st = jobs_fail(db, s, err);
	db_exec(db, "ROLLBACK TO batch_job", NULL);
	db_exec(db, "RELEASE batch_job", NULL);
	return st;
}

static char *col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? g_strdup((const char *)t) : NULL;
}

sg_status sg_batch_jobs_open(sg_store *store, GPtrArray **out, char **err)
{
	sqlite3 *db = sg_store_db(store);
	sqlite3_stmt *s = NULL;
	int rc;

	*out = NULL;
	if (sqlite3_prepare_v2(db,
			       "SELECT j.id, j.kind, j.input_sha256, j.created, j.state, j.owner_email,"
			       " j.message_sha256, b.input_name, b.charset, b.message_id,"
			       " b.report_state, b.report_path, b.attempts, b.finished"
			       " FROM jobs j JOIN batch_jobs b ON b.job_id = j.id"
			       " WHERE j.state IN ('pending', 'running') OR b.report_state = 'pending'"
			       " ORDER BY j.id",
			       -1, &s, NULL) != SQLITE_OK)
		return jobs_fail(db, s, err);
	*out = g_ptr_array_new_with_free_func((GDestroyNotify)sg_batch_job_free);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		sg_batch_job *bj = g_new0(sg_batch_job, 1);

		bj->id = sqlite3_column_int64(s, 0);
		bj->kind = col_text(s, 1);
		bj->input_sha256 = col_text(s, 2);
		bj->created = sqlite3_column_int64(s, 3);
		bj->state = col_text(s, 4);
		bj->owner_email = col_text(s, 5);
		bj->message_sha256 = col_text(s, 6);
		bj->input_name = col_text(s, 7);
		bj->charset = col_text(s, 8);
		bj->message_id = col_text(s, 9);
		bj->report_state = col_text(s, 10);
		bj->report_path = col_text(s, 11);
		bj->attempts = sqlite3_column_int(s, 12);
		bj->finished = sqlite3_column_int64(s, 13);
		g_ptr_array_add(*out, bj);
	}
	if (rc != SQLITE_DONE) {
		g_clear_pointer(out, g_ptr_array_unref);
		return jobs_fail(db, s, err);
	}
	sqlite3_finalize(s);
	return SG_OK;
}
