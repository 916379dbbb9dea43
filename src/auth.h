/* auth.h: who sent a message and whether it may have effects or a reply (SPEC 5.1, 5.2). */
#pragma once
#include "message.h"
#include "store.h"

typedef struct {
	const char *reason; /* NULL: authenticated; else a static silent-reject reason:
	                     * bounce, own_report, several_senders, unknown_sender, no_role,
	                     * bad_key, unauthenticated */
	char *dealer;       /* the sender's dealer when the sender is a registered user, else NULL */
	char *reply_to;     /* the address as stored in the registry (reports go there), or NULL */
	bool dev_mode;      /* the dealer is in development mode */
	bool automatic;     /* Auto-Submitted other than no, or Precedence bulk/junk/list: process
	                     * but do not answer */
} sg_auth;

/*
 * Checks the message against the registry for the given method (which decides the role needed;
 * NULL: the method is unknown, only sender and key are checked). trusted_authserv_id: NULL = off.
 * Returns SG_OK (see a->reason for the verdict) or a store failure.
 */
sg_status sg_auth_check(sg_store *st, const sg_message *m, const char *method,
			const char *trusted_authserv_id, sg_auth *a, char **err);
/* Every check but the key's, for too_large and too_complex (whose body cannot be read): a
 * reply goes only to a registered user with the role (SPEC 5.7). */
sg_status sg_auth_check_unkeyed(sg_store *st, const sg_message *m, const char *method,
				const char *trusted_authserv_id, sg_auth *a, char **err);
/* The registry part: reason NULL when from is a registered user with the role for method. */
sg_status sg_auth_sender(sg_store *st, const char *from, const char *method, sg_auth *a,
			 char **err);
void sg_auth_clear(sg_auth *a);
/* RFC 8601: does the topmost Authentication-Results header of authserv_id show dmarc=pass, or
 * dkim=pass with header.d (or header.i) equal to the From domain? Pure function, for tests. */
bool sg_auth_results_pass(char *const *auth_results, const char *authserv_id,
			  const char *from_domain);
