/* delivery.c: reads one delivery of the VIN service (a result POST) from its bytes, whatever its form. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "delivery.h"

/*
 * The service documents no delivery format, and a real client of it accepts JSON, a form, or a
 * multipart form with the report as a file, with the fields possibly under `data` (an object or
 * a JSON string). So the fields of every form go into one table of names, and the names the
 * service has been seen to use are looked up in it.
 */

#define MAX_FIELD 65536  /* bytes of one field's value kept; longer ones are dropped */
#define MAX_PARTS 100    /* parts of a multipart body */
#define MAX_DEPTH 3      /* `data` inside `data` … */
#define PART_HEADERS 8192 /* bytes of one part's headers */

void sg_delivery_clear(sg_delivery *d)
{
	g_free(d->id);
	g_free(d->vin);
	g_free(d->status);
	g_free(d->url);
	g_free(d->error);
	memset(d, 0, sizeof(*d));
}

char *sg_delivery_sha256(const sg_delivery *d)
{
	const char *const f[] = { d->id, d->vin, d->status, d->url, d->error };
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
	char *hex;

	/* Each field as absent, or present with its length: no two deliveries run together. */
	for (size_t i = 0; i < G_N_ELEMENTS(f); i++) {
		g_autofree char *len = f[i] ? g_strdup_printf("%zu:", strlen(f[i])) : g_strdup("-");
		g_checksum_update(sum, (const guchar *)len, -1);
		if (f[i])
			g_checksum_update(sum, (const guchar *)f[i], (gssize)strlen(f[i]));
	}
	if (d->file) {
		g_autofree char *len = g_strdup_printf("%zu:", d->file_len);
		g_checksum_update(sum, (const guchar *)len, -1);
		g_checksum_update(sum, (const guchar *)d->file, (gssize)d->file_len);
	}
	hex = g_strdup(g_checksum_get_string(sum));
	g_checksum_free(sum);
	return hex;
}

typedef struct {
	GHashTable *fields; /* lower-case name → value (UTF-8) */
	const char *reason;
	char *err;
	int depth;
} reader;

static void put(reader *r, const char *name, const char *value, size_t len)
{
	if (len > MAX_FIELD || !g_utf8_validate(value, (gssize)len, NULL) ||
	    memchr(value, 0, len) || !g_utf8_validate(name, -1, NULL))
		return;
	g_hash_table_replace(r->fields, g_ascii_strdown(name, -1), g_strndup(value, len));
}

static bool fail(reader *r, const char *reason, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static bool fail(reader *r, const char *reason, const char *fmt, ...)
{
	va_list ap;

	if (r->reason == NULL) {
		r->reason = reason;
		va_start(ap, fmt);
		r->err = g_strdup_vprintf(fmt, ap);
		va_end(ap);
	}
	return false;
}

static bool read_text(reader *r, const char *text, size_t len);

/* The members of a JSON object; `data` (an object, or a string holding one) goes in after the
 * others so that its fields win. */
static bool read_json_object(reader *r, const cJSON *o)
{
	const cJSON *data = NULL;

	for (const cJSON *m = o->child; m; m = m->next) {
		if (m->string == NULL)
			continue;
		if (g_ascii_strcasecmp(m->string, "data") == 0 &&
		    (cJSON_IsObject(m) || cJSON_IsString(m))) {
			data = m;
			continue;
		}
		if (cJSON_IsString(m)) {
			put(r, m->string, m->valuestring, strlen(m->valuestring));
		} else if (cJSON_IsNumber(m)) {
			char buf[G_ASCII_DTOSTR_BUF_SIZE];
			/* A whole number prints as one ("12", as the queue's id was kept); the
			 * range check first, as a cast of a larger double is undefined. */
			if (fabs(m->valuedouble) < 1e15 && m->valuedouble == floor(m->valuedouble))
				g_snprintf(buf, sizeof(buf), "%lld", (long long)m->valuedouble);
			else
				g_ascii_dtostr(buf, sizeof(buf), m->valuedouble);
			put(r, m->string, buf, strlen(buf));
		} else if (cJSON_IsBool(m)) {
			put(r, m->string, cJSON_IsTrue(m) ? "true" : "false", cJSON_IsTrue(m) ? 4 : 5);
		}
	}
	if (data == NULL)
		return true;
	if (++r->depth > MAX_DEPTH)
		return fail(r, "bad_json", "`data` is nested more than %d deep", MAX_DEPTH);
	bool ok = cJSON_IsObject(data) ? read_json_object(r, data)
				       : read_text(r, data->valuestring, strlen(data->valuestring));
	r->depth--;
	return ok;
}

static bool read_json(reader *r, const char *text, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(text, len);
	bool ok;

	if (j == NULL || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return fail(r, "bad_json", "the body is not a JSON object");
	}
	ok = read_json_object(r, j);
	cJSON_Delete(j);
	return ok;
}

static bool read_form(reader *r, const char *text, size_t len)
{
	g_autoptr(GError) gerr = NULL;
	g_autoptr(GHashTable) params = NULL;
	GHashTableIter it;
	gpointer k, v;
	const char *data = NULL;

	if (len == 0)
		return true;
	params = g_uri_parse_params(text, (gssize)len, "&", G_URI_PARAMS_WWW_FORM, &gerr);
	if (params == NULL)
		return fail(r, "bad_form", "the form cannot be decoded: %s", gerr->message);
	g_hash_table_iter_init(&it, params);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		if (g_ascii_strcasecmp(k, "data") == 0)
			data = v;
		else
			put(r, k, v, strlen(v));
	}
	if (data == NULL)
		return true;
	if (++r->depth > MAX_DEPTH)
		return fail(r, "bad_form", "`data` is nested more than %d deep", MAX_DEPTH);
	bool ok = read_text(r, data, strlen(data));
	r->depth--;
	return ok;
}

/* A body (or a `data` string) without a usable type: JSON when it looks like it, else a form. */
static bool read_text(reader *r, const char *text, size_t len)
{
	size_t i = 0;

	while (i < len && g_ascii_isspace(text[i]))
		i++;
	if (i < len && (text[i] == '{' || text[i] == '['))
		return read_json(r, text + i, len - i);
	return read_form(r, text, len);
}

/* The value of parameter name in a header value "type; a=1; name="x"" (quotes and backslash
 * escapes undone), or NULL; g_free. */
static char *header_param(const char *value, const char *name)
{
	const char *p = strchr(value, ';');
	size_t nlen = strlen(name);

	while (p) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (g_ascii_strncasecmp(p, name, nlen) == 0) {
			const char *q = p + nlen;
			while (*q == ' ' || *q == '\t')
				q++;
			if (*q == '=') {
				GString *out = g_string_new(NULL);
				q++;
				while (*q == ' ' || *q == '\t')
					q++;
				if (*q == '"') {
					for (q++; *q && *q != '"'; q++) {
						if (*q == '\\' && q[1])
							q++;
						g_string_append_c(out, *q);
					}
					if (*q != '"') {
						g_string_free(out, TRUE);
						return NULL;
					}
				} else {
					for (; *q && *q != ';' && *q != ' ' && *q != '\t'; q++)
						g_string_append_c(out, *q);
				}
				return g_string_free(out, FALSE);
			}
		}
		/* Skip to the next ';' outside quotes. */
		bool quoted = false;
		for (; *p; p++) {
			if (*p == '\\' && quoted && p[1])
				p++;
			else if (*p == '"')
				quoted = !quoted;
			else if (*p == ';' && !quoted)
				break;
		}
		p = *p ? p : NULL;
	}
	return NULL;
}

/* The file's type from its first bytes: "pdf", "html" or NULL. */
static const char *sniff(const char *b, size_t n)
{
	size_t head = MIN(n, 1024), i = 0;

	if (n == 0)
		return NULL;
	if (memmem(b, head, "%PDF-", 5))
		return "pdf";
	if (head >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0)
		i = 3;
	while (i < head && g_ascii_isspace(b[i]))
		i++;
	if (head - i >= 14 && g_ascii_strncasecmp(b + i, "<!doctype html", 14) == 0)
		return "html";
	for (size_t k = i; k + 5 <= head; k++)
		if (g_ascii_strncasecmp(b + k, "<html", 5) == 0)
			return "html";
	return NULL;
}

/* One line of a part's headers ends at LF (CRLF or bare LF). */
static bool read_multipart(reader *r, const char *ctype, const char *body, size_t len,
			   const char **file, size_t *file_len)
{
	g_autofree char *boundary = header_param(ctype, "boundary");
	g_autofree char *delim = NULL;
	size_t dlen, nparts = 0;
	const char *p, *end = body + len;

	if (boundary == NULL || *boundary == 0 || strlen(boundary) > 70)
		return fail(r, "bad_multipart", "the Content-Type gives no usable boundary");
	delim = g_strconcat("--", boundary, NULL);
	dlen = strlen(delim);
	/* The first delimiter opens the body or follows a preamble's line break. */
	if (len >= dlen && memcmp(body, delim, dlen) == 0) {
		p = body + dlen;
	} else {
		g_autofree char *nd = g_strconcat("\n", delim, NULL);
		const char *f = memmem(body, len, nd, dlen + 1);
		if (f == NULL)
			return fail(r, "bad_multipart", "the boundary never occurs in the body");
		p = f + dlen + 1;
	}
	for (;;) {
		const char *hend, *next, *content, *cend;
		g_autofree char *disp = NULL, *ptype = NULL;

		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return true; /* the closing delimiter; an epilogue is ignored */
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
			p += 2;
		else if (p < end && *p == '\n')
			p++;
		else
			return fail(r, "bad_multipart", "a delimiter is not followed by a line break");
		if (++nparts > MAX_PARTS)
			return fail(r, "bad_multipart", "more than %d parts", MAX_PARTS);

		/* The part's headers, up to an empty line. */
		hend = p;
		for (;;) {
			const char *nl = memchr(hend, '\n', (size_t)(end - hend));
			size_t linelen;
			if (nl == NULL || nl - p > PART_HEADERS)
				return fail(r, "bad_multipart", "a part's headers do not end");
			linelen = (size_t)(nl - hend);
			if (linelen && hend[linelen - 1] == '\r')
				linelen--;
			if (linelen == 0) {
				content = nl + 1;
				break;
			}
			g_autofree char *line = g_strndup(hend, linelen);
			char *colon = strchr(line, ':');
			if (colon == NULL || strlen(line) != linelen)
				return fail(r, "bad_multipart", "a part has a malformed header line");
			*colon = 0;
			if (g_ascii_strcasecmp(g_strstrip(line), "content-disposition") == 0) {
				g_free(disp);
				disp = g_strdup(g_strstrip(colon + 1));
			} else if (g_ascii_strcasecmp(line, "content-type") == 0) {
				g_free(ptype);
				ptype = g_strdup(g_strstrip(colon + 1));
			}
			hend = nl + 1;
		}

		/* The content runs to the line break before the next delimiter. */
		{
			g_autofree char *nd = g_strconcat("\n", delim, NULL);
			next = memmem(content, (size_t)(end - content), nd, dlen + 1);
			if (next == NULL)
				return fail(r, "bad_multipart", "a part is not closed by the boundary");
			cend = next;
			if (cend > content && cend[-1] == '\r')
				cend--;
			p = next + dlen + 1;
		}

		g_autofree char *name = disp ? header_param(disp, "name") : NULL;
		g_autofree char *fname = disp ? header_param(disp, "filename") : NULL;
		bool is_file = fname != NULL ||
			       (ptype && g_ascii_strncasecmp(ptype, "text/plain", 10) != 0 &&
				g_ascii_strncasecmp(ptype, "application/json", 16) != 0);
		if (is_file) {
			/* The first file is the report; its name is never used (P11). */
			if (*file == NULL) {
				*file = content;
				*file_len = (size_t)(cend - content);
			}
		} else if (name && *name) {
			if (g_ascii_strcasecmp(name, "data") == 0) {
				if (++r->depth > MAX_DEPTH)
					return fail(r, "bad_multipart", "`data` nested too deep");
				if (!read_text(r, content, (size_t)(cend - content)))
					return false;
				r->depth--;
			} else {
				put(r, name, content, (size_t)(cend - content));
			}
		}
	}
}

static char *field(reader *r, const char *const *names)
{
	for (; *names; names++) {
		const char *v = g_hash_table_lookup(r->fields, *names);
		if (v) {
			g_autofree char *t = g_strstrip(g_strdup(v));
			if (*t)
				return g_steal_pointer(&t);
		}
	}
	return NULL;
}

/* Status words that mean the report will not come (the exact words are not documented). */
bool sg_delivery_status_failed(const char *s)
{
	static const char *const words[] = { "error", "failed", "fail", "failure", "rejected",
					     "refused", "not_found", "notfound", "not found",
					     "no_data", "nodata", "cancelled", "canceled",
					     "ошибка", "отказ", NULL };
	g_autofree char *low = g_utf8_strdown(s, -1);

	for (int i = 0; words[i]; i++)
		if (strcmp(low, words[i]) == 0)
			return true;
	return false;
}

sg_status sg_delivery_parse(const char *content_type, const char *query, const char *body,
			    size_t len, sg_delivery *d, const char **reason, char **err)
{
	static const char *const ids[] = { "id", "uid", "order_uiid", "order_uuid", NULL };
	static const char *const vins[] = { "vin", NULL };
	static const char *const statuses[] = { "status", "state", NULL };
	static const char *const urls[] = { "url", "link", "report_url", NULL };
	static const char *const errors[] = { "error", "error_message", NULL };
	reader r = { .fields = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free) };
	g_autofree char *ctype = NULL;
	const char *file = NULL;
	size_t file_len = 0;
	bool ok = true;

	memset(d, 0, sizeof(*d));
	*reason = NULL;
	if (query && *query)
		ok = read_form(&r, query, strlen(query));
	if (ok && len > 0) {
		ctype = g_ascii_strdown(content_type ? content_type : "", -1);
		g_strstrip(ctype);
		if (g_str_has_prefix(ctype, "application/json") || g_str_has_suffix(ctype, "+json"))
			ok = read_json(&r, body, len);
		else if (g_str_has_prefix(ctype, "application/x-www-form-urlencoded"))
			ok = read_text(&r, body, len); /* JSON sent with a form's label is JSON */
		else if (g_str_has_prefix(ctype, "multipart/form-data"))
			ok = read_multipart(&r, content_type, body, len, &file, &file_len);
		else if (*ctype == 0 || g_str_has_prefix(ctype, "text/plain"))
			ok = read_text(&r, body, len);
		else
			ok = fail(&r, "unsupported_type",
				  "a body of type '%.60s' (send JSON, a form or multipart/form-data)",
				  content_type);
	}
	if (ok) {
		d->id = field(&r, ids);
		d->vin = field(&r, vins);
		d->status = field(&r, statuses);
		d->url = field(&r, urls);
		d->error = field(&r, errors);
		if (d->vin) {
			char *up = g_ascii_strup(d->vin, -1);
			g_free(d->vin);
			d->vin = up;
		}
		if (d->error && (strcmp(d->error, "false") == 0 || strcmp(d->error, "0") == 0 ||
				 strcmp(d->error, "null") == 0))
			g_clear_pointer(&d->error, g_free);
		d->failed = (d->status && sg_delivery_status_failed(d->status)) || d->error != NULL;
		if (d->id == NULL && d->vin == NULL)
			ok = fail(&r, "no_id", "the delivery names no id (id, uid, order_uiid, "
				  "order_uuid) and no vin");
	}
	if (ok && file) {
		d->file_ext = sniff(file, file_len);
		if (d->file_ext == NULL)
			ok = fail(&r, "bad_report_file", "the attached file (%zu bytes) is neither "
				  "PDF nor HTML", file_len);
		d->file = file;
		d->file_len = file_len;
	}
	g_hash_table_destroy(r.fields);
	if (!ok) {
		sg_delivery_clear(d);
		*reason = r.reason;
		sg_fail(err, SG_EDATA, "%s: %s", r.reason, r.err);
		g_free(r.err);
		return SG_EDATA;
	}
	return SG_OK;
}
