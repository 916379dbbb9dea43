/* pipeline.c: one message through the whole job, in the order SPEC 7 fixes: ledger, parse,
 * sender check, files applied with the record in one transaction, then the report. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
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

/* Where reports wait between the commit that records them and their delivery. */
static char *spool_dir(const sg_config *cfg)
{
	const char *db = cfg->store.path && *cfg->store.path ? cfg->store.path : "stockgate.db";

	return g_strconcat(db, ".spool", NULL);
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
		if (g_ascii_strcasecmp(a->content_type, "application/ms-tnef") == 0) {
			sg_file_reject(fr, "bad_mime_type",
				       "%s is an Outlook winmail.dat: send the message in plain-text "
				       "or HTML format",
				       a->content_type);
			continue;
		}
		if (!is_allowed_type(p->cfg, a->content_type)) {
			sg_file_reject(fr, "bad_mime_type", "type %s is not a CSV type",
				       a->content_type);
			continue;
		}
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
		st = sg_stock_apply_file(p->store, &ctx, a->path, fr, err);
		if (st != SG_OK)
			return st;
	}
	return SG_OK;
}

/* Builds the report and spools it next to the db; returns its path in *path (g_free). */
static sg_status spool_report(sg_pipeline *p, const sg_result *r, const sg_message *msg,
			      const sg_auth *auth, const char *sha, char **path, char **err)
{
	g_autofree char *data = NULL, *msgid = NULL, *dir = spool_dir(p->cfg);
	size_t len = 0;
	sg_report_opts o = {
		.from = p->cfg->report.from,
		.to = auth->reply_to,
		.bcc = p->cfg->report.bcc,
		.language = p->cfg->report.language,
		.in_reply_to = msg ? msg->message_id : NULL,
		.method = r->method,
	};
	sg_status st = sg_report_build(r, &o, &data, &len, &msgid, err);

	if (st != SG_OK)
		return st;
	if (g_mkdir_with_parents(dir, 0700) != 0)
		return sg_fail(err, SG_EIO, "%s: cannot create the report spool: %s", dir,
			       g_strerror(errno));
	*path = g_strdup_printf("%s/%s.eml", dir, sha);
	if (!sg_write_atomic(*path, data, len, 0600, err)) {
		g_clear_pointer(path, g_free);
		return SG_EIO;
	}
	return SG_OK;
}

/* Sends a spooled report to to (and bcc). Returns the transport's status. */
static sg_status send_spooled(sg_pipeline *p, const char *path, const char *to, char **err)
{
	g_autofree char *data = NULL, *from = addr_spec(p->cfg->report.from);
	gsize len = 0;
	GError *gerr = NULL;
	const char *rcpts[3] = {to, NULL, NULL};

	if (!g_file_get_contents(path, &data, &len, &gerr)) {
		sg_fail(err, SG_EIO, "%s: %s", path, gerr->message);
		g_error_free(gerr);
		return SG_EIO;
	}
	if (p->cfg->report.bcc && *p->cfg->report.bcc)
		rcpts[1] = p->cfg->report.bcc;
	return p->transport->ops->send(p->transport, from, rcpts, data, len, err);
}

/* Records the result in the ledger (outside or inside a transaction). */
static sg_status ledger_record(sg_pipeline *p, const sg_source_msg *m, const char *sha,
			const sg_result *r, const char *report_state, const char *report_path,
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
		.report_path = (char *)report_path,
		.attempts = attempts,
		.first_seen = first_seen,
		.updated = sg_now(),
	};

	if (p->dry_run)
		return SG_OK;
	return sg_ledger_put(p->store, &l, err);
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

/* The stored record with "report" set to report (NULL: as stored); g_free. */
static char *stored_record(const sg_ledger *l, const char *report, char **from)
{
	cJSON *j = cJSON_Parse(l->result_json ? l->result_json : "{}");
	char *s;

	if (!j)
		return g_strdup(l->result_json ? l->result_json : "{}");
	if (report)
		cJSON_ReplaceItemInObject(j, "report", cJSON_CreateString(report));
	if (from) {
		cJSON *f = cJSON_GetObjectItem(j, "from");
		*from = cJSON_IsString(f) ? g_strdup(f->valuestring) : NULL;
	}
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

/* A record as scripts see it while its report waits: deferred, report_unavailable; g_free. */
static char *deferred_record(const char *json)
{
	cJSON *j = cJSON_Parse(json);
	char *s;

	if (!j)
		return g_strdup(json);
	cJSON_ReplaceItemInObject(j, "outcome", cJSON_CreateString("deferred"));
	cJSON_ReplaceItemInObject(j, "reason", cJSON_CreateString("report_unavailable"));
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
 * A message whose outcome is in the ledger. Its report still pending (the transport was down, or
 * a crash came between the commit and the report): send it, and give the stored record. Else
 * nothing is done again: duplicate.
 */
static sg_status resume(sg_pipeline *p, const sg_source_msg *m, sg_ledger *l, char **out,
			const char **outcome, const char **folder, char **err)
{
	bool same = m->mailbox && l->mailbox && strcmp(m->mailbox, l->mailbox) == 0 &&
		    m->uidvalidity == l->uidvalidity && m->uid == l->uid;
	bool pending = l->report_state && strcmp(l->report_state, "pending") == 0;

	if (pending && p->transport && !p->dry_run) {
		g_autofree char *from = NULL, *e = NULL;
		g_autofree char *rec = stored_record(l, NULL, &from);
		g_autoptr(sg_user) u = NULL;
		sg_status st = SG_ENOINPUT;

		if (from && sg_user_get(p->store, from, &u, NULL) == SG_OK && l->report_path)
			st = send_spooled(p, l->report_path, u->email, &e);
		if (st == SG_OK) {
			g_free(l->report_state);
			l->report_state = g_strdup(p->transport->ops->done);
			char *json = stored_record(l, p->transport->ops->done, NULL);
			g_free(l->result_json);
			l->result_json = json;
			unlink(l->report_path);
			g_clear_pointer(&l->report_path, g_free);
		} else if (st == SG_ETEMP && !defer_exhausted(p->cfg, l->attempts + 1,
							      l->first_seen)) {
			log_warnx("%s: report still not delivered: %s", m->id, e ? e : "");
			l->attempts++;
			l->updated = sg_now();
			if (sg_ledger_put(p->store, l, err) != SG_OK)
				return SG_EIO;
			*out = deferred_record(rec);
			*outcome = "deferred";
			*folder = NULL;
			return SG_OK;
		} else {
			log_warnx("%s: report given up: %s", m->id, e ? e : "no such user");
			g_free(l->report_state);
			l->report_state = g_strdup("none");
		}
		l->updated = sg_now();
		if (sg_ledger_put(p->store, l, err) != SG_OK)
			return SG_EIO;
		*out = g_strdup(l->result_json);
		*outcome = static_outcome(l->outcome);
		*folder = folder_for(p->cfg, l->outcome, l->reason);
		return SG_OK;
	}
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
	/* The same mailbox message seen again (a crash before its move) goes where its outcome
	 * sends it; another copy of handled bytes is a duplicate for the processed folder. */
	*folder = same ? folder_for(p->cfg, l->outcome, l->reason) : p->cfg->source.processed_folder;
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

sg_status sg_pipeline_handle(sg_pipeline *p, const sg_source_msg *m, char **record,
			     const char **outcome, const char **folder, char **err)
{
	const sg_config *cfg = p->cfg;
	g_autoptr(sg_result) r = sg_result_new(m->id);
	g_autoptr(sg_message) msg = NULL;
	g_autoptr(sg_ledger) prev = NULL;
	g_autofree char *sha = NULL, *report_path = NULL, *e = NULL;
	sg_auth auth = {0};
	const char *reason = NULL, *method = NULL;
	gint64 now = sg_now(), first_seen = now;
	int attempts = 1;
	bool answer = false, in_tx = false, report_pending = false;
	sg_status st;

	r->report = "none";
	if (m->path)
		sha = sg_sha256_file(m->path);
	else
		sha = sg_sha256_hex(m->id, strlen(m->id));
	if (!sha)
		return sg_fail(err, SG_EIO, "%s: cannot read the message: %s", m->id,
			       g_strerror(errno));

	st = sg_ledger_get(p->store, sha, &prev, err);
	if (st == SG_OK && strcmp(prev->outcome, "deferred") != 0)
		return resume(p, m, prev, record, outcome, folder, err);
	if (st == SG_OK) {
		attempts = prev->attempts + 1;
		first_seen = prev->first_seen;
	} else if (st != SG_ENOINPUT) {
		return st;
	}
	g_clear_pointer(err, g_free);

	/* Stale stock is not processed in a poll (and an old mailbox does not flood replies). */
	if (p->poll && cfg->source.max_age > 0 && m->received > 0 &&
	    now - m->received > cfg->source.max_age) {
		r->outcome = "failed";
		r->reason = "stale";
		goto record;
	}

	if (!m->path || (cfg->limits.max_message_size > 0 && m->size > cfg->limits.max_message_size)) {
		reason = "too_large";
		if (m->path) {
			/* Only the headers are read, for the reply decision. */
			sg_message_limits lim = {
				.max_message_size = cfg->limits.max_message_size,
				.max_header_size = cfg->limits.max_header_size,
				.max_mime_depth = cfg->limits.max_mime_depth,
				.max_parts = cfg->limits.max_parts,
				.max_attachments = cfg->limits.max_attachments,
				.cpu_seconds = cfg->limits.parse_cpu_seconds,
			};
			const char *ignored = NULL;
			sg_message_parse(m->path, &lim, NULL, &msg, &ignored, NULL);
		}
	} else {
		sg_message_limits lim = {
			.max_message_size = cfg->limits.max_message_size,
			.max_header_size = cfg->limits.max_header_size,
			.max_mime_depth = cfg->limits.max_mime_depth,
			.max_parts = cfg->limits.max_parts,
			.max_attachments = cfg->limits.max_attachments,
			.cpu_seconds = cfg->limits.parse_cpu_seconds,
		};
		st = sg_message_parse(m->path, &lim, NULL, &msg, &reason, &e);
		if (st != SG_OK && st != SG_EDATA)
			return sg_fail(err, st, "%s: %s", m->id, e ? e : "cannot parse");
		if (st == SG_EDATA && !reason)
			reason = "unparseable";
	}

	if (reason) {
		/* too_large, too_complex: answered only when From is a user with the role;
		 * unparseable: never answered. */
		r->outcome = "failed";
		r->reason = reason;
		r->detail = g_strdup(e);
		log_warnx("%s: %s%s%s", m->id, reason, e ? ": " : "", e ? e : "");
		if (msg && strcmp(reason, "unparseable") != 0) {
			method = sg_subject_method(msg->subject);
			st = sg_auth_check_unkeyed(p->store, msg, method,
						   cfg->security.trusted_authserv_id, &auth, err);
			if (st != SG_OK)
				goto fail;
			set_sender(r, msg, &auth, method);
			answer = !auth.reason && !auth.automatic;
		}
		goto record;
	}

	method = sg_subject_method(msg->subject);
	st = sg_auth_check(p->store, msg, method, cfg->security.trusted_authserv_id, &auth, err);
	if (st != SG_OK)
		goto fail;
	set_sender(r, msg, &auth, method);
	if (auth.reason) {
		r->outcome = "rejected";
		r->reason = auth.reason;
		log_info("%s: rejected silently: %s (from %s)", m->id, auth.reason,
			 msg->from ? msg->from : "nobody");
		goto record;
	}
	answer = !auth.automatic;
	if (!method) {
		r->outcome = "failed";
		r->reason = "unknown_method";
		goto record;
	}
	if (msg->attachments->len == 0) {
		r->outcome = "failed";
		r->reason = "no_attachments";
		goto record;
	}
	if (cfg->limits.max_attachments > 0 &&
	    msg->attachments->len > (guint)cfg->limits.max_attachments) {
		r->outcome = "failed";
		r->reason = "too_many_attachments";
		goto record;
	}
	if (is_batch_method(method)) {
		/* The batch jobs by e-mail are not wired to the pipeline yet. */
		r->outcome = "failed";
		r->reason = "unknown_method";
		r->detail = g_strdup("batch jobs by e-mail are not available yet");
		goto record;
	}

	st = sg_store_begin(p->store, err);
	if (st != SG_OK)
		goto fail;
	in_tx = true;
	st = apply_files(p, msg, &auth, msg->date >= 0 ? msg->date : first_seen, r, &e);
	if (st == SG_ETEMP) {
		/* The mirror is down: nothing is applied; try again at the next poll. */
		sg_store_rollback(p->store);
		in_tx = false;
		g_ptr_array_set_size(r->files, 0);
		r->reason = "mirror_unavailable";
		r->detail = g_strdup(e);
		log_warnx("%s: deferred: %s", m->id, e ? e : "mirror unavailable");
		if (defer_exhausted(cfg, attempts, first_seen)) {
			r->outcome = "failed";
		} else {
			r->outcome = "deferred";
			answer = false;
		}
		goto record;
	}
	if (st != SG_OK) {
		sg_store_rollback(p->store);
		in_tx = false;
		return sg_fail(err, st, "%s: %s", m->id, e ? e : "cannot apply");
	}
	sg_result_settle(r);

record:
	if (answer && p->transport && !p->dry_run && auth.reply_to) {
		/* The report is spooled before the commit that records it, so that a crash after
		 * the commit still finds it; it is sent after the commit. */
		st = spool_report(p, r, msg, &auth, sha, &report_path, err);
		if (st != SG_OK)
			goto fail;
		report_pending = true;
	}
	if (p->dry_run) {
		if (in_tx)
			sg_store_rollback(p->store);
		in_tx = false;
	} else {
		st = ledger_record(p, m, sha, r, report_pending ? "pending" : "none", report_path, attempts,
			    first_seen, err);
		if (st != SG_OK)
			goto fail;
		if (in_tx) {
			st = sg_store_commit(p->store, err);
			in_tx = false;
			if (st != SG_OK)
				goto fail;
		}
	}
	sg_crash_point("after_apply");

	if (report_pending) {
		g_autofree char *se = NULL;
		st = send_spooled(p, report_path, auth.reply_to, &se);
		if (st == SG_OK) {
			r->report = p->transport->ops->done;
			unlink(report_path);
			sg_crash_point("after_report");
			st = ledger_record(p, m, sha, r, r->report, NULL, attempts, first_seen, err);
			if (st != SG_OK)
				goto fail;
		} else {
			/* Applied and recorded; the report waits for the next poll. */
			log_warnx("%s: report not delivered, will retry: %s", m->id,
				  se ? se : "transport failure");
			{
				g_autofree char *json = sg_result_to_json(r);
				*record = deferred_record(json);
			}
			*outcome = "deferred";
			*folder = NULL;
			sg_auth_clear(&auth);
			return SG_OK;
		}
	}
	*record = sg_result_to_json(r);
	*outcome = r->outcome;
	*folder = folder_for(cfg, r->outcome, r->reason);
	sg_auth_clear(&auth);
	return SG_OK;

fail:
	if (in_tx)
		sg_store_rollback(p->store);
	sg_auth_clear(&auth);
	return st == SG_OK ? SG_EINTERNAL : st;
}
