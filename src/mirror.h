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
/* Replaces the server's remains of warehouse code with the dealer's stored list (as the open
 * transaction has it) in one remains.add, the request body generated as a stream. */
sg_status sg_mirror_remains(sg_mirror *m, const char *key, const char *dealer, const char *code,
			    sg_store *st, sg_file_result *fr, char **err);

/*
 * `stockgate mirror ping`: one warehouse.list with key (NULL: an empty hash, which only shows
 * whether the server answers). Returns SG_OK (*count: the server's warehouses; -1 when no key
 * was given and the server answered status error), SG_EDATA (the key is refused), SG_EUNAVAIL
 * (DNS, connection, TLS, timeout, an HTTP status, an answer that is not the API's). *err says
 * what in plain words, for every status but SG_OK.
 */
sg_status sg_mirror_ping(sg_mirror *m, const char *key, long *count, char **err);

/* ---- pure parts, exposed for the unit tests ---- */

struct cJSON;

/* One warehouse as the server and the file know it (strings owned; never NULL). */
typedef struct {
	char *code, *address, *contacts;
} sg_mirror_wh;
sg_mirror_wh *sg_mirror_wh_new(const char *code, const char *address, const char *contacts);
void sg_mirror_wh_free(void *w);

/*
 * Classifies one answer: HTTP status and body. SG_OK: 2xx and status.code "ok" (*root the parsed
 * tree, cJSON_Delete it). SG_EDATA: status.code other than "ok", or an HTTP status that waiting
 * will not change (3xx, 4xx other than 408/429): *err the status and the server's messages.
 * SG_ETEMP: 5xx, 408, 429, or a body that is not the API's JSON: *err says which.
 */
sg_status sg_mirror_parse_answer(long http, const char *body, size_t len, struct cJSON **root,
				 char **err);
/* The server's messages of a parsed answer, one a line ("" when none); g_free. */
char *sg_mirror_messages(const struct cJSON *root);
/* The "warehouses" of a warehouse.list answer, as sg_mirror_wh * (codes given as numbers are
 * read as text). SG_ETEMP when the shape is not the API's. */
sg_status sg_mirror_parse_list(const struct cJSON *root, GPtrArray **out, char **err);
/*
 * The changes that turn server into want (both arrays of sg_mirror_wh *, any order): add gets
 * the codes only in want, upd those whose address or contacts differ (the wanted value), del
 * those only on the server. The output arrays borrow the elements and are sorted by code.
 */
void sg_mirror_diff(GPtrArray *server, GPtrArray *want, GPtrArray *add, GPtrArray *upd,
		    GPtrArray *del);
