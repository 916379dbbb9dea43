/* pipeline.h: one message through the whole job: ledger, parse, sender check, method, files,
 * apply + record (one transaction), report. Shared by `process` and `poll`. */
#pragma once
#include "config.h"
#include "mirror.h"
#include "source.h"
#include "store.h"
#include "transport.h"

typedef struct {
	const sg_config *cfg;
	sg_store *store;
	sg_transport *transport; /* NULL: reports are not sent ("none") */
	sg_mirror *mirror;       /* NULL: local store only */
	bool dry_run;            /* do everything, change nothing, send nothing */
	bool poll;               /* from `poll`: max_age and deferral limits apply */
	const sg_source_msg *next; /* the message handled after this one, or NULL: parsed ahead
	                            * while this one is applied (sg_message_parse_ahead) */
} sg_pipeline;

/*
 * Handles one message. *record gets the result line (SPEC 5.6, no newline; g_free), *outcome
 * the outcome (static), *folder the folder the message goes to (processed, rejected or failed
 * folder; NULL: it stays, i.e. deferred). A message met before is finished (a pending report is
 * sent) or reported as a duplicate. Returns SG_OK when the message got an outcome (deferred
 * included), or a local failure (SG_EIO, SG_EINTERNAL) with nothing recorded.
 */
sg_status sg_pipeline_handle(sg_pipeline *p, const sg_source_msg *m, char **record,
			     const char **outcome, const char **folder, char **err);

/* What one pass over the batch jobs did. */
typedef struct {
	int advanced;        /* jobs run in this pass */
	int finished;        /* jobs that ended in this pass */
	int reports;         /* results reports delivered */
	int reports_pending; /* results reports left for the next pass (transport down) */
	int under_way;       /* jobs with rows still to do */
	bool interrupted;    /* SIGINT or SIGTERM came during a job: the caller should stop */
} sg_jobs_pass;

/*
 * Advances the batch jobs accepted by e-mail (SPEC 9), oldest first, within budget seconds in
 * all (no new call starts after that; calls in flight finish). The journal carries a job over
 * to the next pass and never lets a row be charged twice. A job with no row left to do ends:
 * its results CSV (the list's columns, then status, error and the kind's columns, in the
 * list's encoding and delimiter) is mailed to the sender with a report, threaded under the
 * request; a report the transport cannot take now waits for the next pass. A job whose owner is
 * no longer a user with the role ends without a report. A job starts calls until [source]
 * max_defer after it came; past it a pass starts none (sg_batch_opts.no_calls) and ends the job
 * with its unfinished rows as pending once no row waits for a report (sg_batch_summary.waiting:
 * a vin row until its own wait_until, which bounds the job). Nothing is done in a dry run. Returns
 * SG_OK, or a local failure (SG_EIO: the store, the job's files) with *err set.
 */
sg_status sg_pipeline_jobs(sg_pipeline *p, double budget, sg_jobs_pass *out, char **err);
