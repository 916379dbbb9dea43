/* metrics.c: the state db's figures in the Prometheus text format (`status --format prometheus`). */
#include "metrics.h"

#include <string.h>

#ifndef SG_VERSION
#define SG_VERSION "0"
#endif

/*
 * One family a row. The query's last column is the value; the columns before it are the values
 * of labels, in order. A family is printed only when its table exists, so a db made before a
 * feature (or a table another module creates on first use) gives no error, only fewer families.
 */
static const struct family {
	const char *name, *type, *help;
	const char *table;     /* the table the query reads */
	const char *labels[3]; /* label names, NULL-terminated */
	const char *sql;
} families[] = {
	{ "stockgate_messages", "gauge",
	  "Messages in the ledger by their latest outcome and reason (reason empty for none).",
	  "ledger", { "outcome", "reason", NULL },
	  "SELECT outcome, coalesce(reason, ''), count(*) FROM ledger WHERE outcome IS NOT NULL "
	  "GROUP BY 1, 2 ORDER BY 1, 2" },
	{ "stockgate_duplicate_messages_total", "counter",
	  "Copies of messages already handled that came again (not handled twice).", "ledger",
	  { NULL }, "SELECT coalesce(sum(duplicates), 0) FROM ledger" },
	{ "stockgate_deferred_messages", "gauge",
	  "Messages waiting for another try (mirror or mail server unavailable).", "ledger",
	  { NULL }, "SELECT count(*) FROM ledger WHERE outcome = 'deferred'" },
	{ "stockgate_deferred_attempts", "gauge",
	  "Tries made so far at the messages now deferred.", "ledger", { NULL },
	  "SELECT coalesce(sum(attempts), 0) FROM ledger WHERE outcome = 'deferred'" },
	{ "stockgate_reports_pending", "gauge",
	  "Reports spooled and not yet delivered, by what they answer (message or batch job).",
	  "ledger", { "kind", NULL },
	  "SELECT 'message', count(*) FROM ledger WHERE report_state = 'pending'" },
	{ "stockgate_reports_pending", "gauge", NULL, "batch_jobs", { "kind", NULL },
	  "SELECT 'batch', count(*) FROM batch_jobs WHERE report_state = 'pending'" },
	{ "stockgate_last_poll_timestamp_seconds", "gauge",
	  "When the last poll of the mailbox ended (Unix time); absent before the first.", "polls",
	  { NULL }, "SELECT time FROM polls ORDER BY id DESC LIMIT 1" },
	{ "stockgate_last_poll_success", "gauge",
	  "1 when the last poll of the mailbox succeeded, 0 when it failed.", "polls", { NULL },
	  "SELECT ok != 0 FROM polls ORDER BY id DESC LIMIT 1" },
	{ "stockgate_batch_jobs", "gauge", "Batch jobs accepted by e-mail, by kind and state.",
	  "jobs", { "kind", "state", NULL },
	  "SELECT kind, state, count(*) FROM jobs GROUP BY 1, 2 ORDER BY 1, 2" },
	{ "stockgate_batch_rows", "gauge",
	  "Rows of batch lists in the journal, by kind and state (sent: charged, no answer yet).",
	  "journal", { "kind", "state", NULL },
	  "SELECT kind, state, count(*) FROM journal GROUP BY 1, 2 ORDER BY 1, 2" },
	{ "stockgate_receiver_unmatched_deliveries", "gauge",
	  "VIN report deliveries the receiver (stockgate serve) matched to no batch row.", "deliveries", { NULL },
	  "SELECT count(*) FROM deliveries" },
};

char *sg_metrics_label(const char *s)
{
	GString *o = g_string_sized_new(strlen(s) + 2);

	for (; *s; s++) {
		if (*s == '\\')
			g_string_append(o, "\\\\");
		else if (*s == '"')
			g_string_append(o, "\\\"");
		else if (*s == '\n')
			g_string_append(o, "\\n");
		else
			g_string_append_c(o, *s);
	}
	return g_string_free(o, FALSE);
}

static sg_status table_exists(sqlite3 *db, const char *table, bool *yes, char **err)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
				    -1, &s, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		*yes = rc == SQLITE_ROW;
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_OK)
		return sg_fail(err, SG_EIO, "metrics: reading the schema: %s", sqlite3_errmsg(db));
	return SG_OK;
}

/* The samples of one row of families[]. */
static sg_status samples(sqlite3 *db, const struct family *f, GString *out, char **err)
{
	sqlite3_stmt *s = NULL;
	int nlabels = 0, rc;

	while (f->labels[nlabels])
		nlabels++;
	if (sqlite3_prepare_v2(db, f->sql, -1, &s, NULL) != SQLITE_OK)
		return sg_fail(err, SG_EIO, "metrics: %s: %s", f->name, sqlite3_errmsg(db));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		g_string_append(out, f->name);
		for (int i = 0; i < nlabels; i++) {
			const char *v = (const char *)sqlite3_column_text(s, i);
			g_autofree char *esc = sg_metrics_label(v ? v : "");
			g_string_append_printf(out, "%s%s=\"%s\"", i ? "," : "{", f->labels[i], esc);
		}
		g_string_append_printf(out, "%s %lld\n", nlabels ? "}" : "",
				       (long long)sqlite3_column_int64(s, nlabels));
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return sg_fail(err, SG_EIO, "metrics: %s: %s", f->name, sqlite3_errmsg(db));
	return SG_OK;
}

sg_status sg_metrics_prometheus(sg_store *st, GString *out, char **err)
{
	sqlite3 *db = sg_store_db(st);
	sg_status ret;

	g_string_append(out, "# HELP stockgate_build_info The stockgate version writing these figures.\n"
			     "# TYPE stockgate_build_info gauge\n"
			     "stockgate_build_info{version=\"" SG_VERSION "\"} 1\n");
	/* A row without help continues the family of the row before it: one HELP and TYPE, the
	 * samples together, printed when any of its tables exists. */
	for (size_t i = 0; i < G_N_ELEMENTS(families);) {
		const struct family *head = &families[i];
		size_t end = i + 1;
		bool any = false, yes[G_N_ELEMENTS(families)] = { false };

		while (end < G_N_ELEMENTS(families) && !families[end].help)
			end++;
		for (size_t j = i; j < end; j++) {
			if ((ret = table_exists(db, families[j].table, &yes[j], err)))
				return ret;
			any = any || yes[j];
		}
		if (any)
			g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", head->name,
					       head->help, head->name, head->type);
		for (size_t j = i; j < end; j++)
			if (yes[j] && (ret = samples(db, &families[j], out, err)))
				return ret;
		i = end;
	}
	return SG_OK;
}
