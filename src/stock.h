/* stock.h: the stock semantics of SPEC 5.4–5.5: a warehouses or remains CSV validated whole,
 * then applied with replace/delete semantics, all or nothing. */
#pragma once
#include "store.h"

typedef struct sg_mirror sg_mirror;

typedef struct {
	const char *dealer;        /* NULL: validate only (`check`): no store effects, no
	                            * warehouse/catalogue lookups */
	const char *kind;          /* "warehouses" or "remains" */
	gint64 date;               /* the message's instant, for `superseded`; 0: no check */
	bool dev_mode;             /* apply and count, then roll the file back */
	long max_rows;             /* more data rows: too_many_rows */
	int max_field_length;      /* characters; longer: row error field_too_long */
	const char *charset_label; /* the part's charset parameter, or NULL */
	GHashTable *seen;          /* remains codes already applied in this message (owned by the
	                            * caller, g_str_hash): a second file for one is
	                            * duplicate_warehouse. A successful remains file adds a
	                            * g_strdup'd key: create it with g_free as key destroy */
	sg_mirror *mirror;         /* NULL: local store only */
	const char *key;           /* the dealer's key from the message, for the mirror */
} sg_stock_ctx;

/*
 * Reads, validates and applies one file inside the caller's open transaction, in a savepoint of
 * its own: a rejected file leaves nothing behind. While the savepoint is open, the mirror reads
 * the file from the temp table
 *     temp.stage_wh(code TEXT PRIMARY KEY, address TEXT, contacts TEXT)     -- warehouses
 * or from the warehouse's remains list as just stored (summed, catalogue-filtered).
 * The verdict and the counts go to fr (name already set). dealer NULL: fr->applied means valid,
 * only rows is counted.
 * Returns SG_OK (verdict in fr), SG_ETEMP (the mirror is unavailable: the caller rolls the whole
 * message back and defers it; *err says why), or SG_EIO/SG_EINTERNAL.
 */
sg_status sg_stock_apply_file(sg_store *st, const sg_stock_ctx *ctx, const char *path,
			      sg_file_result *fr, char **err);
/* The same for a file in memory (an attachment's bytes), called name in the messages. */
sg_status sg_stock_apply_bytes(sg_store *st, const sg_stock_ctx *ctx, const char *name,
			       GBytes *data, sg_file_result *fr, char **err);

/* Parses a quantity (SPEC 5.4): whole number 0–999999999, spaces/NBSP/U+202F group thousands,
 * ',' or '.' decimal with a zero fraction. Returns false when it is not one. */
bool sg_parse_quantity(const char *s, long long *out);
/* Whether s is a valid warehouse code (1–64 Latin/Cyrillic letters, digits, - _ .). */
bool sg_valid_code(const char *s);
