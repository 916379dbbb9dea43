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
	void (*close)(sg_transport *t);
} sg_transport_ops;

struct sg_transport {
	const sg_transport_ops *ops; /* drivers embed this struct first */
};

/* Opens the transport named by [report] url. SG_ECONFIG for an unknown scheme. */
sg_status sg_transport_open(const sg_config *cfg, sg_transport **out, char **err);
void sg_transport_close(sg_transport *t);

sg_status sg_transport_dir_open(const char *dir, sg_transport **out, char **err);
sg_status sg_transport_smtp_open(const sg_config *cfg, sg_transport **out, char **err);
