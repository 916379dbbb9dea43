/* transport.h: where reports go: a dir: outbox of .eml files, or SMTP(S). One struct of
 * function pointers, one file per driver (transport-dir.c, transport-smtp.c). */
#pragma once
#include "config.h"

typedef struct sg_transport sg_transport;

typedef struct {
	const char *name;
	const char *done; /* the record's "report" value on success: "written" or "sent" */
	/* Sends data (an RFC 5322 message, CRLF line ends) to rcpts (NULL-terminated). Returns
	 * SG_OK, SG_ETEMP (try later: connection, 4xx), SG_EUNAVAIL (permanent 5xx), SG_EIO. */
	sg_status (*send)(sg_transport *t, const char *envelope_from, const char *const *rcpts,
			  const char *data, size_t len, char **err);
	/* Makes durable what sends wrote while deferred (sg_transport_defer); all: also what
	 * another process wrote (one killed before its sync). NULL: a send is
	 * durable when it returns (an SMTP server has the report once it accepted it). */
	sg_status (*sync)(sg_transport *t, bool all, char **err);
	void (*close)(sg_transport *t);
} sg_transport_ops;

struct sg_transport {
	const sg_transport_ops *ops; /* drivers embed this struct first */
	bool deferred;               /* sends need not be durable before sg_transport_sync */
};

/* Opens the transport named by [report] url. SG_ECONFIG for an unknown scheme. */
sg_status sg_transport_open(const sg_config *cfg, sg_transport **out, char **err);
void sg_transport_close(sg_transport *t);

/*
 * Lets sends return before what they wrote is on disk, until sg_transport_sync makes it so (a
 * poll syncs its chunk's reports at once, before it moves the messages). Returns whether the
 * transport defers: only one that writes files does, and only where the boot is known
 * (sg_boot_id), so that a report written but not synced when the machine went down is known
 * to be sent again (pipeline.c). on false: every send durable again (sync first).
 */
bool sg_transport_defer(sg_transport *t, bool on);
/* Makes what the deferred sends wrote durable (SG_OK at once when nothing is waiting); all:
 * whatever waits in the outbox, also from another process. */
sg_status sg_transport_sync(sg_transport *t, bool all, char **err);

sg_status sg_transport_dir_open(const char *dir, sg_transport **out, char **err);
sg_status sg_transport_smtp_open(const sg_config *cfg, sg_transport **out, char **err);
