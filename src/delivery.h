/* delivery.h: reads one delivery of the VIN service (a result POST) from its bytes, whatever its form. */
#pragma once
#include "sg.h"

/*
 * What a delivery says. Every string is g_malloc'd (NULL when absent); file points into the body
 * given to sg_delivery_parse and lives as long as it does.
 */
typedef struct sg_delivery_s {
	char *id;            /* id, uid, order_uiid or order_uuid: the id the queue returned */
	char *vin;           /* upper-cased as sent; checked by the caller before use */
	char *status;        /* the service's status word, or NULL */
	char *url;           /* url, link or report_url: where the service keeps the report */
	char *error;         /* the service's error text, or NULL */
	bool failed;         /* the status (or an error field) says the report failed */
	const char *file;    /* the report's bytes (a multipart file part), or NULL */
	size_t file_len;
	const char *file_ext; /* "pdf" or "html", decided from the bytes, never from a name */
} sg_delivery;

void sg_delivery_clear(sg_delivery *d);

/* Whether a status word of the service says the report failed ("error", "rejected", …). */
bool sg_delivery_status_failed(const char *status);

/*
 * The SHA-256 (hex, g_free) of what a delivery says: its fields and its file, not the bytes it
 * came in, so that a repeat with another multipart boundary (a client draws one per request)
 * or another form is the same delivery.
 */
char *sg_delivery_sha256(const sg_delivery *d);

/*
 * Reads a delivery: the fields of query (a URL query string without '?', or NULL) and of the
 * body by its content type: application/json, application/x-www-form-urlencoded or
 * multipart/form-data (fields and one report file). Fields may sit under `data`, as an object
 * or as a JSON (or form) string. Returns SG_OK, or SG_EDATA with *reason set to a static name
 * (bad_json, bad_form, bad_multipart, unsupported_type, no_id, bad_report_file) and *err to the
 * detail.
 */
sg_status sg_delivery_parse(const char *content_type, const char *query, const char *body,
			    size_t len, sg_delivery *d, const char **reason, char **err);
