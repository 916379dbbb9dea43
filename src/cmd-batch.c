/* cmd-batch.c: `stockgate batch KIND INPUT.csv [options]`, `stockgate batch vin --balance` and
 * `stockgate batch run-jobs` (the jobs accepted by e-mail, without a poll). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "batch.h"
#include "cmd.h"
#include "log.h"
#include "pipeline.h"

static const char usage_text[] =
	"usage: stockgate batch vin|frame|price|rental INPUT.csv [-o OUT] [--concurrency N]\n"
	"           [--rate R] [--dry-run] [--retry-unknown] [--format csv|json]\n"
	"           [--max-wait D] [--poll-interval D]   (frame)   [--wait]   (vin)\n"
	"           [--max-cost N]                       (price)\n"
	"       stockgate batch vin --balance\n"
	"       stockgate batch run-jobs [--max-time D]\n"
	"Looks up every row of a CSV list with the vendor service and writes the list back with the\n"
	"columns status (ok|invalid|failed|unknown|pending), error and the service's answer, to\n"
	"standard output or OUT. A journal in the state db makes a re-run resume where it stopped;\n"
	"a paid call is never made twice for a row. Exit 0 all rows ok, 65 some invalid or failed,\n"
	"75 some pending or unknown (run again later), 78 configuration.\n"
	"  -o, --output OUT       write to OUT (atomically) instead of standard output\n"
	"  --concurrency N        calls at once (default 4)\n"
	"  --rate R               at most R calls started per second\n"
	"  --dry-run              validate and show what would be sent; no call\n"
	"  --retry-unknown        call again rows sent before without an answer (may charge twice)\n"
	"  --format csv|json      CSV in the input's encoding and delimiter (default), or JSON lines\n"
	"  --max-wait D           frame: how long to wait for reports in this run (default 30m)\n"
	"  --poll-interval D      frame: first delay between status checks (default 10s)\n"
	"  --timeout D            one call's deadline (default 30s)\n"
	"  --balance              vin: print the account balance\n"
	"  --wait                 vin: run until every row's report arrived (stockgate serve files\n"
	"                         them) or [vin] report_wait passed; looks every --poll-interval\n"
	"  --max-cost N           price: get the prices (get_price, which charges) while the job's\n"
	"                         costs stay within N; without it only get_price_info (free) runs.\n"
	"                         A row past the cap fails over_budget; a larger N continues it.\n"
	"rental: a row is a contract command (cmd start|update|stop, ra, the seed's parameters;\n"
	"start_lat/start_lon or start_address, end_* alike). Rows of one ra run in file order,\n"
	"after a failed one the rest are not sent; a 5xx after a command was sent is unknown.\n"
	"run-jobs advances the jobs accepted by e-mail once (as each poll does) and mails the\n"
	"results of those that end; exit 0 when none is left under way, 75 otherwise.\n";

static const char run_jobs_usage[] =
	"usage: stockgate batch run-jobs [--max-time D]\n"
	"\n"
	"Advances the batch jobs accepted by e-mail (subject vin, frame, … with a CSV list), as\n"
	"each `stockgate poll` does, without reading the mailbox: for a mail set-up that runs\n"
	"`stockgate process` as an MTA pipe, run it from a timer. A job that ends mails its\n"
	"results CSV to the sender through [report] url. A paid call is never made twice.\n"
	"\n"
	"  --max-time D   start no new call after D (default: [source] poll_interval)\n"
	"  --help         show this help\n"
	"\n"
	"Exit status: 0 no job left under way, 75 jobs still under way or a results report not\n"
	"delivered yet, or a poll holds the lock; 78 configuration error.\n";

/* `batch run-jobs`: one pass over the e-mail jobs. */
static sg_status run_jobs(sg_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "max-time", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double budget = MAX(ctx->cfg->source.poll_interval, 1);
	g_autofree char *err = NULL, *lock_path = NULL;
	sg_store *store = NULL;
	sg_transport *transport = NULL;
	sg_jobs_pass pass;
	sg_status st;
	int c, lock;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			budget = sg_batch_parse_seconds(optarg);
			if (budget <= 0) {
				log_error("batch run-jobs: --max-time '%s': give a duration such as "
					  "30s or 5m", optarg);
				return sg_cmd_usage(run_jobs_usage, SG_EUSAGE);
			}
			break;
		case 'h':
			return sg_cmd_usage(run_jobs_usage, SG_OK);
		default:
			return sg_cmd_usage(run_jobs_usage, SG_EUSAGE);
		}
	}
	if (optind != argc)
		return sg_cmd_usage(run_jobs_usage, SG_EUSAGE);

	/* The lock of `poll` (the same file): one process advances the jobs of a state db. */
	lock_path = g_strconcat(ctx->cfg->store.path, ".lock", NULL);
	lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0) {
		err = g_strdup_printf("%s: %s", lock_path, g_strerror(errno));
		return sg_cmd_fail(SG_EIO, err);
	}
	if (flock(lock, LOCK_EX | LOCK_NB) != 0) {
		close(lock);
		err = g_strdup_printf("%s: a stockgate poll holds the lock on this state db (it "
				      "advances the jobs itself)", lock_path);
		return sg_cmd_fail(SG_ETEMP, err);
	}
	if ((st = sg_ctx_store(ctx, &store)) != SG_OK)
		goto out;
	if ((st = sg_transport_open(ctx->cfg, &transport, &err)) != SG_OK)
		goto out;
	sg_pipeline p = {
		.cfg = ctx->cfg,
		.store = store,
		.transport = transport,
	};
	st = sg_pipeline_jobs(&p, budget, &pass, &err);
	if (st != SG_OK)
		goto out;
	fprintf(stderr, "batch jobs: %d advanced, %d ended, %d results sent, %d under way%s\n",
		pass.advanced, pass.finished, pass.reports, pass.under_way,
		pass.reports_pending ? ", results waiting for the transport" : "");
	if (pass.under_way || pass.reports_pending || pass.interrupted)
		st = SG_ETEMP;
out:
	if (err)
		log_error("batch run-jobs: %s", err);
	if (transport)
		sg_transport_close(transport);
	sg_store_close(store);
	close(lock);
	return st;
}

/* A positive count or -1. */
static long parse_count(const char *s)
{
	char *end;
	long v;

	if (s == NULL || !g_ascii_isdigit(*s))
		return -1;
	v = strtol(s, &end, 10);
	return *end || v <= 0 || v > 1000 ? -1 : v;
}

sg_status cmd_batch(sg_ctx *ctx, int argc, char **argv)
{
	enum { O_RATE = 256, O_DRY, O_RETRY, O_FORMAT, O_WAIT, O_POLL, O_BAL, O_CONC, O_TIMEOUT,
	       O_UNTIL, O_COST };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "concurrency", required_argument, NULL, O_CONC },
		{ "rate", required_argument, NULL, O_RATE },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "retry-unknown", no_argument, NULL, O_RETRY },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "max-wait", required_argument, NULL, O_WAIT },
		{ "poll-interval", required_argument, NULL, O_POLL },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "balance", no_argument, NULL, O_BAL },
		{ "wait", no_argument, NULL, O_UNTIL },
		{ "max-cost", required_argument, NULL, O_COST },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	sg_batch_opts o;
	sg_batch_summary sum;
	const sg_batch_kind *kind;
	bool balance = false, wait = false, cost_given = false;
	g_autofree char *err = NULL, *line = NULL;
	sg_store *store = NULL;
	sg_status st;
	int c;
	double d;

	if (argc > 1 && strcmp(argv[1], "run-jobs") == 0)
		return run_jobs(ctx, argc - 1, argv + 1);
	sg_batch_opts_init(&o);
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o.output = optarg;
			break;
		case O_CONC:
			if ((o.concurrency = (int)parse_count(optarg)) < 0) {
				log_error("batch: --concurrency '%s': give a number from 1 to 1000",
					  optarg);
				return sg_cmd_usage(usage_text, SG_EUSAGE);
			}
			break;
		case O_RATE:
			d = sg_batch_parse_seconds(optarg);
			if (d <= 0) {
				log_error("batch: --rate '%s': give calls per second, e.g. 5 or 0.5",
					  optarg);
				return sg_cmd_usage(usage_text, SG_EUSAGE);
			}
			o.rate = d;
			break;
		case O_DRY:
			o.dry_run = true;
			break;
		case O_RETRY:
			o.retry_unknown = true;
			break;
		case O_FORMAT:
			if (!sg_cmd_format_ok("batch", optarg, "csv", "json"))
				return sg_cmd_usage(usage_text, SG_EUSAGE);
			o.json = strcmp(optarg, "json") == 0;
			break;
		case O_WAIT:
		case O_POLL:
		case O_TIMEOUT:
			d = sg_batch_parse_seconds(optarg);
			if (d < 0 || (c != O_WAIT && d == 0)) {
				log_error("batch: %s '%s': give a duration such as 500ms, 30s, 15m, 1h",
					  c == O_WAIT ? "--max-wait" : c == O_POLL ? "--poll-interval"
										   : "--timeout",
					  optarg);
				return sg_cmd_usage(usage_text, SG_EUSAGE);
			}
			if (c == O_WAIT)
				o.max_wait = d;
			else if (c == O_POLL)
				o.poll_interval = d;
			else
				o.timeout = d;
			break;
		case O_BAL:
			balance = true;
			break;
		case O_UNTIL:
			wait = true;
			break;
		case O_COST: {
			char *end;
			cost_given = true;
			o.max_cost = g_ascii_strtod(optarg, &end);
			if (!g_ascii_isdigit(*optarg) || *end || !(o.max_cost >= 0) ||
			    o.max_cost > 1e12) {
				log_error("batch: --max-cost '%s': give an amount in the account's "
					  "currency, e.g. 500", optarg);
				return sg_cmd_usage(usage_text, SG_EUSAGE);
			}
			break;
		}
		case 'h':
			return sg_cmd_usage(usage_text, SG_OK);
		default:
			return sg_cmd_usage(usage_text, SG_EUSAGE);
		}
	}
	if (optind >= argc) {
		log_error("batch: name a kind: vin, frame, price or rental");
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	}
	kind = sg_batch_kind_find(argv[optind]);
	if (kind == NULL) {
		log_error("batch: '%s' is not a batch kind (vin, frame, price, rental)", argv[optind]);
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	}
	if (balance) {
		g_autofree char *b = NULL;
		if (kind != &sg_batch_vin || optind + 1 != argc) {
			log_error("batch: --balance goes with vin alone: stockgate batch vin --balance");
			return sg_cmd_usage(usage_text, SG_EUSAGE);
		}
		st = sg_batch_vin_balance(ctx->cfg, &b, &err);
		if (st != SG_OK)
			return sg_cmd_fail(st, err);
		printf("%s\n", b);
		return fflush(stdout) == 0 ? SG_OK : SG_EIO;
	}
	if (cost_given && kind != &sg_batch_price) {
		log_error("batch %s: --max-cost goes with price", kind->name);
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	}
	if (optind + 2 != argc) {
		log_error("batch %s: give one input list", kind->name);
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	}
	o.input = argv[optind + 1];
	o.progress = isatty(STDERR_FILENO);
	o.max_rows = ctx->cfg->limits.max_rows;
	o.max_field_length = ctx->cfg->limits.max_field_length;

	if ((st = sg_ctx_store(ctx, &store)) != SG_OK)
		return st;
	if (wait && !o.dry_run) {
		/* The reports arrive through `stockgate serve` into the journal: look again until no
		 * row is pending (a row past report_wait is unknown, so this ends). The list goes
		 * out once, at the end. */
		FILE *devnull = fopen("/dev/null", "w");
		sg_batch_opts quiet = o;
		quiet.output = NULL;
		quiet.out = devnull;
		quiet.progress = false;
		while (devnull && (st = sg_batch_run(kind, ctx->cfg, store, &quiet, &sum, &err)) ==
					  SG_OK &&
		       sum.pending > 0 && !sum.interrupted && !sum.stopped)
			g_usleep((gulong)(MAX(o.poll_interval, 0.05) * G_USEC_PER_SEC));
		if (devnull)
			fclose(devnull);
		if (st != SG_OK) {
			sg_store_close(store);
			return sg_cmd_fail(st, err);
		}
	}
	st = sg_batch_run(kind, ctx->cfg, store, &o, &sum, &err);
	sg_store_close(store);
	if (st != SG_OK)
		return sg_cmd_fail(st, err);
	line = sg_batch_summary_line(kind->name, &sum);
	fprintf(stderr, "%s\n", line);
	return sg_batch_exit_status(&sum);
}
