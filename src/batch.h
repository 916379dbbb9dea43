/* batch.h: batch jobs over a CSV list (SPEC 9): the engine with its journal, and the kinds. */
#pragma once
#include <stdio.h>

#include "config.h"
#include "store.h"

/*
 * A kind (vin, frame, price, rental) is one file holding one sg_batch_kind: its columns, a row
 * validator, and a small state machine per row that asks the engine for HTTP calls and reads
 * their answers. The engine owns everything else: the CSV in and out, the journal, concurrency,
 * rate, retries, deadlines, progress and the summary.
 *
 * The journal (table `journal` of the state db) holds one row per (kind, SHA-256 of the input
 * bytes, spreadsheet row) with a state the kind chooses, except for these the engine knows:
 *   (none)    nothing done yet;
 *   "sent"    a charged call was committed as made and no answer is recorded: `unknown`;
 *   "ok"      finished; answer = JSON object of the result columns;
 *   "failed"  finished; answer = {"error": "...", and the result columns the row's answer
 *             held when it failed (rental's code, message, odo)}.
 * Any other state (frame's "queued") means the row is under way: `pending` if the run ends.
 */

/* Final status of a row, as written in the `status` column. */
typedef enum {
	SG_ROW_OK,
	SG_ROW_INVALID,
	SG_ROW_FAILED,
	SG_ROW_UNKNOWN,
	SG_ROW_PENDING,
} sg_row_status;

/* "ok", "invalid", "failed", "unknown", "pending". */
const char *sg_row_status_name(sg_row_status s);

/* An input column: the name used in code and the header names it is known by. */
typedef struct {
	const char *name;           /* canonical English name, also the first header alias */
	const char *const *aliases; /* further header names (Russian, English), NULL-terminated */
	bool required;
} sg_batch_column;

/* The row as its kind sees it. */
typedef struct {
	long line;     /* spreadsheet row of the input (the journal key) */
	char **vals;   /* normalised values, indexed like kind->columns; "" when absent; owned by
	                * the engine (the validator may g_free and replace them) */
	char *state;   /* journal state, NULL when nothing was done yet (g_malloc'd) */
	char *answer;  /* journal answer (JSON text) or NULL (g_malloc'd) */
	int phase;     /* the kind's in-memory step within a state (not journalled) */
	char *error;   /* a failure reason when the kind finishes the row as failed (g_malloc'd) */
	bool uncharged; /* set by answer() with SG_STEP_DONE: the answer to a charged call says
	                 * the service did not carry it out (a clean refusal, nothing charged), so
	                 * the engine gives its reservation back; false (the default) when the
	                 * answer does not prove it */
} sg_batch_row;

/* One HTTP call a kind asks for. The engine frees url and body. */
typedef struct {
	char *url;                /* full URL; it may carry a secret in its query (never logged) */
	char *body;               /* POST body, or NULL for GET */
	const char *content_type; /* static, for a body */
	bool charged;             /* costs money or acts on the world: journalled "sent"
	                           * (committed) before it is made, never made again when its
	                           * outcome is unknown, and a 5xx answer leaves it unknown (the
	                           * service took the request and may have acted on it) */
	const char *what;         /* static step name for logs: "submit", "setqueue", … */
	const char *method;       /* static: "GET" sends the body with a GET (PILOT's
	                           * generate_token); NULL: POST with a body, else GET */
	char *header;             /* one more request header ("Authorization: Bearer …"), or
	                           * NULL; it carries a secret and is never logged; engine frees */
	double cost;              /* a charged call's price: reserved against opts->max_cost in
	                           * the journal with its "sent"; a call that would take the job's
	                           * reserved total over the cap is not made (row failed,
	                           * over_budget; a run with a larger cap takes it up again) */
} sg_batch_call;

/* What a kind makes of an answer. It may change row->state and row->answer: the engine journals
 * any change before it acts on the step. */
typedef enum {
	SG_STEP_DONE,  /* finished: state "ok" (answer = result object) or "failed" (row->error;
	                * the result columns of row->answer, if any, are kept beside it) */
	SG_STEP_NEXT,  /* moved on: ask next() again now */
	SG_STEP_WAIT,  /* not ready yet: ask next() again after the poll interval */
	SG_STEP_RETRY, /* a transient error: the same call again after a backoff */
	SG_STEP_STOP,  /* the service refused our credentials or access: stop the whole job */
	SG_STEP_RENEW, /* the session expired before the call acted: kind->renew renews it and
	                * the row is sent again (still journalled "sent") */
	SG_STEP_UNKNOWN, /* the service failed after it took the call: the row stays "sent"
	                  * (unknown), never called again by itself */
} sg_step;

/* The connection of a kind, filled by its open(). */
typedef struct {
	const char *section; /* "vin": names the config section in messages */
	const char *url;     /* the endpoint (borrowed from the config) */
	const sg_tls *tls;   /* borrowed from the config */
	void *state;         /* the kind's own, freed with kind->close */
	double max_cost;     /* opts->max_cost, set by the engine before open() */
} sg_batch_conn;

typedef struct sg_batch_kind {
	const char *name; /* "vin" */
	const sg_batch_column *columns;
	size_t ncolumns;
	const char *const *result_columns; /* NULL-terminated; keys of the "ok" answer object */
	bool polls; /* has WAIT steps: --max-wait and --poll-interval apply */
	/* A column whose equal values make a sequence (rental's ra): its rows run strictly in file
	 * order, one at a time, and a row after a failed or invalid one is failed unsent. NULL:
	 * every row runs on its own. */
	const char *sequence;

	/* Checks the config section (url and secret): SG_ECONFIG naming the setting. */
	sg_status (*open)(const sg_config *cfg, sg_batch_conn *conn, char **err);
	void (*close)(void *state);
	/* Validates and normalises vals in place: NULL when valid, else the reason (g_free). May
	 * set *warning (static text) for a valid row with a doubt (counted in the summary). */
	char *(*validate)(char **vals, const char **warning);
	/* The next call for the row in its current state; false when there is nothing to call
	 * (the engine then treats the row as finished as it stands). */
	bool (*next)(void *state, sg_batch_row *row, sg_batch_call *call);
	/* Reads an answer with HTTP status 2xx or 4xx other than 401/402/403/429 (the engine
	 * handles those, 5xx and transport errors itself). body is NUL-terminated. */
	sg_step (*answer)(void *state, sg_batch_row *row, long http, const char *body, size_t len);
	/* Optional: a kind with a session (rental's token) opens it before the first call of a
	 * run. It blocks (one call, with its own few retries; no other call is under way then).
	 * SG_OK: calls go on; else the job stops with *err, which names the setting and never
	 * holds the secret. */
	sg_status (*login)(void *state, const sg_batch_conn *conn, double timeout,
			   double connect_timeout, char **err);
	/* With login: the session's renewal after answer() said SG_STEP_RENEW for stale, made as
	 * a call of the job's loop, so that the other transfers go on meanwhile. renew() fills
	 * *call (never charged; its body may hold the secret: the engine wipes it) and returns
	 * SG_OK, or leaves call->url NULL when the session was renewed since stale's call (stale
	 * goes again at once); anything else stops the job with *err. renewed() reads the answer
	 * (HTTP status and body, NUL-terminated): SG_OK, SG_ETEMP for one worth trying again (the
	 * engine does, a few times, after a backoff or its Retry-After), else the job stops. */
	sg_status (*renew)(void *state, const sg_batch_row *stale, sg_batch_call *call,
			   char **err);
	sg_status (*renewed)(void *state, long http, const char *body, size_t len, char **err);
	/* Optional. A finished row this run takes up again (price: a row stage 1 left without its
	 * prices, now that a budget allows stage 2): sets row->state and row->answer to where it
	 * continues and returns true. NULL: finished rows stay finished. */
	bool (*resume)(void *state, sg_batch_row *row);
	/* Optional, NULL-terminated: keys of the "ok" answer that --format json carries as they
	 * are (any JSON value) after the result columns (price's details). */
	const char *const *json_columns;
	/* Optional. Called for each row once it is journalled, and for each row this run finds
	 * in the journal, to settle it from what the db holds already, in a write transaction of
	 * the kind's own (vin: a row journalled waiting takes the report `serve` received before
	 * it, kept as unknown). Sets row->state and row->answer as it journalled them and returns
	 * true when it did. */
	bool (*settle)(void *state, sqlite3 *db, const char *input_sha256, sg_batch_row *row);
} sg_batch_kind;

extern const sg_batch_kind sg_batch_vin;
extern const sg_batch_kind sg_batch_frame;
extern const sg_batch_kind sg_batch_rental;
extern const sg_batch_kind sg_batch_price;
/* The kind of a name, or NULL. */
const sg_batch_kind *sg_batch_kind_find(const char *name);

typedef struct {
	const char *input;         /* the CSV list */
	const char *charset_label; /* a MIME charset for the input, or NULL */
	const char *output;        /* a path (written to a temp file, then renamed), or NULL */
	FILE *out;                 /* used when output is NULL */
	bool json;                 /* JSON lines instead of CSV */
	int concurrency;           /* parallel calls, >= 1 (default 4) */
	double rate;               /* calls started per second, 0 = unlimited */
	bool dry_run;              /* validate and report; no call, no journal write */
	bool no_calls;             /* start no call: read the journal and write the output, a
	                            * row waiting for its report settled by its own wait_until
	                            * (an e-mailed job past max_defer only looks, never pays) */
	bool retry_unknown;        /* call again rows found "sent" without an answer */
	bool progress;             /* a progress line on stderr */
	double max_wait;           /* seconds a polling kind waits for its rows in this run */
	double poll_interval;      /* first poll delay of a polling kind, seconds */
	double timeout;            /* per call, seconds (default 30) */
	double connect_timeout;    /* per call, seconds (default 10) */
	int max_attempts;          /* tries of one call on transient errors (default 6) */
	double backoff_base;       /* seconds (default 0.5) */
	double backoff_cap;        /* seconds (default 30) */
	long max_rows;             /* 0 = no limit */
	int max_field_length;      /* characters, 0 = no limit */
	const char *name;          /* the list's name in messages (an e-mailed attachment's name),
	                            * or NULL for the input's basename */
	double budget;             /* seconds after which no new call starts in this run, 0 = none:
	                            * calls in flight finish, rows not started stay as they are for
	                            * the next run (an e-mail job advanced by each poll) */
	double max_cost;           /* the job's cap on the costs its charged calls reserve, across
	                            * runs and processes (price: --max-cost, [price] max_cost);
	                            * 0 = no call with a cost is made */
} sg_batch_opts;

/* Defaults for every field above (input/output unset). */
void sg_batch_opts_init(sg_batch_opts *o);

typedef struct {
	long rows, ok, invalid, failed, unknown, pending;
	long waiting;    /* of pending: sent, waiting for a report the service delivers later
	                  * (a vin row before its wait_until; `serve` files the report) */
	long duplicates; /* rows that share the call of an earlier identical row */
	long warnings;   /* valid rows with a doubt (a VIN failing the ISO 3779 check digit) */
	long calls;      /* HTTP calls made in this run */
	bool stopped;    /* the service refused access: the job stopped */
	bool interrupted; /* SIGINT or SIGTERM stopped the run (the caller should stop too) */
	const char *reason;   /* SG_EDATA reading the list: the SPEC 5.7 file reason (not_csv,
	                       * bad_encoding, malformed_csv, bad_header, too_many_rows), static */
	const char *encoding; /* the list's encoding as read (static), or NULL */
	char delimiter;       /* the list's delimiter, or 0 */
} sg_batch_summary;

/*
 * Runs a job: reads and validates the list, resumes from the journal in st, makes the calls and
 * writes the output. Returns SG_OK when the job ran (whatever its rows' statuses: see
 * sg_batch_exit_status), SG_ECONFIG (config section), SG_ENOINPUT (no input), SG_EDATA (the list
 * cannot be read: encoding, no header, too many rows), SG_EIO (output or journal), with *err set.
 */
sg_status sg_batch_run(const sg_batch_kind *kind, const sg_config *cfg, sg_store *st,
		       const sg_batch_opts *o, sg_batch_summary *sum, char **err);

/* SG_OK when all rows are ok; SG_ETEMP when some are pending or unknown; else SG_EDATA when
 * some are invalid or failed. */
sg_status sg_batch_exit_status(const sg_batch_summary *sum);

/* "batch vin: 120 rows: 100 ok, 12 invalid, 3 failed, 5 pending, 0 unknown"; g_free. */
char *sg_batch_summary_line(const char *kind, const sg_batch_summary *sum);

/* An answer of the price service (seed 002) as read from its windows-1251 XML, 1C or JcTrade
 * form: the service message's result, code, text and techinfo, the billing block's posible
 * and cost; numbers kept as the service wrote them; NULL when absent. */
typedef struct {
	char *result, *code, *text;
	char *posible, *billing_code, *billing_text, *cost;
	char *has_value, *request_id, *notice_count;
	char *price_min, *price_max, *price_average;
	struct cJSON *details; /* object price → count, or NULL */
} sg_price_answer;
/* SG_EDATA naming what is wrong (not XML, not a jcanswer, no message); clear it after SG_OK. */
sg_status sg_price_answer_parse(const char *body, size_t len, sg_price_answer *a, char **err);
void sg_price_answer_clear(sg_price_answer *a);

/* The balance of the vin account (get_balance), as the service gives it; g_free. */
sg_status sg_batch_vin_balance(const sg_config *cfg, char **balance, char **err);

/* What a delivery of the VIN service did (`stockgate serve`). */
typedef enum {
	SG_VIN_FILED,   /* a waiting row is ok now, with its report file when one came */
	SG_VIN_FAILED,  /* a waiting row is failed: the service reported an error status */
	SG_VIN_REPEAT,  /* the row (or the unknown delivery) had it already: nothing changed */
	SG_VIN_UNKNOWN, /* no row waits for it: kept in the deliveries table */
} sg_vin_delivered;

struct sg_delivery_s;
/*
 * Files one parsed delivery (delivery.h) in one transaction: the journal row found by the
 * delivery's digest (sg_delivery_sha256: a repeat), else by the id, else by the VIN among rows
 * still waiting (the most recent) gets its result, and the report file, written first to a temp
 * file (fsynced) outside the lock, is renamed under it, with the row still waiting, to
 * <state dir>/reports/<input sha256, 16 digits>/<row>-<VIN>.<ext>; a delivery that finds the
 * row filed meanwhile leaves nothing there. Unknown deliveries go to the deliveries table
 * (their file to reports/unmatched/), where `batch vin` finds them when it journals their row
 * waiting (kind->settle). *file: the path written, or NULL (g_free). SG_ETEMP when the db stays
 * busy, SG_EIO on a write failure: the caller must not answer 2xx then.
 */
sg_status sg_batch_vin_deliver(const sg_config *cfg, sg_store *st,
			       const struct sg_delivery_s *d, const char *body_sha256,
			       sg_vin_delivered *what, char **file, char **err);
/* The report files of a list's ok rows, in row order, as many as fit in [report]
 * max_attachment_size in all; NULL-terminated (g_ptr_array_unref). */
GPtrArray *sg_batch_vin_report_files(const sg_config *cfg, sg_store *st, const char *input_sha256);
/* <directory of [store] path>/reports; g_free. */
char *sg_batch_vin_reports_dir(const sg_config *cfg);

/* Helpers shared by the kinds and tested on their own. */

/* Maps the Cyrillic look-alikes А В Е К М Н О Р С Т Х У (either case) to Latin capitals,
 * upper-cases ASCII and drops blanks; g_free. */
char *sg_batch_latin_upper(const char *s);
/* Seconds to wait from a Retry-After value (delta-seconds or an HTTP-date) at time now; -1 when
 * malformed. A date in the past gives 0. */
double sg_batch_retry_after(const char *value, gint64 now);
/* Full-jitter backoff before try number attempt (1 = the first retry): uniform in
 * [0, min(cap, base * 2^(attempt-1))]; rnd01 is a uniform random number in [0, 1). */
double sg_batch_backoff(int attempt, double base, double cap, double rnd01);
/* Parses a duration "250ms", "1.5", "30s", "15m", "2h"; -1 when malformed. */
double sg_batch_parse_seconds(const char *s);
/* A curl easy handle set up for a vendor API call: TLS verified (plaintext only with tls off),
 * no redirects, no signals, timeouts. */
void *sg_batch_easy_new(const sg_batch_conn *conn, double timeout, double connect_timeout);
/* One blocking call outside a job's loop (a kind's login) to conn->url: method "GET" or "POST",
 * a JSON body (a GET may carry one, as PILOT's generate_token does), one more header or NULL.
 * SG_OK with *http and *answer (NUL-terminated, g_free), SG_ETEMP when the call failed on its
 * way (*err says how; *permanent when TLS or the URL will not get better by trying again).
 * *retry_after is the answer's Retry-After in seconds, -1 when none. */
sg_status sg_batch_fetch(const sg_batch_conn *conn, const char *method, const char *body,
			 const char *header, double timeout, double connect_timeout, long *http,
			 char **answer, double *retry_after, bool *permanent, char **err);
/* The URL cut before its query string, safe to log; g_free. */
char *sg_batch_redact_url(const char *url);
/* The JSON-escaped string of s for building request bodies; g_free. */
char *sg_batch_json_str(const char *s);
/* Reads a PILOT contracts answer {code, odo, message} (seed 003): SG_OK with *code, and *odo
 * and *message (g_free; "" when absent), or SG_EDATA with *err naming what is wrong (not JSON,
 * no code). code may come as a number or a numeric string, odo as a string or a number. */
sg_status sg_batch_rental_parse(const char *body, size_t len, long *code, char **odo,
				char **message, char **err);

/* ---- jobs by e-mail (SPEC 9, last bullet) ------------------------------------------------ */

/*
 * A job accepted from a message: a row of `jobs` (store.c's schema) with its e-mail facts in
 * `batch_jobs` (created here). Its files live in sg_batch_job_dir(): input.csv (the attachment
 * as received), results.csv and report.eml (the results report while it waits for delivery).
 * States: "pending" (accepted, never advanced), "running" (advanced, rows remain), "done" (ended;
 * the results report is in report_state).
 */
typedef struct {
	gint64 id;
	char *kind;           /* "vin" … */
	char *input_sha256;   /* of input.csv: the journal key */
	gint64 created;
	char *state;          /* "pending", "running", "done" */
	char *owner_email;    /* the sender as stored in the registry */
	char *message_sha256; /* the request's ledger key; names the job's directory */
	char *input_name;     /* the attachment's sanitised name (messages, the results file) */
	char *charset;        /* the attachment's charset label, or NULL */
	char *message_id;     /* the request's Message-ID (threading the results), or NULL */
	char *report_state;   /* "none", "pending", "sent", "written" */
	char *report_path;    /* the spooled results report while pending, or NULL */
	int attempts;         /* tries at delivering the results report */
	gint64 finished;      /* when the job ended, or 0 */
} sg_batch_job;
void sg_batch_job_free(sg_batch_job *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sg_batch_job, sg_batch_job_free)

/* The directory of a job's files: "<[store] path>.jobs/<message_sha256>"; g_free. */
char *sg_batch_job_dir(const sg_config *cfg, const char *message_sha256);
/* Inserts the job (state "pending") and sets job->id. Meant to run inside the caller's
 * transaction, with the ledger record of the message. SG_EIO on a db failure. */
sg_status sg_batch_job_add(sg_store *st, sg_batch_job *job, char **err);
/* Writes state, report_state, report_path, attempts and finished of the job. */
sg_status sg_batch_job_update(sg_store *st, const sg_batch_job *job, char **err);
/* The jobs with work left: not done, or done with the results report pending; oldest first
 * (sg_batch_job *, owned by the array). */
sg_status sg_batch_jobs_open(sg_store *st, GPtrArray **out, char **err);
