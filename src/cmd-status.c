/* cmd-status.c: `stockgate status`: the health of the gateway for an operator or a monitor. */
#include <cjson/cJSON.h>
#include <string.h>

#include "cmd.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

static const char usage_text[] =
	"usage: stockgate status [--format text|json|prometheus] [--output FILE]\n"
	"The last poll and its outcome, messages by outcome, pending deferrals, reports and batch\n"
	"jobs, and the VIN reports `serve` received for no row (kept in the deliveries table).\n"
	"Exit 0 healthy, 69 when the last poll failed.\n"
	"  --format prometheus  the same figures (messages by outcome and reason, the last poll,\n"
	"                       deferrals, reports pending, batch jobs and rows by state, receiver\n"
	"                       deliveries) in the Prometheus text format, for node_exporter's\n"
	"                       textfile collector\n"
	"  --output FILE        write to FILE through a temporary file renamed over it (a reader\n"
	"                       never sees half of it), mode 644; written when unhealthy too\n";

/* `--format prometheus`: the families of metrics.c, to stdout or atomically to output. */
static sg_status print_prometheus(sg_store *store, const char *output)
{
	g_autoptr(GString) text = g_string_new(NULL);
	g_autoptr(GError) ge = NULL;
	g_autofree char *err = NULL;
	sg_status st = sg_metrics_prometheus(store, text, &err);

	if (st != SG_OK)
		return sg_cmd_fail(st, err);
	if (!output) {
		fputs(text->str, stdout);
		return SG_OK;
	}
	if (!g_file_set_contents_full(output, text->str, (gssize)text->len,
				      G_FILE_SET_CONTENTS_CONSISTENT, 0644, &ge)) {
		log_error("--output %s: %s", output, ge->message);
		return SG_EIO;
	}
	return SG_OK;
}

/* The outcomes in the order an operator reads them. */
static const char *const outcomes[] = { "applied", "partial", "failed", "rejected",
					"duplicate", "deferred", NULL };

static long count_of(GHashTable *by, const char *outcome)
{
	return by ? (long)GPOINTER_TO_INT(g_hash_table_lookup(by, outcome)) : 0;
}

sg_status cmd_status(sg_ctx *ctx, int argc, char **argv)
{
	const char *format = "text", *output = NULL;
	const sg_opt opts[] = { { "format", .value = &format }, { "output", 'o', .value = &output },
				{ NULL } };
	g_autofree char *err = NULL;
	g_autofree char *last = NULL;
	sg_store_status s = { 0 };
	sg_store *store = NULL;
	sg_status st;

	if (!sg_cmd_options(argc, argv, "", opts, usage_text, &st))
		return st;
	bool prom = strcmp(format, "prometheus") == 0;
	if (argc != optind || (!prom && !sg_cmd_format_ok("status", format, "text", "json")))
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	if (output && !prom) {
		log_error("status: --output goes with --format prometheus");
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	}

	st = sg_ctx_store(ctx, &store);
	if (st != SG_OK)
		return st;
	st = sg_store_status_get(store, &s, &err);
	if (st == SG_OK && prom)
		st = print_prometheus(store, output);
	sg_store_close(store);
	if (st != SG_OK) {
		sg_store_status_clear(&s);
		return sg_cmd_fail(st, err);
	}

	bool failed = s.last_poll_outcome && strcmp(s.last_poll_outcome, "failed") == 0;
	last = s.last_poll ? sg_iso_time(s.last_poll) : NULL;

	if (prom) {
		/* printed above, while the store was open */
	} else if (strcmp(format, "json") == 0) {
		cJSON *o = cJSON_CreateObject();
		cJSON *by = cJSON_CreateObject();
		if (last)
			cJSON_AddStringToObject(o, "last_poll", last);
		else
			cJSON_AddNullToObject(o, "last_poll");
		if (s.last_poll_outcome)
			cJSON_AddStringToObject(o, "last_poll_outcome", s.last_poll_outcome);
		else
			cJSON_AddNullToObject(o, "last_poll_outcome");
		if (s.last_poll_error)
			cJSON_AddStringToObject(o, "last_poll_error", s.last_poll_error);
		else
			cJSON_AddNullToObject(o, "last_poll_error");
		for (int i = 0; outcomes[i]; i++)
			cJSON_AddNumberToObject(by, outcomes[i], count_of(s.by_outcome, outcomes[i]));
		cJSON_AddItemToObject(o, "messages", by);
		cJSON_AddNumberToObject(o, "deferred", s.deferred);
		cJSON_AddNumberToObject(o, "reports_pending", s.reports_pending);
		cJSON_AddNumberToObject(o, "jobs_pending", s.jobs_pending);
		cJSON_AddNumberToObject(o, "deliveries_unknown", s.deliveries_unknown);
		cJSON_AddBoolToObject(o, "healthy", !failed);
		char *text = cJSON_PrintUnformatted(o);
		printf("%s\n", text);
		cJSON_free(text);
		cJSON_Delete(o);
	} else {
		if (last)
			printf("last poll:        %s, %s%s%s\n", last,
			       s.last_poll_outcome ? s.last_poll_outcome : "unknown",
			       s.last_poll_error ? ": " : "", s.last_poll_error ? s.last_poll_error : "");
		else
			printf("last poll:        never\n");
		printf("messages:        ");
		for (int i = 0; outcomes[i]; i++)
			printf(" %s %ld%s", outcomes[i], count_of(s.by_outcome, outcomes[i]),
			       outcomes[i + 1] ? "," : "\n");
		printf("deferred:         %ld\n", s.deferred);
		printf("reports pending:  %ld\n", s.reports_pending);
		printf("jobs pending:     %ld\n", s.jobs_pending);
		printf("unknown reports:  %ld\n", s.deliveries_unknown);
	}
	sg_store_status_clear(&s);
	if (failed) {
		log_error("the last poll failed; see the poller's log (journalctl -u stockgate) and "
			  "the [source] settings");
		return SG_EUNAVAIL;
	}
	return SG_OK;
}
