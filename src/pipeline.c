/* pipeline.c: one message through the whole job, in the order SPEC 7 fixes: ledger, parse,
 * sender check, files applied with the record in one transaction, then the report. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "batch.h"
#include "log.h"
#include "message.h"
#include "pipeline.h"
#include "report.h"
#include "stock.h"
#include "util.h"

#include <cjson/cJSON.h>

/* The folder for an outcome (NULL: the message stays where it is). */
static const char *folder_for(const sg_config *cfg, const char *outcome, const char *reason)
{
	if (strcmp(outcome, "deferred") == 0)
		return NULL;
	if (strcmp(outcome, "rejected") == 0)
		return cfg->source.rejected_folder;
	if (strcmp(outcome, "failed") == 0 && reason &&
	    (strcmp(reason, "unparseable") == 0 || strcmp(reason, "stale") == 0 ||
	     strcmp(reason, "mirror_unavailable") == 0 || strcmp(reason, "report_unavailable") == 0))
		return cfg->source.failed_folder;
	return cfg->source.processed_folder;
}

/* The addr-spec of a configured address such as "Stock API" <api@example.com>; g_free. */
static char *addr_spec(const char *s)
{
	const char *lt, *gt;

	if (!s)
		return g_strdup("");
	lt = strrchr(s, '<');
	gt = lt ? strchr(lt, '>') : NULL;
	if (lt && gt)
		return g_strndup(lt + 1, gt - lt - 1);
	return g_strstrip(g_strdup(s));
}

static bool is_allowed_type(const sg_config *cfg, const char *type)
{
	for (char **t = cfg->limits.allowed_types; t && *t; t++)
		if (g_ascii_strcasecmp(*t, type) == 0)
			return true;
	return false;
}

static bool is_batch_method(const char *method)
{
	return method && (strcmp(method, "warehouses") != 0 && strcmp(method, "remains") != 0);
}

/* The type checks every attachment passes before it is read (SPEC 5.3); false when fr was
 * rejected. */
static bool check_type(sg_pipeline *p, const sg_attachment *a, sg_file_result *fr)
{
	if (g_ascii_strcasecmp(a->content_type, "application/ms-tnef") == 0) {
		sg_file_reject(fr, "bad_mime_type",
			       "%s is an Outlook winmail.dat: send the message in plain-text "
			       "or HTML format",
			       a->content_type);
		return false;
	}
	if (!is_allowed_type(p->cfg, a->content_type)) {
		sg_file_reject(fr, "bad_mime_type", "type %s is not a CSV type", a->content_type);
		return false;
	}
	return true;
}

/* The text of the reports' language ([report] language): details written here. */
static const char *tr(const sg_config *cfg, const char *en, const char *ru)
	__attribute__((format_arg(2), format_arg(3)));

static const char *tr(const sg_config *cfg, const char *en, const char *ru)
{
	return cfg->report.language && g_ascii_strcasecmp(cfg->report.language, "en") == 0 ? en
											     : ru;
}

/* Applies the message's files for its dealer inside the open transaction. Returns SG_OK, or
 * SG_ETEMP when the mirror is unavailable (*err says why), or a local failure. */
static sg_status apply_files(sg_pipeline *p, const sg_message *msg, const sg_auth *auth,
			     gint64 date, sg_result *r, char **err)
{
	g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

	for (guint i = 0; i < msg->attachments->len; i++) {
		const sg_attachment *a = g_ptr_array_index(msg->attachments, i);
		sg_file_result *fr = sg_file_result_new(a->name);
		sg_status st;

		g_ptr_array_add(r->files, fr);
		if (!check_type(p, a, fr))
			continue;
		sg_stock_ctx ctx = {
			.dealer = auth->dealer,
			.kind = r->method,
			.date = date,
			.dev_mode = auth->dev_mode || p->dry_run,
			.max_rows = p->cfg->limits.max_rows,
			.max_field_length = p->cfg->limits.max_field_length,
			.charset_label = a->charset,
			.seen = seen,
			.mirror = p->dry_run ? NULL : p->mirror,
			.key = msg->key,
		};
		st = sg_stock_apply_bytes(p->store, &ctx, a->name, a->data, fr, err);
		if (st != SG_OK)
			return st;
	}
	return SG_OK;
}

/* Builds the report for r to to (threaded under in_reply_to, with an extra attachment when
 * extra_path is set): *data (g_free), *len. */
static sg_status build_report(sg_pipeline *p, const sg_result *r, const char *to,
			      const char *in_reply_to, const char *extra_name,
			      const char *extra_path, const char *const *files, char **data, size_t *len,
			      char **err)
{
	g_autofree char *msgid = NULL;
	sg_report_opts o = {
		.from = p->cfg->report.from,
		.to = to,
		.bcc = p->cfg->report.bcc,
		.language = p->cfg->report.language,
		.in_reply_to = in_reply_to,
		.method = r->method,
		.extra_name = extra_name,
		.extra_path = extra_path,
		.files = files,
	};

	return sg_report_build(r, &o, data, len, &msgid, err);
}

/* Builds the report (as build_report) and writes it to path, in a directory that exists. */
static sg_status write_report(sg_pipeline *p, const sg_result *r, const char *to,
			      const char *in_reply_to, const char *extra_name,
			      const char *extra_path, const char *const *files, const char *path,
			      char **err)
{
	g_autofree char *data = NULL;
	size_t len = 0;
	sg_status st = build_report(p, r, to, in_reply_to, extra_name, extra_path, files, &data,
				    &len, err);

	if (st != SG_OK)
		return st;
	if (!sg_write_atomic(path, data, len, 0600, err))
		return SG_EIO;
	return SG_OK;
}

/* Sends a report to to (and bcc). Returns the transport's status. */
static sg_status send_report(sg_pipeline *p, const char *data, size_t len, const char *to,
			     char **err)
{
	g_autofree char *from = addr_spec(p->cfg->report.from);
	const char *rcpts[3] = {to, NULL, NULL};

	if (p->cfg->report.bcc && *p->cfg->report.bcc)
		rcpts[1] = p->cfg->report.bcc;
	return p->transport->ops->send(p->transport, from, rcpts, data, len, err);
}

/* Sends a report spooled in a file: a batch job's, or a message's spooled by a stockgate older
 * than the report spool in the db. */
static sg_status send_spooled(sg_pipeline *p, const char *path, const char *to, char **err)
{
	g_autofree char *data = NULL;
	gsize len = 0;
	GError *gerr = NULL;

	if (!g_file_get_contents(path, &data, &len, &gerr)) {
		sg_fail(err, SG_EIO, "%s: %s", path, gerr->message);
		g_error_free(gerr);
		return SG_EIO;
	}
	return send_report(p, data, len, to, err);
}

/*
 * Records what became of a message's report (l: its ledger entry as it is now) and drops the
 * report's spooled copy, in one transaction that does not wait for the disk: this mark lost in
 * an OS crash only makes the report go once more, under its Message-ID. The commits that must
 * be on disk first (the record, before a move) are synced, and the poll flushes this one before
 * it moves the message.
 */
static sg_status report_settled(sg_pipeline *p, const sg_ledger *l, char **err)
{
	/* a poll's commits are all unsynced already (sg_pipeline_handle) */
	sg_status st = p->poll ? SG_OK : sg_store_durable(p->store, false, err);

	/* Written but not synced yet (a poll's chunk), the report stays spooled until it is. */
	bool unsynced = p->transport && p->transport->deferred && l->report_state &&
			strcmp(l->report_state, p->transport->ops->done) == 0;

	if (st == SG_OK && (st = sg_store_begin(p->store, err)) == SG_OK) {
		if ((st = sg_ledger_put(p->store, l, err)) == SG_OK &&
		    (st = unsynced ? sg_report_spool_unsynced(p->store, l->sha256, sg_boot_id(), err)
				   : sg_report_spool_drop(p->store, l->sha256, err)) == SG_OK)
			st = sg_store_commit(p->store, err);
		if (st != SG_OK)
			sg_store_rollback(p->store);
	}
	if (!p->poll && sg_store_durable(p->store, true, st == SG_OK ? err : NULL) != SG_OK &&
	    st == SG_OK)
		st = SG_EIO;
	return st;
}

/* Records the result in the ledger (outside or inside a transaction); settled: the mark of the
 * report's delivery, with its spooled copy dropped (report_settled). */
static sg_status ledger_record(sg_pipeline *p, const sg_source_msg *m, const char *sha,
			const sg_result *r, const char *report_state, bool settled,
			int attempts, gint64 first_seen, char **err)
{
	g_autofree char *json = sg_result_to_json(r);
	sg_ledger l = {
		.sha256 = (char *)sha,
		.source = r->source,
		.mailbox = m->mailbox,
		.uidvalidity = m->uidvalidity,
		.uid = m->uid,
		.message_id = r->message_id,
		.outcome = (char *)r->outcome,
		.reason = (char *)r->reason,
		.result_json = json,
		.report_state = (char *)report_state,
		.attempts = attempts,
		.first_seen = first_seen,
		.updated = sg_now(),
	};

	if (p->dry_run)
		return SG_OK;
	return settled ? report_settled(p, &l, err) : sg_ledger_put(p->store, &l, err);
}

/* The static outcome string equal to s (outcomes read back from the ledger). */
static const char *static_outcome(const char *s)
{
	static const char *const all[] = {"applied", "partial", "failed",  "rejected",
					  "duplicate", "deferred", NULL};

	for (int i = 0; s && all[i]; i++)
		if (strcmp(s, all[i]) == 0)
			return all[i];
	return "failed";
}

/* A copy of a record with outcome, reason and report replaced (NULL: kept as they are), and
 * its "from" copied to *from when asked; g_free. */
static char *record_with(const char *json, const char *outcome, const char *reason,
			 const char *report, char **from)
{
	const char *names[] = {"outcome", "reason", "report"};
	const char *values[] = {outcome, reason, report};
	cJSON *j = cJSON_Parse(json ? json : "{}");
	char *s;

	if (!j)
		return g_strdup(json ? json : "{}");
	for (int i = 0; i < 3; i++)
		if (values[i])
			cJSON_ReplaceItemInObject(j, names[i], cJSON_CreateString(values[i]));
	if (from) {
		cJSON *f = cJSON_GetObjectItem(j, "from");
		*from = cJSON_IsString(f) ? g_strdup(f->valuestring) : NULL;
	}
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

/* Whether a deferred message has used up its attempts or its time. */
static bool defer_exhausted(const sg_config *cfg, int attempts, gint64 first_seen)
{
	if (cfg->source.max_attempts > 0 && attempts >= cfg->source.max_attempts)
		return true;
	return cfg->source.max_defer > 0 && sg_now() - first_seen >= cfg->source.max_defer;
}

/*
 * Whether `poll` may try a deferred message again: retry_interval after its first try, then
 * twice as long after each further one, at most max_defer / max_attempts apart, so that the
 * tries last through an outage instead of being used up in its first minutes (0: every poll).
 */
static bool retry_due(const sg_config *cfg, const sg_ledger *l)
{
	gint64 d = cfg->source.retry_interval, cap;

	if (d <= 0)
		return true;
	cap = cfg->source.max_defer > 0 && cfg->source.max_attempts > 0
		  ? cfg->source.max_defer / cfg->source.max_attempts
		  : d * 64;
	cap = MAX(cap, d);
	for (int i = 1; i < l->attempts && d < cap; i++)
		d *= 2;
	return sg_now() >= l->updated + MIN(d, cap);
}

/* A deferred message (reason: of the record, NULL: as recorded) whose next try is not due: it
 * stays, with the record of its last try. */
static sg_status not_due(const sg_ledger *l, const char *reason, char **out, const char **outcome,
			 const char **folder)
{
	log_debug("%s: deferred, not tried again yet (%d tries)",
		  l->message_id ? l->message_id : l->sha256, l->attempts);
	*out = record_with(l->result_json, "deferred", reason, NULL, NULL);
	*outcome = "deferred";
	*folder = NULL;
	return SG_OK;
}

/* Whether m is the very message l recorded (not another copy of its bytes): the same IMAP
 * (mailbox, UIDVALIDITY, UID), or the same Maildir name (unique in its Maildir). */
static bool same_message(const sg_source_msg *m, const sg_ledger *l)
{
	if (m->mailbox || l->mailbox)
		return m->mailbox && l->mailbox && strcmp(m->mailbox, l->mailbox) == 0 &&
		       m->uidvalidity == l->uidvalidity && m->uid == l->uid;
	return g_str_has_prefix(m->id, "maildir:") && l->source && strcmp(m->id, l->source) == 0;
}

/*
 * A message whose outcome is in the ledger. Its report still pending (the transport was down, or
 * a crash came between the commit and the report): send it, and give the stored record,
 * resumed. The same message seen again (a crash before its move): its record, resumed. Another
 * copy of its bytes: nothing is done again, duplicate.
 */
static sg_status resume(sg_pipeline *p, const sg_source_msg *m, sg_ledger *l, char **out,
			const char **outcome, const char **folder, char **err)
{
	bool same = same_message(m, l);
	bool pending = l->report_state && strcmp(l->report_state, "pending") == 0;
	bool lost = false;
	sg_status lst;

	/* Written to the outbox but not synced when the machine went down (or the sync failed):
	 * the file may be gone, so the report goes again (SPEC 7: at worst twice). */
	if (!pending && p->transport && !p->dry_run &&
	    (lst = sg_report_spool_lost(p->store, l->sha256, sg_boot_id(), &lost, err)) != SG_OK)
		return lst;
	if (lost) {
		log_warnx("%s: the report written before the machine went down may be lost: sent "
			  "again", m->id);
		pending = true;
	}

	/* A report is spaced like a message once a retry of it has failed: the first retry comes at
	 * the next poll, as after a crash between the commit and the send. */
	if (pending && p->transport && !p->dry_run && p->poll && l->attempts > 1 &&
	    !retry_due(p->cfg, l))
		return not_due(l, "report_unavailable", out, outcome, folder);
	if (pending && p->transport && !p->dry_run) {
		g_autofree char *from = NULL, *e = NULL;
		g_autofree char *rec = record_with(l->result_json, NULL, NULL, NULL, &from);
		g_autoptr(sg_user) u = NULL;
		sg_status st = SG_ENOINPUT;

		bool tried = false;

		if (from && sg_user_get(p->store, from, &u, NULL) == SG_OK && l->report_path) {
			/* A file spooled by an older stockgate. It goes only after a delivery:
			 * without it, a crash came between the delivery and its record, and the
			 * report is not sent again. */
			if (access(l->report_path, F_OK) != 0 && errno == ENOENT)
				st = SG_OK;
			else
				st = send_spooled(p, l->report_path, u->email, &e);
			tried = true;
		} else if (u) {
			g_autofree char *data = NULL;
			gsize len = 0;

			st = sg_report_spool_get(p->store, l->sha256, &data, &len, &e);
			if (st != SG_OK && st != SG_ENOINPUT)
				return sg_fail(err, st, "%s: %s", m->id, e);
			if (st == SG_OK)
				st = send_report(p, data, len, u->email, &e);
			tried = true;
		}
		if (st == SG_OK) {
			g_free(l->report_state);
			l->report_state = g_strdup(p->transport->ops->done);
			char *json = record_with(l->result_json, NULL, NULL, p->transport->ops->done, NULL);
			g_free(l->result_json);
			l->result_json = json;
			if (l->report_path)
				unlink(l->report_path);
			g_clear_pointer(&l->report_path, g_free);
		} else if (st == SG_ETEMP && !defer_exhausted(p->cfg, l->attempts + 1,
							      l->first_seen)) {
			log_warnx("%s: report still not delivered: %s", m->id, e ? e : "");
			l->attempts++;
			l->updated = sg_now();
			if (sg_ledger_put(p->store, l, err) != SG_OK)
				return SG_EIO;
			*out = record_with(rec, "deferred", "report_unavailable", NULL, NULL);
			*outcome = "deferred";
			*folder = NULL;
			return SG_OK;
		} else {
			log_warnx("%s: report given up: %s", m->id, e ? e : "no such user");
			g_free(l->report_state);
			l->report_state = g_strdup("none");
			if (tried && st == SG_ETEMP) {
				/* Out of attempts (SPEC 7): failed, report_unavailable, to
				 * failed_folder; what was applied stays applied. A report refused
				 * for good (5xx) is only given up. */
				char *json = record_with(l->result_json, "failed", "report_unavailable",
						  "none", NULL);
				g_free(l->result_json);
				l->result_json = json;
				g_free(l->outcome);
				l->outcome = g_strdup("failed");
				g_free(l->reason);
				l->reason = g_strdup("report_unavailable");
				if (l->report_path)
					unlink(l->report_path);
				g_clear_pointer(&l->report_path, g_free);
			}
		}
		l->updated = sg_now();
		if (report_settled(p, l, err) != SG_OK)
			return SG_EIO;
		*out = sg_record_resumed(l->result_json);
		*outcome = static_outcome(l->outcome);
		*folder = folder_for(p->cfg, l->outcome, l->reason);
		return SG_OK;
	}
	if (same) {
		/* Handled and recorded, then a crash came before its move: the same message, not
		 * a copy. Its record again, counted once, and on to where its outcome sends it. */
		*out = sg_record_resumed(l->result_json);
		*outcome = static_outcome(l->outcome);
		*folder = folder_for(p->cfg, l->outcome, l->reason);
		return SG_OK;
	}
	if (!p->dry_run && sg_ledger_count_duplicate(p->store, l->sha256, err) != SG_OK)
		return SG_EIO;
	g_autoptr(sg_result) r = sg_result_new(m->id);
	cJSON *j = cJSON_Parse(l->result_json ? l->result_json : "{}");
	r->outcome = "duplicate";
	r->report = "none";
	r->message_id = g_strdup(l->message_id);
	if (j) {
		/* Who sent it and what it asked, as recorded the first time. */
		char **fields[] = {&r->from, &r->dealer, &r->method};
		const char *names[] = {"from", "dealer", "method"};
		for (int i = 0; i < 3; i++) {
			cJSON *f = cJSON_GetObjectItem(j, names[i]);
			if (cJSON_IsString(f))
				*fields[i] = g_strdup(f->valuestring);
		}
		r->dev_mode = cJSON_IsTrue(cJSON_GetObjectItem(j, "dev_mode"));
		cJSON_Delete(j);
	}
	*out = sg_result_to_json(r);
	*outcome = r->outcome;
	/* Another copy of handled bytes is a duplicate for the processed folder. */
	*folder = p->cfg->source.processed_folder;
	return SG_OK;
}

/* Fills the record's sender fields from the message and the sender check. */
static void set_sender(sg_result *r, const sg_message *msg, const sg_auth *a, const char *method)
{
	if (msg) {
		g_free(r->message_id);
		r->message_id = g_strdup(msg->message_id);
		g_free(r->from);
		r->from = g_strdup(msg->from);
	}
	g_free(r->dealer);
	r->dealer = g_strdup(a->dealer);
	g_free(r->method);
	r->method = g_strdup(method);
	r->dev_mode = a->dev_mode;
}

/* The name of the list a batch message carries (its one attachment). */
static const char *msg_list_name(const sg_message *msg)
{
	const sg_attachment *a = msg && msg->attachments->len ? msg->attachments->pdata[0] : NULL;

	return a ? a->name : "list.csv";
}

/* "vins.csv" → "vins-results.csv" (what), the name of a file sent back for a list; g_free. */
static char *results_name(const char *input_name, const char *what)
{
	const char *dot = input_name ? strrchr(input_name, '.') : NULL;
	g_autofree char *stem = NULL;

	if (input_name == NULL || *input_name == '\0')
		input_name = "list.csv";
	stem = dot && dot != input_name ? g_strndup(input_name, (gsize)(dot - input_name))
					 : g_strdup(input_name);
	return g_strdup_printf("%s-%s.csv", stem, what);
}

/* A new file in the scratch directory holding data (NULL: empty), for the batch engine, which
 * reads and writes by path: *path (g_free; the caller unlinks it). SG_EIO with *err. */
static sg_status scratch_write(const char *prefix, GBytes *data, char **path, char **err)
{
	gsize len = 0;
	const void *bytes = data ? g_bytes_get_data(data, &len) : NULL;
	int fd = sg_scratch_file(prefix, path, err);
	bool ok;

	if (fd < 0)
		return SG_EIO;
	ok = len == 0 || sg_write_all(fd, bytes, len);
	if (!ok)
		sg_fail(err, SG_EIO, "%s: %s", *path, g_strerror(errno));
	if (close(fd) != 0 && ok)
		ok = !sg_fail(err, SG_EIO, "%s: %s", *path, g_strerror(errno));
	if (!ok) {
		unlink(*path);
		g_clear_pointer(path, g_free);
	}
	return ok ? SG_OK : SG_EIO;
}

/*
 * A batch job by e-mail (SPEC 9): the message's one attachment is the list. It is read and
 * validated as `batch --dry-run` would (the kind's section must be configured); when it is
 * usable the list is kept in the job's directory and the job is added to `jobs` inside a
 * transaction opened here (*in_tx), which the caller commits with the ledger record. The
 * record's one file is applied with its data rows counted, or rejected with a file reason.
 * Kinds this gateway does not run, or has no configuration for, fail unknown_method; more than
 * one attachment fails too_many_attachments: a paid job is never run on a guess at which file
 * was meant. In development mode or a dry run nothing is registered; in development mode
 * *check_csv names the checked list for the report (g_free).
 */
static sg_status batch_accept_list(sg_pipeline *p, const sg_source_msg *m,
				   const sg_message *msg, const sg_auth *auth, const char *sha,
				   const char *list, const char *check, sg_result *r, bool *in_tx,
				   char **check_csv, char **err)
{
	const sg_config *cfg = p->cfg;
	const sg_batch_kind *kind = sg_batch_kind_find(r->method);
	const sg_attachment *a;
	sg_file_result *fr;
	sg_batch_opts o;
	sg_batch_summary sum;
	g_autofree char *e = NULL, *dir = NULL, *input = NULL;
	g_autoptr(sg_batch_job) job = NULL;
	gsize len = 0;
	const void *bytes;
	sg_status st;

	if (kind == NULL) {
		r->outcome = "failed";
		r->reason = "unknown_method";
		r->detail = g_strdup_printf(tr(cfg, "%s lookups are not available on this gateway yet.",
					       "Проверки %s на этом шлюзе пока недоступны."),
					    r->method);
		return SG_OK;
	}
	if (msg->attachments->len > 1) {
		r->outcome = "failed";
		r->reason = "too_many_attachments";
		r->detail = g_strdup_printf(
			tr(cfg, "A %s lookup takes one CSV list; this message has %u attachments. Send "
				"one list per message.",
			   "Для проверки %s нужен один CSV-список, а в письме вложений: %u. Отправляйте "
			   "по одному списку в письме."),
			r->method, msg->attachments->len);
		return SG_OK;
	}
	a = g_ptr_array_index(msg->attachments, 0);
	fr = sg_file_result_new(a->name);
	g_ptr_array_add(r->files, fr);
	if (!check_type(p, a, fr)) {
		sg_result_settle(r);
		return SG_OK;
	}

	/* The list as the job will read it; the dry run makes no call and writes no journal. */
	sg_batch_opts_init(&o);
	o.input = list;
	o.charset_label = a->charset;
	o.output = check;
	o.dry_run = true;
	o.name = a->name;
	o.max_rows = cfg->limits.max_rows;
	o.max_field_length = cfg->limits.max_field_length;
	st = sg_batch_run(kind, cfg, p->store, &o, &sum, &e);
	if (st == SG_ECONFIG) {
		log_warnx("%s: %s lookups are not configured: %s", m->id, kind->name, e ? e : "");
		g_ptr_array_set_size(r->files, 0);
		r->outcome = "failed";
		r->reason = "unknown_method";
		r->detail = g_strdup_printf(tr(cfg, "%s lookups are not configured on this gateway: "
						    "please ask its operator.",
					       "Проверки %s на этом шлюзе не настроены: обратитесь "
					       "к администратору."),
					    kind->name);
		return SG_OK;
	}
	fr->encoding = sum.encoding;
	fr->delimiter = sum.delimiter;
	if (st == SG_EDATA) {
		sg_file_reject(fr, sum.reason ? sum.reason : "malformed_csv", "%s", e ? e : "");
		sg_result_settle(r);
		return SG_OK;
	}
	if (st != SG_OK)
		return sg_fail(err, st, "%s: %s", m->id, e ? e : "cannot read the list");
	fr->rows = sum.rows;
	if (sum.rows == 0) {
		sg_file_reject(fr, "empty_file", "the list has a header but no rows");
		sg_result_settle(r);
		return SG_OK;
	}
	fr->applied = true;
	sg_result_settle(r);
	if (auth->dev_mode) {
		r->detail = g_strdup_printf(
			tr(cfg, "The list was checked: %ld rows, %ld of them invalid (see the attached "
				"file). Development mode: no lookup was made.",
			   "Список проверен: строк %ld, из них с ошибками %ld (см. приложенный файл). "
			   "Режим разработки: проверки не выполнялись."),
			sum.rows, sum.invalid);
		*check_csv = g_strdup(check);
		return SG_OK;
	}
	if (p->dry_run)
		return SG_OK;

	/* The list is kept before the commit that records the job (the next run of this message
	 * writes the same file again if a crash comes first). */
	dir = sg_batch_job_dir(cfg, sha);
	if (g_mkdir_with_parents(dir, 0700) != 0)
		return sg_fail(err, SG_EIO, "%s: cannot create the job directory: %s", dir,
			       g_strerror(errno));
	input = g_build_filename(dir, "input.csv", NULL);
	bytes = a->data ? g_bytes_get_data(a->data, &len) : NULL;
	if (!sg_write_atomic(input, bytes ? bytes : "", len, 0600, err))
		return SG_EIO;
	job = g_new0(sg_batch_job, 1);
	job->kind = g_strdup(kind->name);
	job->input_sha256 = sg_sha256_file(input);
	job->created = sg_now();
	job->owner_email = g_strdup(auth->reply_to);
	job->message_sha256 = g_strdup(sha);
	job->input_name = g_strdup(a->name);
	job->charset = g_strdup(a->charset);
	job->message_id = g_strdup(msg->message_id);
	if (job->input_sha256 == NULL)
		return sg_fail(err, SG_EIO, "%s: cannot read: %s", input, g_strerror(errno));
	if ((st = sg_store_begin(p->store, err)) != SG_OK)
		return st;
	*in_tx = true;
	if ((st = sg_batch_job_add(p->store, job, err)) != SG_OK)
		return st;
	r->detail = g_strdup_printf(
		tr(cfg, "Lookup job %" G_GINT64_FORMAT " was accepted: %ld rows, %ld of them invalid "
			"(they are not sent). The results will come in a separate message when the job "
			"ends.",
		   "Задание %" G_GINT64_FORMAT " принято: строк %ld, из них с ошибками %ld (они не "
		   "отправляются). Результаты придут отдельным письмом, когда задание завершится."),
		job->id, sum.rows, sum.invalid);
	if (strcmp(kind->name, "vin") == 0 && cfg->vin.callback_secret) {
		/* The reports come back through `serve`; the results wait for them. */
		char *more = g_strconcat(r->detail, tr(cfg, " The reports will follow with the "
			"results, as the service delivers them.", " Отчёты придут вместе с "
			"результатами, когда сервис их пришлёт."), NULL);
		g_free(r->detail);
		r->detail = more;
	}
	log_info("%s: job %" G_GINT64_FORMAT ": %s list %s, %ld rows, for %s", m->id, job->id,
		 kind->name, a->name, sum.rows, auth->reply_to);
	return SG_OK;
}

/* batch_accept_list over the message's one attachment, written for the batch engine to a file
 * of its own in the scratch directory, with the file the check is written to; both go when
 * the message is done (the check stays as *check_csv for the report, unlinked with it). */
static sg_status batch_accept(sg_pipeline *p, const sg_source_msg *m, const sg_message *msg,
			      const sg_auth *auth, const char *sha, sg_result *r, bool *in_tx,
			      char **check_csv, char **err)
{
	const sg_attachment *a = msg->attachments->len == 1 ? msg->attachments->pdata[0] : NULL;
	g_autofree char *list = NULL, *check = NULL;
	sg_status st;

	if ((st = scratch_write("list", a ? a->data : NULL, &list, err)) != SG_OK)
		return st;
	if ((st = scratch_write("check", NULL, &check, err)) != SG_OK) {
		unlink(list);
		return st;
	}
	st = batch_accept_list(p, m, msg, auth, sha, list, check, r, in_tx, check_csv, err);
	unlink(list);
	if (*check_csv == NULL)
		unlink(check);
	return st;
}

/* One message on its way through the stages of sg_pipeline_handle. */
typedef struct {
	sg_pipeline *p;
	const sg_source_msg *m;
	sg_message_limits lim;
	sg_result *r;
	sg_message *msg;     /* NULL when not parsed (stale, too large, unparseable) */
	sg_ledger *prev;     /* the ledger's entry for these bytes, or NULL */
	char *sha;           /* the message's SHA-256, its key in the ledger */
	char *e;             /* the parser's or the mirror's detail */
	char *check_csv;     /* a development-mode batch list checked, for the report */
	char *report;        /* the report built, spooled with the record, sent after it */
	size_t report_len;
	sg_auth auth;
	const char *why;     /* the parser's reason (too_complex, …) */
	const char *method;  /* the subject's method, or NULL */
	gint64 now, first_seen;
	int attempts;
	bool stale, too_large;
	bool answer;         /* the sender gets a report */
	bool in_tx;          /* a store transaction is open */
	bool report_pending; /* a report is spooled, to send after the commit */
	sg_status parsed;
} handling;

static void handling_clear(handling *h)
{
	if (h->in_tx)
		sg_store_rollback(h->p->store);
	sg_auth_clear(&h->auth);
	sg_result_free(h->r);
	g_clear_pointer(&h->msg, sg_message_free);
	g_clear_pointer(&h->prev, sg_ledger_free);
	g_free(h->sha);
	g_free(h->e);
	if (h->check_csv)
		unlink(h->check_csv);
	g_free(h->check_csv);
	g_free(h->report);
}

static sg_message_limits limits_of(const sg_config *cfg)
{
	return (sg_message_limits){
	    .max_message_size = cfg->limits.max_message_size,
	    .max_header_size = cfg->limits.max_header_size,
	    .max_mime_depth = cfg->limits.max_mime_depth,
	    .max_parts = cfg->limits.max_parts,
	    .max_attachments = cfg->limits.max_attachments,
	    .cpu_seconds = cfg->limits.parse_cpu_seconds,
	};
}

/* Stale stock is not processed in a poll (and an old mailbox does not flood replies). */
static bool is_stale(const sg_pipeline *p, const sg_source_msg *m, gint64 now)
{
	const sg_config *cfg = p->cfg;

	return p->poll && cfg->source.max_age > 0 && m->received > 0 &&
	       now - m->received > cfg->source.max_age;
}

static bool is_too_large(const sg_pipeline *p, const sg_source_msg *m)
{
	return !m->path || (p->cfg->limits.max_message_size > 0 &&
			    m->size > p->cfg->limits.max_message_size);
}

/* Read: the message parsed in the worker while this process hashes it (the hash says whether it
 * is new; when it is not, the parse is dropped), and the next message's parse started, to run
 * in the worker while this one is applied here. A stale one is parsed too, for its record's
 * sender (5.7); too large: only hashed (authenticate reads its header block). */
static sg_status read_message(handling *h, char **err)
{
	const sg_source_msg *m = h->m, *next = h->p->next;

	/* Every run that reads mail makes its scratch directory, which sweeps away what killed
	 * runs left there (t027), even when this one writes nothing to it. */
	sg_scratch_dir(NULL);
	if (!h->too_large)
		h->parsed = sg_message_parse_hashed(m->path, &h->lim, &h->msg, &h->why, &h->sha,
						    &h->e);
	else if (m->path)
		h->sha = sg_sha256_file(m->path);
	else
		h->sha = sg_sha256_hex(m->id, strlen(m->id));
	if (next && !is_too_large(h->p, next))
		sg_message_parse_ahead(next->path, &h->lim);
	if (!h->sha)
		return sg_fail(err, SG_EIO, "%s: cannot read the message: %s", m->id,
			       g_strerror(errno));
	return SG_OK;
}

/* The ledger's entry for the message, if any; a deferred one counts its tries. */
static sg_status look_up(handling *h, char **err)
{
	sg_status st = sg_ledger_get(h->p->store, h->sha, &h->prev, err);

	if (st == SG_ENOINPUT) {
		g_clear_pointer(err, g_free);
		return SG_OK;
	}
	if (st == SG_OK && strcmp(h->prev->outcome, "deferred") == 0) {
		h->attempts = h->prev->attempts + 1;
		h->first_seen = h->prev->first_seen;
	}
	return st;
}

/* A message that is not read as a whole (stale, too large, too complex, unparseable) fails;
 * too_large and too_complex are answered only when From is a user with the role, stale and
 * unparseable never. The record names the sender whenever its headers were read. */
static sg_status fail_unread(handling *h, const char *reason, char **err)
{
	sg_pipeline *p = h->p;
	sg_result *r = h->r;
	sg_status st;

	r->outcome = "failed";
	r->reason = reason;
	r->detail = g_strdup(h->e);
	log_warnx("%s: %s%s%s", h->m->id, reason, h->e ? ": " : "", h->e ? h->e : "");
	if (h->msg) {
		/* The record names the sender whenever the headers were read (5.7). */
		h->method = sg_subject_method(h->msg->subject);
		st = sg_auth_check_unkeyed(p->store, h->msg, h->method,
					   p->cfg->security.trusted_authserv_id, &h->auth, err);
		if (st != SG_OK)
			return st;
		set_sender(r, h->msg, &h->auth, h->method);
		h->answer = (strcmp(reason, "too_large") == 0 || strcmp(reason, "too_complex") == 0) &&
			    !h->auth.reason && !h->auth.automatic;
	}
	return SG_OK;
}

/* Authenticate: who sent it and what it asks (SPEC 5.1-5.3). Sets the outcome when the message
 * goes no further (stale, unreadable, rejected, no method, no or too many attachments). */
static sg_status authenticate(handling *h, char **err)
{
	sg_pipeline *p = h->p;
	const sg_config *cfg = p->cfg;
	sg_result *r = h->r;
	sg_message *msg;
	sg_status st;

	if (h->too_large && h->m->path) {
		/* Only the headers are read, for the reply decision and the record. */
		const char *ignored = NULL;
		sg_message_parse(h->m->path, &h->lim, &h->msg, &ignored, NULL);
	}
	if (h->stale) {
		/* Parsed for its headers alone: what the parser said of the rest is no reason. */
		g_clear_pointer(&h->e, g_free);
		return fail_unread(h, "stale", err);
	}
	if (h->too_large)
		return fail_unread(h, "too_large", err);
	if (h->parsed != SG_OK && h->parsed != SG_EDATA)
		return sg_fail(err, h->parsed, "%s: %s", h->m->id, h->e ? h->e : "cannot parse");
	if (h->why || h->parsed == SG_EDATA)
		return fail_unread(h, h->why ? h->why : "unparseable", err);

	msg = h->msg;
	h->method = sg_subject_method(msg->subject);
	st = sg_auth_check(p->store, msg, h->method, cfg->security.trusted_authserv_id, &h->auth,
			   err);
	if (st != SG_OK)
		return st;
	set_sender(r, msg, &h->auth, h->method);
	if (h->auth.reason) {
		r->outcome = "rejected";
		r->reason = h->auth.reason;
		log_info("%s: rejected silently: %s (from %s)", h->m->id, h->auth.reason,
			 msg->from ? msg->from : "nobody");
		return SG_OK;
	}
	h->answer = !h->auth.automatic;
	if (!h->method)
		r->reason = "unknown_method";
	else if (msg->attachments->len == 0)
		r->reason = "no_attachments";
	else if (cfg->limits.max_attachments > 0 &&
		 msg->attachments->len > (guint)cfg->limits.max_attachments)
		r->reason = "too_many_attachments";
	if (r->reason)
		r->outcome = "failed";
	return SG_OK;
}

/* Apply: the files applied for the dealer in a transaction left open for the record (a batch
 * list becomes a job instead). The mirror down: nothing applied, the message deferred. */
static sg_status apply(handling *h, char **err)
{
	sg_pipeline *p = h->p;
	sg_result *r = h->r;
	const sg_message *msg = h->msg;
	sg_status st;

	if (r->outcome)
		return SG_OK;
	if (is_batch_method(h->method))
		return batch_accept(p, h->m, msg, &h->auth, h->sha, r, &h->in_tx, &h->check_csv,
				    err);
	if ((st = sg_store_begin(p->store, err)) != SG_OK)
		return st;
	h->in_tx = true;
	st = apply_files(p, msg, &h->auth, msg->date >= 0 ? msg->date : h->first_seen, r, &h->e);
	if (st == SG_ETEMP) {
		/* The mirror is down: nothing is applied; try again at the next poll. */
		sg_store_rollback(p->store);
		h->in_tx = false;
		g_ptr_array_set_size(r->files, 0);
		r->reason = "mirror_unavailable";
		r->detail = g_strdup(h->e);
		log_warnx("%s: deferred: %s", h->m->id, h->e ? h->e : "mirror unavailable");
		if (defer_exhausted(p->cfg, h->attempts, h->first_seen)) {
			r->outcome = "failed";
		} else {
			r->outcome = "deferred";
			h->answer = false;
		}
		return SG_OK;
	}
	if (st != SG_OK)
		return sg_fail(err, st, "%s: %s", h->m->id, h->e ? h->e : "cannot apply");
	sg_result_settle(r);
	return SG_OK;
}

/* Answer: the report is built before the commit that records the message, and spooled in that
 * same transaction, so that a crash after the commit still finds it; it is sent after it. */
static sg_status answer(handling *h, char **err)
{
	sg_pipeline *p = h->p;
	g_autofree char *check_name = NULL;
	sg_status st;

	if (!h->answer || !p->transport || p->dry_run || !h->auth.reply_to)
		return SG_OK;
	if (h->check_csv)
		check_name = results_name(msg_list_name(h->msg), "check");
	st = build_report(p, h->r, h->auth.reply_to, h->msg ? h->msg->message_id : NULL, check_name,
			  h->check_csv, NULL, &h->report, &h->report_len, err);
	if (st == SG_OK)
		h->report_pending = true;
	return st;
}

/* Record: the ledger entry and the report committed with what was applied, one commit (synced
 * but in a poll, which syncs a chunk's records before it moves them; a dry run keeps nothing). */
static sg_status record(handling *h, char **err)
{
	sg_pipeline *p = h->p;
	sg_status st;

	if (p->dry_run) {
		if (h->in_tx)
			sg_store_rollback(p->store);
		h->in_tx = false;
		return SG_OK;
	}
	if (!h->in_tx) {
		if ((st = sg_store_begin(p->store, err)) != SG_OK)
			return st;
		h->in_tx = true;
	}
	st = ledger_record(p, h->m, h->sha, h->r, h->report_pending ? "pending" : "none", false,
			   h->attempts, h->first_seen, err);
	if (st == SG_OK && h->report_pending)
		st = sg_report_spool_put(p->store, h->sha, h->report, h->report_len, err);
	if (st == SG_OK) {
		st = sg_store_commit(p->store, err);
		/* A failed COMMIT (disk full) leaves the transaction open: the clean-up rolls it
		 * back, or every later message of a daemon would fail to begin its own. */
		if (st == SG_OK)
			h->in_tx = false;
	}
	return st;
}

/* Deliver: the report sent and its delivery recorded; the record line and the folder
 * the message goes to. A report the transport cannot take now defers the message. */
static sg_status deliver(handling *h, char **out, const char **outcome, const char **folder,
			 char **err)
{
	sg_pipeline *p = h->p;
	sg_result *r = h->r;
	sg_status st;

	if (h->report_pending) {
		g_autofree char *se = NULL;

		st = send_report(p, h->report, h->report_len, h->auth.reply_to, &se);
		if (st != SG_OK) {
			/* Applied and recorded; the report waits for the next poll. */
			g_autofree char *json = sg_result_to_json(r);

			log_warnx("%s: report not delivered, will retry: %s", h->m->id,
				  se ? se : "transport failure");
			*out = record_with(json, "deferred", "report_unavailable", NULL, NULL);
			*outcome = "deferred";
			*folder = NULL;
			return SG_OK;
		}
		r->report = p->transport->ops->done;
		sg_crash_point("after_report");
		st = ledger_record(p, h->m, h->sha, r, r->report, true, h->attempts, h->first_seen,
				   err);
		if (st != SG_OK)
			return st;
	}
	*out = sg_result_to_json(r);
	*outcome = r->outcome;
	*folder = folder_for(p->cfg, r->outcome, r->reason);
	return SG_OK;
}

sg_status sg_pipeline_handle(sg_pipeline *p, const sg_source_msg *m, char **out,
			     const char **outcome, const char **folder, char **err)
{
	handling h = {
		.p = p,
		.m = m,
		.lim = limits_of(p->cfg),
		.r = sg_result_new(m->id),
		.now = sg_now(),
		.attempts = 1,
		.parsed = SG_OK,
	};
	sg_status st;

	h.first_seen = h.now;
	h.stale = is_stale(p, m, h.now);
	h.too_large = is_too_large(p, m);

	/* A poll's commits do not wait for the disk: the only effect that must follow them, the
	 * move out of the mailbox, comes after the chunk's WAL sync (sg_store_flush in cmd-poll.c);
	 * lost in an OS crash before it, a message is handled again (its report sent twice). */
	if (p->poll && (st = sg_store_durable(p->store, false, err)) != SG_OK)
		goto out;
	if ((st = read_message(&h, err)) != SG_OK || (st = look_up(&h, err)) != SG_OK)
		goto out;
	if (h.prev && strcmp(h.prev->outcome, "deferred") != 0) {
		st = resume(p, m, h.prev, out, outcome, folder, err);
		goto out;
	}
	if (h.prev && p->poll && !retry_due(p->cfg, h.prev)) {
		st = not_due(h.prev, NULL, out, outcome, folder);
		goto out;
	}
	if ((st = authenticate(&h, err)) != SG_OK || (st = apply(&h, err)) != SG_OK ||
	    (st = answer(&h, err)) != SG_OK || (st = record(&h, err)) != SG_OK)
		goto out;
	sg_crash_point("after_apply");
	st = deliver(&h, out, outcome, folder, err);
out:
	handling_clear(&h);
	if (p->poll && sg_store_durable(p->store, true, st == SG_OK ? err : NULL) != SG_OK &&
	    st == SG_OK)
		st = SG_EIO;
	return st;
}

/* ---- batch jobs by e-mail ------------------------------------------------------------------ */

/* Removes a job's directory (its list, results and report) once nothing needs it. */
static void job_dir_remove(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;

	if (d == NULL)
		return;
	while ((name = g_dir_read_name(d)) != NULL) {
		g_autofree char *f = g_build_filename(dir, name, NULL);
		unlink(f);
	}
	g_dir_close(d);
	if (rmdir(dir) != 0)
		log_warnx("%s: cannot remove: %s", dir, g_strerror(errno));
}

/* Sends a done job's spooled results report to its owner, and records what became of it. */
static sg_status job_deliver(sg_pipeline *p, sg_batch_job *job, sg_jobs_pass *out, char **err)
{
	g_autofree char *e = NULL, *dir = sg_batch_job_dir(p->cfg, job->message_sha256);
	sg_auth a = {0};
	sg_status st, sent = SG_ENOINPUT;

	if (p->transport == NULL) {
		out->reports_pending++;
		return SG_OK;
	}
	if ((st = sg_auth_sender(p->store, job->owner_email, job->kind, &a, err)) != SG_OK)
		return st;
	/* Results go only to a user who still has the role, at the address the registry holds. */
	if (a.reason == NULL && job->report_path)
		sent = send_spooled(p, job->report_path, a.reply_to, &e);
	job->attempts++;
	g_clear_pointer(&job->report_state, g_free);
	if (sent == SG_OK) {
		job->report_state = g_strdup(p->transport->ops->done);
		g_clear_pointer(&job->report_path, g_free);
		out->reports++;
		log_info("job %" G_GINT64_FORMAT ": results %s to %s", job->id,
			 p->transport->ops->done, a.reply_to);
	} else if (a.reason || sent == SG_EUNAVAIL || sent == SG_EDATA || sent == SG_ENOINPUT ||
		   defer_exhausted(p->cfg, job->attempts, job->finished)) {
		job->report_state = g_strdup("none");
		log_warnx("job %" G_GINT64_FORMAT ": results report given up (%s); the results stay "
			  "in %s", job->id, a.reason ? a.reason : e ? e : "no report", dir);
	} else {
		job->report_state = g_strdup("pending");
		out->reports_pending++;
		log_warnx("job %" G_GINT64_FORMAT ": results report not delivered, will retry: %s",
			  job->id, e ? e : "transport failure");
	}
	sg_auth_clear(&a);
	if ((st = sg_batch_job_update(p->store, job, err)) != SG_OK)
		return st;
	if (sent == SG_OK)
		job_dir_remove(dir);
	return SG_OK;
}

/*
 * Ends a job: outcome NULL (it ran to its end: the report says "processed") or "failed" with
 * detail; results (may be NULL) is attached. The report is spooled in the job's directory
 * before the commit that marks the job done, then delivered. to NULL: no report.
 */
static sg_status job_end(sg_pipeline *p, sg_batch_job *job, const char *outcome,
			 const char *detail, const char *results, const char *to,
			 sg_jobs_pass *out, char **err)
{
	g_autofree char *dir = sg_batch_job_dir(p->cfg, job->message_sha256);
	g_autofree char *src = g_strdup_printf("job:%" G_GINT64_FORMAT, job->id);
	g_autofree char *path = NULL, *name = NULL;
	g_autoptr(sg_result) r = sg_result_new(src);
	sg_status st;

	r->message_id = g_strdup(job->message_id);
	r->from = g_strdup(job->owner_email);
	r->method = g_strdup(job->kind);
	r->outcome = outcome;
	r->detail = g_strdup(detail);
	if (to && p->transport) {
		path = g_build_filename(dir, "report.eml", NULL);
		name = results_name(job->input_name, "results");
		/* A VIN list's reports go with its results, up to [report] max_attachment_size. */
		g_autoptr(GPtrArray) files = results && strcmp(job->kind, "vin") == 0
			? sg_batch_vin_report_files(p->cfg, p->store, job->input_sha256) : NULL;
		st = write_report(p, r, to, job->message_id, results ? name : NULL, results,
				  files ? (const char *const *)files->pdata : NULL, path, err);
		if (st != SG_OK)
			return st;
	}
	g_free(job->state);
	job->state = g_strdup("done");
	job->finished = sg_now();
	job->attempts = 0;
	g_free(job->report_state);
	job->report_state = g_strdup(path ? "pending" : "none");
	g_free(job->report_path);
	job->report_path = g_steal_pointer(&path);
	if ((st = sg_batch_job_update(p->store, job, err)) != SG_OK)
		return st;
	out->finished++;
	sg_crash_point("job-done");
	if (job->report_path)
		return job_deliver(p, job, out, err);
	return SG_OK;
}

/* The detail of a job that ran to its end; g_free. */
static char *job_summary_text(const sg_config *cfg, const sg_batch_job *job,
			      const sg_batch_summary *s)
{
	g_autofree char *name = results_name(job->input_name, "results");
	GString *g = g_string_new(NULL);

	g_string_printf(g,
			tr(cfg, "Lookup job %" G_GINT64_FORMAT " has ended: %ld rows: %ld ok, %ld "
				"invalid, %ld failed, %ld unknown. The results are in the attached "
				"file %s: your columns, then status, error and the service's answer.",
			   "Задание %" G_GINT64_FORMAT " завершено: строк %ld: успешно %ld, с "
			   "ошибками в данных %ld, не выполнено %ld, без ответа %ld. Результаты — "
			   "в приложенном файле %s: ваши столбцы, затем status (результат), error "
			   "(ошибка) и ответ сервиса."),
			job->id, s->rows, s->ok, s->invalid, s->failed, s->unknown, name);
	if (s->unknown)
		g_string_append(g, tr(cfg, " Rows with status unknown were sent without an answer "
					   "coming back; they are not sent again, so that nothing is "
					   "paid twice: ask the service about them.",
				      " Строки со статусом unknown были отправлены, но ответ не "
				      "получен; повторно они не отправляются, чтобы не платить "
				      "дважды: уточните их в сервисе."));
	if (s->pending)
		g_string_append_printf(g, tr(cfg, " %ld rows did not finish in time (status pending).",
					     " Строк, не завершённых вовремя (status pending): %ld."),
				       s->pending);
	return g_string_free(g, FALSE);
}

/* One run of a job that is not done, within what is left of the pass's time. */
static sg_status job_advance(sg_pipeline *p, sg_batch_job *job, double deadline,
			     sg_jobs_pass *out, char **err)
{
	const sg_config *cfg = p->cfg;
	const sg_batch_kind *kind = sg_batch_kind_find(job->kind);
	g_autofree char *dir = sg_batch_job_dir(cfg, job->message_sha256);
	g_autofree char *input = g_build_filename(dir, "input.csv", NULL);
	g_autofree char *results = g_build_filename(dir, "results.csv", NULL);
	g_autofree char *e = NULL, *detail = NULL;
	sg_auth a = {0};
	sg_batch_opts o;
	sg_batch_summary sum;
	double left = deadline - (double)g_get_monotonic_time() / 1e6;
	/* Calls start until max_defer after the job came. Past it a pass only looks (no call, so
	 * nothing is paid for again or anew): the job ends once no row waits for a report the
	 * service delivers later, each such row until its own wait_until ([vin] report_wait after
	 * it was sent, so the latest of them bounds the job). */
	bool expired = cfg->source.max_defer > 0 &&
		       sg_now() - job->created >= cfg->source.max_defer;
	sg_status st;

	if ((st = sg_auth_sender(p->store, job->owner_email, job->kind, &a, err)) != SG_OK)
		return st;
	if (a.reason) {
		/* Nobody may receive the results any more: no further call is paid for. */
		log_warnx("job %" G_GINT64_FORMAT ": %s is no longer a user with the role batch_%s "
			  "(%s): the job is cancelled", job->id, job->owner_email, job->kind, a.reason);
		sg_auth_clear(&a);
		st = job_end(p, job, "failed", NULL, NULL, NULL, out, err);
		if (st == SG_OK)
			job_dir_remove(dir);
		return st;
	}
	if (kind == NULL) {
		detail = g_strdup_printf(tr(cfg, "%s lookups are not available on this gateway.",
					    "Проверки %s на этом шлюзе недоступны."), job->kind);
		st = job_end(p, job, "failed", detail, NULL, a.reply_to, out, err);
		sg_auth_clear(&a);
		return st;
	}

	sg_batch_opts_init(&o);
	o.input = input;
	o.charset_label = job->charset;
	o.output = results;
	o.name = job->input_name;
	o.max_rows = cfg->limits.max_rows;
	o.max_field_length = cfg->limits.max_field_length;
	o.no_calls = expired;
	/* A poll must not block: new calls stop when the pass's time is spent, and a polling kind
	 * checks its queue within it (the next pass goes on from the journal). */
	o.budget = MAX(left, 0.001);
	o.max_wait = o.budget;
	o.poll_interval = CLAMP(o.budget / 5, 0.2, 10.0);
	/* What an e-mailed price job may spend is the operator's, never the sender's to say. */
	if (kind == &sg_batch_price)
		o.max_cost = (double)cfg->price.max_cost;
	st = sg_batch_run(kind, cfg, p->store, &o, &sum, &e);
	out->advanced++;
	if (sum.interrupted)
		out->interrupted = true;
	if (st == SG_ECONFIG && !expired) {
		/* The operator may fix the section; the job waits (until max_defer). */
		log_error("job %" G_GINT64_FORMAT ": %s", job->id, e ? e : "configuration");
		out->under_way++;
		sg_auth_clear(&a);
		return SG_OK;
	}
	if (st == SG_ECONFIG || st == SG_EDATA || st == SG_ENOINPUT) {
		log_error("job %" G_GINT64_FORMAT ": %s", job->id, e ? e : "cannot run");
		detail = g_strdup_printf(tr(cfg, "Lookup job %" G_GINT64_FORMAT " could not run: %s",
					    "Задание %" G_GINT64_FORMAT " не удалось выполнить: %s"),
					 job->id, e ? e : "");
		st = job_end(p, job, "failed", detail, NULL, a.reply_to, out, err);
		sg_auth_clear(&a);
		return st;
	}
	if (st != SG_OK) {
		sg_auth_clear(&a);
		return sg_fail(err, st, "job %" G_GINT64_FORMAT ": %s", job->id, e ? e : "failed");
	}
	if (sum.pending == 0 || (expired && sum.waiting == 0)) {
		detail = job_summary_text(cfg, job, &sum);
		log_info("job %" G_GINT64_FORMAT ": ended: %ld rows: %ld ok, %ld invalid, %ld failed, "
			 "%ld unknown, %ld pending", job->id, sum.rows, sum.ok, sum.invalid,
			 sum.failed, sum.unknown, sum.pending);
		st = job_end(p, job, sum.pending ? "failed" : NULL, detail, results, a.reply_to, out,
			     err);
		sg_auth_clear(&a);
		return st;
	}
	sg_auth_clear(&a);
	out->under_way++;
	log_info("job %" G_GINT64_FORMAT ": %ld of %ld rows still to do, %ld of them waiting for "
		 "their reports%s", job->id, sum.pending, sum.rows, sum.waiting,
		 expired ? " (past max_defer: no new call)" : "");
	if (strcmp(job->state, "running") != 0) {
		g_free(job->state);
		job->state = g_strdup("running");
		return sg_batch_job_update(p->store, job, err);
	}
	return SG_OK;
}

sg_status sg_pipeline_jobs(sg_pipeline *p, double budget, sg_jobs_pass *out, char **err)
{
	g_autoptr(GPtrArray) jobs = NULL;
	double deadline = (double)g_get_monotonic_time() / 1e6 + budget;
	sg_status st;

	memset(out, 0, sizeof(*out));
	if (p->dry_run)
		return SG_OK;
	if ((st = sg_batch_jobs_open(p->store, &jobs, err)) != SG_OK)
		return st;
	for (guint i = 0; i < jobs->len && !out->interrupted; i++) {
		sg_batch_job *job = jobs->pdata[i];

		if (strcmp(job->state, "done") == 0)
			st = job_deliver(p, job, out, err);
		else
			st = job_advance(p, job, deadline, out, err);
		if (st != SG_OK)
			return st;
	}
	return SG_OK;
}
