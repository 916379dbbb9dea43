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
