/* fuzz-delivery.c: libFuzzer target for the VIN service's deliveries (outside input) as `serve` reads them. */
#include <stdint.h>
#include <string.h>

#include "delivery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The first byte picks a content type; with 0xff the first line is the content type itself
 * (boundary parameters from the input). A line starting with '?' after that is the query. */
static const char *const types[] = {
	"application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b",
	"multipart/form-data; boundary=\"a b\\\"c\"", "text/plain", NULL, "application/pdf",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *ctype = NULL, *query = NULL, *err = NULL;
	const char *p = (const char *)data, *end = p + size, *reason = NULL;
	const char *type;
	sg_delivery d;

	if (size == 0)
		return 0;
	if (data[0] == 0xff) {
		const char *nl = memchr(p + 1, '\n', (size_t)(end - p - 1));
		if (nl == NULL)
			return 0;
		ctype = g_strndup(p + 1, (gsize)(nl - p - 1));
		type = ctype;
		p = nl + 1;
	} else {
		type = types[data[0] % G_N_ELEMENTS(types)];
		p++;
	}
	if (p < end && *p == '?') {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl) {
			query = g_strndup(p + 1, (gsize)(nl - p - 1));
			p = nl + 1;
		}
	}
	/* The receiver hands over its buffer with a NUL after the bytes; the copy gives ASan the
	 * exact end. */
	size_t n = (size_t)(end - p);
	char *body = g_malloc(n + 1);
	memcpy(body, p, n);
	body[n] = 0;
	if (sg_delivery_parse(type, query, body, n, &d, &reason, &err) == SG_OK) {
		if (d.file && (d.file < body || d.file + d.file_len > body + n))
			__builtin_trap();
		if (d.file && d.file_ext == NULL)
			__builtin_trap();
		sg_delivery_clear(&d);
	} else if (reason == NULL) {
		__builtin_trap();
	}
	g_free(body);
	return 0;
}
