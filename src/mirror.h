/* mirror.h: the dealer REST API of seed 004, kept equal to what stockgate applies (SPEC 8). */
#pragma once
#include "config.h"
#include "store.h"

typedef struct sg_mirror sg_mirror;

/* Opens the client (one reused connection); *out is NULL when [mirror] url is empty. */
sg_status sg_mirror_open(const sg_config *cfg, sg_mirror **out, char **err);
void sg_mirror_close(sg_mirror *m);

/*
 * Makes the server's warehouse list equal to temp.stage_wh (see stock.h): warehouse.list, then
 * add, update and delete (last) in batches of batch_size. Remains the same for the other calls.
 * Returns SG_OK (accepted), SG_EDATA (the server answered status error: fr is rejected
 * mirror_error with the server's messages in fr->detail), SG_ETEMP (connection failure, timeout,
 * HTTP 5xx or 429: *err says which).
 */
sg_status sg_mirror_warehouses(sg_mirror *m, const char *key, sg_store *st, sg_file_result *fr,
			       char **err);
/* Replaces the server's remains of warehouse code with temp.stage_rem in one remains.add, the
 * request body generated as a stream. */
sg_status sg_mirror_remains(sg_mirror *m, const char *key, const char *code, sg_store *st,
			    sg_file_result *fr, char **err);
