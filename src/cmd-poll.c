/* cmd-poll.c: `stockgate poll [--daemon] [--dry-run]`: passes over the configured mailbox. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cmd.h"
#include "log.h"
#include "pipeline.h"
#include "util.h"

static const char usage[] =
	"usage: stockgate poll [--daemon] [--dry-run]\n"
	"\n"
	"One pass over the mailbox of [source] url: every pending message is handled (sender,\n"
	"key, files, report), its JSON result line printed, and it is moved to its folder.\n"
	"Messages go in chunks of up to 50: fetched with one command, handled one by one, then\n"
	"moved with one command a folder (a message left by a crash is only moved next time).\n"
	"Then the batch jobs accepted by e-mail are advanced for at most poll_interval; a job\n"
	"that ends mails its results to the sender. A deferred message stays in the mailbox and\n"
	"is tried again after [source] retry_interval, then twice as long each time. A message\n"
	"a crash left recorded but not moved is finished, its record printed again with\n"
	"\"resumed\": true (the same message, not a duplicate).\n"
	"\n"
	"  --daemon    repeat every poll_interval until SIGTERM or SIGINT (the message in hand\n"
	"              is finished first); SIGHUP re-reads the configuration\n"
	"  --dry-run   do everything, change nothing, send nothing, move nothing\n"
	"  --help      show this help\n"
	"\n"
	"Exit status: 0 done, 75 when a message was deferred, the mailbox was unreachable or\n"
	"another poller holds the lock, 78 configuration error.\n";

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	else
		stop_requested = 1;
}

/* One poller per state db: an exclusive lock on a file beside it. Returns the fd, or -1 with
 * *st set (SG_ETEMP when another poller holds it). */
static int take_lock(const sg_config *cfg, sg_status *st, char **err)
{
	g_autofree char *path = g_strconcat(cfg->store.path, ".lock", NULL);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		*st = sg_fail(err, SG_EIO, "%s: %s", path, g_strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		*st = sg_fail(err, SG_ETEMP, "%s: another stockgate poll holds the lock on this state db",
			path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Advances the batch jobs by e-mail for at most poll_interval (a pass must not block). A local
 * failure is logged and returned with *err set when it is still NULL. */
static sg_status run_jobs(const sg_config *cfg, sg_store *store, sg_transport *transport,
			  char **err)
{
	g_autofree char *e = NULL;
	sg_pipeline p = {
		.cfg = cfg,
		.store = store,
		.transport = transport,
		.poll = true,
	};
	sg_jobs_pass pass;
	sg_status st = sg_pipeline_jobs(&p, MAX(cfg->source.poll_interval, 1), &pass, &e);

	if (pass.interrupted)
		stop_requested = 1;
	if (st != SG_OK) {
		log_error("poll: batch jobs: %s", e ? e : "failed");
		sg_fail(err, st, "batch jobs: %s", e ? e : "failed");
		return st;
	}
	if (pass.advanced || pass.reports || pass.reports_pending)
		log_info("poll: batch jobs: %d advanced, %d ended, %d results sent, %d under way",
			 pass.advanced, pass.finished, pass.reports, pass.under_way);
	return SG_OK;
}

/*
 * The mailbox is worked in chunks: one FETCH for a chunk's bodies, the messages handled one by
 * one (each recorded and answered in its own transaction), then one MOVE a folder for the
 * chunk. A chunk is at most POLL_CHUNK messages and, past its first, POLL_CHUNK_BYTES of
 * bodies (they wait in files kept for the poll while the chunk is handled).
 */
#define POLL_CHUNK 50
#define POLL_CHUNK_BYTES (64 << 20)

static guint chunk_len(GPtrArray *msgs, guint from, gint64 max_size)
{
	gint64 bytes = 0;
	guint n = 0;

	while (from + n < msgs->len && n < POLL_CHUNK) {
		const sg_source_msg *m = msgs->pdata[from + n];
		/* Over max_message_size only the header block is fetched. */
		gint64 size = max_size > 0 && m->size > max_size ? 0 : MAX(m->size, 0);

		if (n > 0 && bytes + size > POLL_CHUNK_BYTES)
			break;
		bytes += size;
		n++;
	}
	return n;
}

/* The messages of a chunk going to one folder. */
typedef struct {
	const char *folder;
	GPtrArray *msgs; /* sg_source_msg *, borrowed */
} move_set;

/*
 * Syncs the reports a deferring transport wrote to the outbox (all: also those an earlier poll
 * of this boot wrote and was killed before it synced them) and drops their spooled copies, in a
 * commit the chunk's WAL sync makes durable; a failed sync marks them to be sent again. Before
 * the records that say they were written can be on disk for good (pipeline.c).
 */
static sg_status reports_sync(sg_pipeline *p, bool all, char **err)
{
	g_autofree char *e = NULL;
	sg_status st, dst;
	bool any = true;

	if (!p->transport || !p->transport->deferred)
		return SG_OK;
	if (all && (st = sg_report_spool_any_unsynced(p->store, sg_boot_id(), &any, err)) != SG_OK)
		return st;
	if (!any)
		return SG_OK;
	st = sg_transport_sync(p->transport, all, err);
	if ((dst = sg_store_durable(p->store, false, &e)) == SG_OK)
		dst = sg_report_spool_synced(p->store, sg_boot_id(), st == SG_OK, &e);
	sg_store_durable(p->store, true, NULL);
	if (st == SG_OK && dst != SG_OK) {
		*err = g_steal_pointer(&e);
		st = dst;
	}
	return st;
}

/* Handles ms[0..n): fetched as a set, each message through the pipeline with its record printed,
 * then moved as sets, one a folder. A message not fetched, or not moved, stays for the next poll
 * (*deferred); a local failure stops the pass with *err. */
static sg_status poll_chunk(const sg_config *cfg, sg_pipeline *p, sg_source *src,
			    sg_source_msg **ms, guint n, guint *handled, bool *deferred, char **err)
{
	g_autofree char *fe = NULL, *flush_e = NULL;
	move_set sets[4] = {{0}};
	guint nsets = 0;
	sg_status st;

	/* Over max_message_size: only its header block is fetched, for the reply decision; the
	 * pipeline fails it too_large (SPEC 7, 5.7). */
	st = sg_source_fetch_set(src, ms, n, cfg->limits.max_message_size, &fe);
	if (st == SG_ETEMP) {
		log_warnx("poll: %s", fe ? fe : "not fetched; next poll");
		*deferred = true;
	} else if (st != SG_OK) {
		*err = g_strdup(fe ? fe : "cannot fetch");
		return st;
	}
	for (guint i = 0; i < n && !stop_requested; i++) {
		sg_source_msg *m = ms[i];
		g_autofree char *rec = NULL, *e = NULL;
		const char *outcome = NULL, *folder = NULL;
		guint k;

		if (!m->path) {
			*deferred = true;
			continue;
		}
		/* the next message of the chunk fetched is parsed while this one is applied */
		p->next = NULL;
		for (guint j = i + 1; j < n && !p->next; j++)
			if (ms[j]->path)
				p->next = ms[j];
		st = sg_pipeline_handle(p, m, &rec, &outcome, &folder, &e);
		p->next = NULL;
		if (st != SG_OK) {
			/* A local failure (I/O, the store): stop this pass, the message stays;
			 * what the chunk handled before it is still moved. */
			*err = g_strdup_printf("%s: %s", m->id, e ? e : "failed");
			break;
		}
		printf("%s\n", rec);
		fflush(stdout);
		(*handled)++;
		if (strcmp(outcome, "deferred") == 0)
			*deferred = true;
		sg_crash_point("before_move");
		if (!folder || p->dry_run)
			continue;
		for (k = 0; k < nsets && strcmp(sets[k].folder, folder) != 0; k++)
			;
		if (k == nsets) {
			g_assert(nsets < G_N_ELEMENTS(sets));
			sets[nsets].folder = folder;
			sets[nsets++].msgs = g_ptr_array_new();
		}
		g_ptr_array_add(sets[k].msgs, m);
	}
	/* The chunk's records (and the marks of the reports sent), committed without waiting for
	 * the disk, are synced here in one go: a crash from here on finds them in the ledger, and
	 * the next poll moves the messages (SPEC 7). A flush that fails leaves them all for the
	 * next poll. */
	if (reports_sync(p, false, &flush_e) != SG_OK ||
	    (nsets > 0 && sg_store_flush(p->store, &flush_e) != SG_OK)) {
		log_warnx("poll: the chunk is not moved: %s", flush_e ? flush_e : "");
		*deferred = true;
		for (guint k = 0; k < nsets; k++)
			g_ptr_array_set_size(sets[k].msgs, 0);
	}
	sg_crash_point("before_set_move");
	for (guint k = 0; k < nsets; k++) {
		g_autofree char *e = NULL;
		sg_status mst = sets[k].msgs->len == 0
				    ? SG_OK
				    : sg_source_move_set(src, (sg_source_msg **)sets[k].msgs->pdata,
							 sets[k].msgs->len, sets[k].folder, &e);
		if (mst != SG_OK) {
			/* The ledger knows the messages: the next poll moves them. */
			log_warnx("poll: %u message(s) not moved to %s: %s", sets[k].msgs->len,
				  sets[k].folder, e ? e : "");
			*deferred = true;
		}
		g_ptr_array_unref(sets[k].msgs);
		sg_crash_point("after_set_move");
	}
	/* The chunk's fetched copies are not needed any more (a message left is fetched again);
	 * kept files are rewritten by the next chunk. */
	for (guint i = 0; i < n; i++)
		if (ms[i]->path && (ms[i]->path_is_temp || ms[i]->path_is_kept)) {
			if (ms[i]->path_is_temp)
				unlink(ms[i]->path);
			g_clear_pointer(&ms[i]->path, g_free);
			ms[i]->path_is_temp = ms[i]->path_is_kept = false;
		}
	return *err ? st : SG_OK;
}

/* One pass. *deferred is set when a message was deferred. */
static sg_status poll_once(const sg_config *cfg, sg_store *store, bool dry_run, bool *deferred)
{
	g_autofree char *err = NULL;
	g_autoptr(GPtrArray) msgs = NULL;
	sg_source *src = NULL;
	sg_transport *transport = NULL;
	sg_mirror *mirror = NULL;
	sg_status st;
	guint handled = 0;
	sg_pipeline p = {
		.cfg = cfg,
		.store = store,
		.dry_run = dry_run,
		.poll = true,
	};

	/* The transport first: the batch jobs need it even when the mailbox is unreachable. */
	if (!dry_run && (st = sg_transport_open(cfg, &transport, &err)) != SG_OK)
		goto out;
	if ((st = sg_source_open(cfg, &src, &err)) != SG_OK)
		goto out;
	if ((st = sg_mirror_open(cfg, &mirror, &err)) != SG_OK)
		goto out;
	if ((st = src->ops->list(src, cfg->source.max_messages_per_poll, &msgs, &err)) != SG_OK)
		goto out;
	p.transport = transport;
	p.mirror = mirror;
	/* The outbox is synced once a chunk, before its moves, not once a report (HACKING.md). */
	if (sg_transport_defer(transport, true) && (st = reports_sync(&p, true, &err)) != SG_OK)
		goto out;
	for (guint i = 0; i < msgs->len && !stop_requested;) {
		guint n = chunk_len(msgs, i, cfg->limits.max_message_size);

		st = poll_chunk(cfg, &p, src, (sg_source_msg **)msgs->pdata + i, n, &handled,
				deferred, &err);
		if (st != SG_OK)
			goto out;
		i += n;
	}
	log_info("poll: %u message%s handled", handled, handled == 1 ? "" : "s");
	st = SG_OK;
out:
	if (st != SG_OK)
		log_error("poll: %s", err ? err : "failed");
	if (transport && transport->deferred) {
		/* what a stopped chunk wrote; then the batch jobs' reports are synced as sent */
		g_autofree char *e = NULL;
		if (reports_sync(&p, false, &e) != SG_OK)
			log_warnx("poll: %s", e ? e : "the report outbox is not synced");
		sg_transport_defer(transport, false);
	}
	if (transport && !stop_requested) {
		sg_status jst = run_jobs(cfg, store, transport, &err);
		if (st == SG_OK)
			st = jst;
	}
	if (!dry_run)
		sg_store_poll_record(store, sg_now(), st == SG_OK, st == SG_OK ? NULL : err, NULL);
	sg_mirror_close(mirror);
	if (transport)
		sg_transport_close(transport);
	if (src)
		sg_source_close(src);
	/* An unreachable mailbox or server is temporary: cron and systemd try again. */
	if (st == SG_EUNAVAIL || st == SG_EIO)
		st = SG_ETEMP;
	return st;
}

sg_status cmd_poll(sg_ctx *ctx, int argc, char **argv)
{
	bool daemon = false, dry_run = false, deferred = false;
	const sg_opt opts[] = {
		{ "daemon", .flag = &daemon },
		{ "dry-run", .flag = &dry_run },
		{ NULL },
	};
	g_autofree char *err = NULL;
	sg_store *store = NULL;
	sg_status st;
	int lock;

	if (!sg_cmd_options(argc, argv, "+", opts, usage, &st))
		return st;
	if (optind != argc)
		return sg_cmd_usage(usage, SG_EUSAGE);
	if (!ctx->cfg->source.url)
		return sg_cmd_fail(SG_ECONFIG, "[source] url is not set: poll needs a mailbox "
					       "(imaps://…, imap://… or maildir:/path)");
	if ((lock = take_lock(ctx->cfg, &st, &err)) < 0)
		return sg_cmd_fail(st, err);

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((st = sg_ctx_store(ctx, &store)) != SG_OK)
		goto out;
	do {
		deferred = false;
		st = poll_once(ctx->cfg, store, dry_run, &deferred);
		if (!daemon)
			break;
		for (int s = 0; s < ctx->cfg->source.poll_interval && !stop_requested; s++) {
			sleep(1);
			if (reload_requested) {
				sg_config *fresh = NULL;
				g_autofree char *e = NULL;

				reload_requested = 0;
				if (sg_config_load(ctx->config_path, &fresh, &e) == SG_OK) {
					/* The store path is fixed for the life of the lock. */
					sg_config_free(ctx->cfg);
					ctx->cfg = fresh;
					log_info("configuration re-read from %s", ctx->config_path);
				} else {
					log_error("SIGHUP: keeping the old configuration: %s", e);
				}
				break;
			}
		}
	} while (!stop_requested);
	if (daemon)
		st = SG_OK; /* a stop request is a normal end */
	else if (st == SG_OK && deferred)
		st = SG_ETEMP;
out:
	sg_store_close(store);
	close(lock);
	return st;
}
