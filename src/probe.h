/* probe.h: the peers `stockgate config check --connect` tries, one row each, and how. */
#pragma once
#include "config.h"

/*
 * One peer: the IMAP source, the SMTP relay, the REST mirror, each vendor API. A check logs in
 * or asks a question the service answers for free; none sends a message or makes a charged call.
 * Kinds and the receiver add their row to sg_peers[] when they land.
 */
typedef struct {
	const char *name; /* the config section: "source", "report", "mirror", "vin", … */
	/* NULL when the config uses the peer, else why it is not checked (static text). */
	const char *(*off)(const sg_config *cfg);
	/* SG_OK with *said (g_free) saying what works; else SG_EUNAVAIL (or SG_ECONFIG for a
	 * setting the check cannot use) with *err in plain words, starting with what kind of
	 * failure it is: "DNS:", "refused:", "timeout:", "certificate:", "TLS:", "login:",
	 * "folder:", "HTTP 404:", "protocol:". Never a secret in either. */
	sg_status (*check)(const sg_config *cfg, char **said, char **err);
} sg_peer;

extern const sg_peer sg_peers[]; /* the last row's name is NULL */

/* The words for a libcurl failure (a CURLcode), with detail (curl's error buffer, may be "" or
 * NULL) after them: "DNS: the host name does not resolve (…)"; g_free. */
char *sg_probe_curl_words(int curlcode, const char *detail);
