/* serve.h: the HTTP receiver of the VIN service's result deliveries (libmicrohttpd). */
#pragma once
#include "config.h"
#include "store.h"

/*
 * Receives deliveries at POST (or GET) /vin/<[vin] callback_secret> on [serve] listen until
 * SIGTERM or SIGINT, files each with its journal row (sg_batch_vin_deliver) and only then
 * answers 2xx. A wrong or missing secret is a 404; a body beyond [serve] max_body a 413; a
 * connection open longer than [serve] timeout in all (a slow peer) is cut; at most
 * [serve] max_connections at once. On a signal: no new connection, the requests in flight
 * finish, then SG_OK. Returns SG_ECONFIG (no secret, a bad listen address), SG_EUNAVAIL (the
 * address cannot be bound), SG_EINTERNAL (the HTTP library failed to start). store is the
 * caller's open store (opening it brought the schema up to date); each receiver thread opens
 * its own connection to the same db.
 */
sg_status sg_serve_run(const sg_config *cfg, sg_store *store, char **err);

/* The URL to give the service: [serve] public_url (else http://listen) + /vin/SECRET; NULL with
 * *err when no secret is configured. It holds the secret: print it, never log it. g_free. */
char *sg_serve_url(const sg_config *cfg, char **err);
