/* csvin.c: reading dealers' CSV files (SPEC 5.4): encoding, delimiter, header, rows; the CSV
 * writer. */
#include "csvin.h"

#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define READ_CHUNK (64 * 1024)	 /* bytes read from the file at a time */
#define SNIFF_BYTES (256 * 1024) /* decoded start of the file the delimiter is sniffed on */
#define SNIFF_RECORDS 10	 /* the header may stand on any of the first 10 rows */
#define MAX_CELLS 16384		 /* Excel's column limit: a record with more is malformed */
#define DEFAULT_CELL_CAP (1024 * 1024)
#define CSV_BLOCK 4096 /* libcsv's field buffer grows by this much */

static const char sniff_delims[] = {';', ',', '\t', '|'};

/* ------------------------------------------------------------------------------------------ */
/* windows-1251: a table built once from the system converter, so no code point is hand-typed. */

typedef struct {
	guint8 len; /* 0: the byte has no character in windows-1251 */
	char utf8[3];
} cp_entry;

#define CP_REV_MAX 0x2200 /* every windows-1251 character is below U+2200 */
static cp_entry cp1251_fwd[128];
static guint8 cp1251_rev[CP_REV_MAX];
static gsize cp1251_ready;

static void cp1251_init(void)
{
	if (!g_once_init_enter(&cp1251_ready))
		return;
	for (int i = 0; i < 128; i++) {
		char in = (char)(0x80 + i);
		gsize w = 0;
		g_autofree char *u = g_convert(&in, 1, "UTF-8", "WINDOWS-1251", NULL, &w, NULL);
		gunichar c;

		if (u == NULL || w < 1 || w > 3)
			continue;
		memcpy(cp1251_fwd[i].utf8, u, w);
		cp1251_fwd[i].len = (guint8)w;
		c = g_utf8_get_char(u);
		if (c < CP_REV_MAX)
			cp1251_rev[c] = (guint8)(0x80 + i);
	}
	g_once_init_leave(&cp1251_ready, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding the file into UTF-8, one read at a time. */

typedef enum { DEC_UTF8, DEC_CP1251, DEC_ICONV } dec_kind;

/* Where the bytes come from: a file (fd) or a buffer in memory (an attachment). */
typedef struct {
	int fd; /* -1: mem */
	const guint8 *mem;
	size_t len, pos;
} source;

typedef struct {
	source *src;
	dec_kind kind;
	const char *name; /* the encoding's name for messages */
	GIConv cd;
	unsigned char in[READ_CHUNK + 8];
	size_t carry;	 /* bytes of an incomplete character kept from the previous read */
	guint64 offset;	 /* file offset of in[0] */
	GByteArray *out; /* the last decoded piece */
	char *bad;	 /* why the bytes are not text in this encoding, when they are not */
	bool io_error;
} decoder;

/* How many bytes at the end of s start a UTF-8 sequence that the next read completes. */
static size_t utf8_tail(const unsigned char *s, size_t n)
{
	for (size_t k = 1; k <= 3 && k <= n; k++) {
		unsigned char c = s[n - k];
		size_t need;

		if ((c & 0xC0) == 0x80)
			continue;
		need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		return need > k ? k : 0;
	}
	return 0;
}

static ssize_t read_full(source *src, void *buf, size_t len)
{
	size_t got = 0;

	if (src->fd < 0) {
		got = MIN(len, src->len - src->pos);
		if (got > 0) /* an empty buffer may have no address */
			memcpy(buf, src->mem + src->pos, got);
		src->pos += got;
		return (ssize_t)got;
	}
	while (got < len) {
		ssize_t r = read(src->fd, (char *)buf + got, len - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* A NUL in decoded text is refused: it would silently cut every string built from the cell. */
static bool check_nul(decoder *d, const guint8 *s, size_t n, guint64 at)
{
	const guint8 *z = memchr(s, 0, n);

	if (z == NULL)
		return true;
	d->bad = g_strdup_printf(
	    "a NUL byte near offset %" G_GUINT64_FORMAT
	    " (binary data, or text in a 16-bit encoding without a byte-order mark)",
	    at + (guint64)(z - s));
	return false;
}

/*
 * Decodes the next piece of the file into d->out. Returns 1 with data (possibly empty), 0 at the
 * end, -1 on an error (d->bad set for bytes that are not text, d->io_error for a failed read).
 */
static int decoder_next(decoder *d)
{
	ssize_t r;
	size_t n, use = 0;
	bool eof;

	g_byte_array_set_size(d->out, 0);
	r = read_full(d->src, d->in + d->carry, READ_CHUNK);
	if (r < 0) {
		d->io_error = true;
		return -1;
	}
	n = d->carry + (size_t)r;
	eof = r == 0;
	if (n == 0)
		return 0;
	if (eof && d->carry > 0) {
		d->bad = g_strdup_printf("the file ends inside a %s character", d->name);
		return -1;
	}

	switch (d->kind) {
	case DEC_UTF8: {
		const gchar *end;

		use = n - utf8_tail(d->in, n);
		if (!check_nul(d, d->in, use, d->offset))
			return -1;
		if (!g_utf8_validate_len((const gchar *)d->in, use, &end)) {
			d->bad =
			    g_strdup_printf("bytes that are not UTF-8 at offset %" G_GUINT64_FORMAT,
					    d->offset + (guint64)((const guint8 *)end - d->in));
			return -1;
		}
		g_byte_array_append(d->out, d->in, (guint)use);
		break;
	}
	case DEC_CP1251: {
		guint8 *o;

		use = n;
		g_byte_array_set_size(d->out, (guint)(use * 3 + 4));
		o = d->out->data;
		for (size_t i = 0; i < use; i++) {
			unsigned char c = d->in[i];

			if (c < 0x80) {
				if (c == 0) {
					check_nul(d, d->in + i, 1, d->offset + i);
					return -1;
				}
				*o++ = c;
			} else {
				const cp_entry *e = &cp1251_fwd[c - 0x80];

				if (e->len == 0) {
					d->bad = g_strdup_printf(
					    "byte 0x%02X at offset %" G_GUINT64_FORMAT
					    " is not a windows-1251 character",
					    c, d->offset + i);
					return -1;
				}
				memcpy(o, e->utf8, 3);
				o += e->len;
			}
		}
		g_byte_array_set_size(d->out, (guint)(o - d->out->data));
		break;
	}
	case DEC_ICONV: {
		gchar *ip = (gchar *)d->in, *op;
		gsize il = n, ol;

		g_byte_array_set_size(d->out, (guint)(n * 3 + 16));
		op = (gchar *)d->out->data;
		ol = d->out->len;
		while (il > 0) {
			gsize rc = g_iconv(d->cd, &ip, &il, &op, &ol);

			if (rc != (gsize)-1)
				break;
			if (errno == E2BIG) {
				size_t done = (size_t)((guint8 *)op - d->out->data);

				g_byte_array_set_size(d->out, d->out->len * 2);
				op = (gchar *)d->out->data + done;
				ol = d->out->len - done;
				continue;
			}
			if (errno == EINVAL)
				break; /* an incomplete character: carried to the next read */
			d->bad =
			    g_strdup_printf("bytes that are not %s at offset %" G_GUINT64_FORMAT,
					    d->name, d->offset + (guint64)((guint8 *)ip - d->in));
			return -1;
		}
		use = n - il;
		g_byte_array_set_size(d->out, (guint)((guint8 *)op - d->out->data));
		if (!check_nul(d, d->out->data, d->out->len, d->offset))
			return -1;
		break;
	}
	}

	d->carry = n - use;
	if (d->carry > 0)
		memmove(d->in, d->in + use, d->carry);
	d->offset += use;
	return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* The encoding decision (SPEC 5.4), made before anything is parsed. */

typedef struct {
	dec_kind kind;
	const char *encoding; /* static or interned */
	const char *iconv_name;
	size_t bom_len;
} enc_choice;

static bool label_is(const char *l, const char *const *names)
{
	for (; *names; names++)
		if (g_ascii_strcasecmp(l, *names) == 0)
			return true;
	return false;
}

/* Checks the file's first bytes and, without a BOM, reads it once to see whether it is UTF-8. */
static sg_status decide_encoding(source *src, const char *label, enc_choice *c,
				 sg_csv_info *info)
{
	static const char *const utf8_names[] = {"utf-8", "utf8", "us-ascii", "ascii", NULL};
	static const char *const cp1251_names[] = {"windows-1251", "cp1251",  "x-cp1251",
						   "win-1251",	   "cp-1251", NULL};
	g_autofree unsigned char *buf = g_malloc(READ_CHUNK + 4);
	size_t carry = 0;
	bool first = true, valid = true;
	g_autofree char *lab = label ? g_strstrip(g_strdup(label)) : NULL;

	memset(c, 0, sizeof(*c));
	for (;;) {
		ssize_t r = read_full(src, buf + carry, READ_CHUNK);
		size_t n, use;
		const gchar *end;

		if (r < 0)
			return SG_EIO;
		n = carry + (size_t)r;
		if (first) {
			first = false;
			if (n >= 4 && (memcmp(buf, "PK\x03\x04", 4) == 0 ||
				       memcmp(buf, "\xD0\xCF\x11\xE0", 4) == 0)) {
				info->reason = "not_csv";
				info->detail = g_strdup_printf("the file is an Excel workbook "
							       "(%s), not CSV text: save it as CSV",
							       buf[0] == 'P' ? "xlsx" : "xls");
				return SG_EDATA;
			}
			if (n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
				*c = (enc_choice){DEC_UTF8, "utf-8", NULL, 3};
				return SG_OK;
			}
			if (n >= 2 && memcmp(buf, "\xFF\xFE", 2) == 0) {
				*c = (enc_choice){DEC_ICONV, "utf-16le", "UTF-16LE", 2};
				return SG_OK;
			}
			if (n >= 2 && memcmp(buf, "\xFE\xFF", 2) == 0) {
				*c = (enc_choice){DEC_ICONV, "utf-16be", "UTF-16BE", 2};
				return SG_OK;
			}
		}
		if (r == 0) {
			valid = carry == 0;
			break;
		}
		use = n - utf8_tail(buf, n);
		if (memchr(buf, 0, use) != NULL || !g_utf8_validate_len((gchar *)buf, use, &end)) {
			valid = false;
			break;
		}
		carry = n - use;
		memmove(buf, buf + use, carry);
	}

	/* Valid UTF-8 with non-ASCII bytes is UTF-8 whatever the label says; an ASCII file reads
	 * the same in every charset stockgate meets, so it is called UTF-8 too. */
	if (valid) {
		*c = (enc_choice){DEC_UTF8, "utf-8", NULL, 0};
		return SG_OK;
	}
	/* A label that says UTF-8 or ASCII on bytes that are neither is wrong: fall back. */
	if (lab && *lab && !label_is(lab, utf8_names) && !label_is(lab, cp1251_names)) {
		GIConv cd = g_iconv_open("UTF-8", lab);

		if (cd != (GIConv)-1) {
			g_autofree char *low = g_ascii_strdown(lab, -1);

			g_iconv_close(cd);
			c->kind = DEC_ICONV;
			c->encoding = g_intern_string(low);
			c->iconv_name = c->encoding;
			return SG_OK;
		}
	}
	*c = (enc_choice){DEC_CP1251, "windows-1251", NULL, 0};
	return SG_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Records: libcsv over the decoded text, with spreadsheet line numbers and caps. */

typedef int (*record_fn)(void *ctx, long line, char **cells, size_t n);

typedef struct {
	struct csv_parser p;
	size_t cap;	   /* bytes of one cell */
	size_t record_cap; /* bytes of one record */
	/* The current record: its cells' text, each NUL-terminated, and where each starts. Plain
	 * arrays rather than GLib's: this is the per-cell hot path of a million-row file. */
	char *buf;
	size_t len, size;
	size_t *offs;
	char **cells; /* offs_n + 1 entries when delivered */
	size_t n, offs_size;
	long line;     /* spreadsheet rows ended so far */
	int last_term; /* the character that ended the previous record */
	record_fn fn;
	void *ctx;
	bool stop;   /* fn asked to stop */
	char *error; /* malformed_csv detail */
	long error_line;
} rparser;

static int space_only(unsigned char c) { return c == ' '; }

static void rp_fail(rparser *rp, char *msg)
{
	if (rp->error == NULL) {
		rp->error = msg;
		rp->error_line = rp->line + 1;
	} else {
		g_free(msg);
	}
}

static void rp_cell(void *field, size_t len, void *data)
{
	rparser *rp = data;
	size_t at = rp->len;

	if (rp->stop || rp->error)
		return;
	if (len > rp->cap) {
		rp_fail(rp, g_strdup_printf("a cell longer than %zu bytes at line %ld", rp->cap,
					    rp->line + 1));
		return;
	}
	if (rp->n >= MAX_CELLS) {
		rp_fail(rp,
			g_strdup_printf("more than %d cells at line %ld", MAX_CELLS, rp->line + 1));
		return;
	}
	if (at + len + 1 > rp->record_cap) {
		rp_fail(rp, g_strdup_printf("a record longer than %zu bytes at line %ld",
					    rp->record_cap, rp->line + 1));
		return;
	}
	if (rp->n == rp->offs_size) {
		rp->offs_size = rp->offs_size ? rp->offs_size * 2 : 16;
		rp->offs = g_renew(size_t, rp->offs, rp->offs_size);
		rp->cells = g_renew(char *, rp->cells, rp->offs_size + 1);
	}
	if (at + len + 1 > rp->size) {
		rp->size = MAX(rp->size * 2, at + len + 1);
		rp->buf = g_realloc(rp->buf, rp->size);
	}
	rp->offs[rp->n++] = at;
	if (len > 0)
		memcpy(rp->buf + at, field, len);
	rp->buf[at + len] = '\0';
	rp->len = at + len + 1;
}

/* Whether a cell may need trimming: sg_trim's blanks start with one of these bytes and end
 * with one of the others. Most cells need none, and this skips the call. */
static inline bool may_trim(const char *s, size_t len)
{
	unsigned char a = (unsigned char)s[0], z = (unsigned char)s[len - 1];

	return a <= ' ' || a == 0xC2 || a == 0xE2 || a == 0xEF || z <= ' ' || z == 0xA0 ||
	       z == 0xAF || z == 0x87 || z == 0xBF;
}

static void rp_record(int term, void *data)
{
	rparser *rp = data;
	size_t n = rp->n;
	bool blank = true;

	/* With CSV_REPALL_NL the LF of a CRLF arrives as an empty record of its own. */
	if (term == '\n' && rp->last_term == '\r' && n == 0) {
		rp->last_term = '\n';
		return;
	}
	rp->last_term = term;
	if (rp->stop || rp->error) {
		rp->line++;
		goto out;
	}
	rp->line++;
	for (size_t i = 0; i < n; i++) {
		char *cell = rp->buf + rp->offs[i];
		size_t len = (i + 1 < n ? rp->offs[i + 1] : rp->len) - rp->offs[i] - 1;

		if (len > 0 && may_trim(cell, len))
			sg_trim(cell);
		if (*cell)
			blank = false;
		rp->cells[i] = cell;
	}
	if (n > 0)
		rp->cells[n] = NULL;
	if (!blank && rp->fn(rp->ctx, rp->line, rp->cells, n) != 0)
		rp->stop = true;
out:
	rp->len = 0;
	rp->n = 0;
}

static void rp_init(rparser *rp, char delim, size_t cap, record_fn fn, void *ctx)
{
	memset(rp, 0, sizeof(*rp));
	csv_init(&rp->p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL);
	csv_set_delim(&rp->p, (unsigned char)delim);
	/* libcsv's default treats TAB as a space to trim, which would eat TAB delimiters; the
	 * default (inline, faster than a call a byte) is kept for the other delimiters. */
	if (delim == '\t')
		csv_set_space_func(&rp->p, space_only);
	csv_set_blk_size(&rp->p, CSV_BLOCK);
	rp->cap = cap;
	rp->record_cap = MAX(cap * 4, (size_t)4 * 1024 * 1024);
	rp->fn = fn;
	rp->ctx = ctx;
}

static void rp_clear(rparser *rp)
{
	csv_free(&rp->p);
	g_free(rp->buf);
	g_free(rp->offs);
	g_free(rp->cells);
	g_free(rp->error);
}

/* Feeds decoded text; false when parsing must end (an error, or fn asked to stop). */
static bool rp_feed(rparser *rp, const char *s, size_t len)
{
	while (len > 0 && !rp->stop && !rp->error) {
		size_t piece = MIN(len, (size_t)READ_CHUNK);
		size_t done = csv_parse(&rp->p, s, piece, rp_cell, rp_record, rp);

		if (rp->error)
			break;
		if (done < piece || csv_error(&rp->p) != CSV_SUCCESS) {
			rp_fail(rp, g_strdup_printf("a misplaced quote at line %ld (a quote inside "
						    "an unquoted cell, or text "
						    "after a closing quote)",
						    rp->line + 1));
			break;
		}
		/* libcsv keeps a whole cell in memory: stop a runaway one at the cap. */
		if (csv_get_buffer_size(&rp->p) > rp->cap + CSV_BLOCK + 1) {
			rp_fail(rp, g_strdup_printf("a cell longer than %zu bytes at line %ld",
						    rp->cap, rp->line + 1));
			break;
		}
		s += piece;
		len -= piece;
	}
	return !rp->stop && !rp->error;
}

static bool rp_finish(rparser *rp)
{
	if (rp->stop || rp->error)
		return false;
	if (csv_fini(&rp->p, rp_cell, rp_record, rp) != 0 && rp->error == NULL)
		rp_fail(rp,
			g_strdup_printf("unterminated quote starting at line %ld", rp->line + 1));
	return rp->error == NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Sniffing the delimiter and the header on the decoded start of the file. */

typedef struct {
	const sg_csv_opts *opts;
	int seen; /* non-blank records looked at */
	bool found;
	long header_line;
	long title_rows;
	char **header;
	size_t header_n;
	char **first;	/* the first non-blank record, for the bad_header detail */
	size_t first_n; /* its cells without the empty trailing ones */
	long first_line;
} sniff;

static char **copy_cells(char **cells, size_t n)
{
	char **v = g_new0(char *, n + 1);

	for (size_t i = 0; i < n; i++)
		v[i] = g_strdup(cells[i]);
	return v;
}

static int sniff_record(void *ctx, long line, char **cells, size_t n)
{
	sniff *s = ctx;
	size_t used = n;

	while (used > 0 && *cells[used - 1] == '\0')
		used--;
	if (s->seen == 0) {
		s->first = copy_cells(cells, used);
		s->first_n = used;
		s->first_line = line;
	}
	if (s->opts->header ? s->opts->header(s->opts->ctx, cells, n) : false) {
		s->found = true;
		s->header_line = line;
		s->title_rows = s->seen;
		s->header = copy_cells(cells, n);
		s->header_n = n;
		return 1;
	}
	return ++s->seen >= SNIFF_RECORDS;
}

/* ------------------------------------------------------------------------------------------ */

typedef struct {
	const sg_csv_opts *opts;
	long header_line;
	long records;
} rows_ctx;

static int data_record(void *ctx, long line, char **cells, size_t n)
{
	rows_ctx *rc = ctx;

	if (line <= rc->header_line)
		return 0;
	rc->records++;
	return rc->opts->row ? rc->opts->row(rc->opts->ctx, line, cells, n) : 0;
}

static sg_status fail_data(sg_csv_info *info, char **err, const char *path, const char *reason,
			   char *detail)
{
	g_autofree char *base = g_path_get_basename(path);

	info->reason = reason;
	g_free(info->detail);
	info->detail = detail;
	return sg_fail(err, SG_EDATA, "%s: %s: %s", base, reason, detail ? detail : "");
}

/* Moves src to offset (from the start); false when it cannot. */
static bool source_seek(source *src, size_t offset)
{
	if (src->fd >= 0)
		return lseek(src->fd, (off_t)offset, SEEK_SET) >= 0;
	src->pos = MIN(offset, src->len);
	return true;
}

/* The reader proper, over src; path names the input in messages. */
static sg_status read_source(const char *path, source *src, const sg_csv_opts *opts,
			     sg_csv_info *info, char **err)
{
	g_autofree decoder *d = NULL;
	g_autoptr(GByteArray) prefix = g_byte_array_new();
	size_t cap = opts->max_cell_bytes ? opts->max_cell_bytes : DEFAULT_CELL_CAP;
	enc_choice ec;
	sniff sn[G_N_ELEMENTS(sniff_delims)];
	int win = -1, widest = 0;
	bool whole = false;
	sg_status st = SG_OK;
	int r;

	memset(sn, 0, sizeof(sn));
	cp1251_init();

	st = decide_encoding(src, opts->charset_label, &ec, info);
	if (st == SG_EIO) {
		sg_fail(err, SG_EIO, "%s: %s", path, g_strerror(errno));
		goto out;
	}
	if (st != SG_OK) {
		st = fail_data(info, err, path, info->reason, g_steal_pointer(&info->detail));
		goto out;
	}
	info->encoding = ec.encoding;
	info->bom = ec.bom_len > 0;
	if (!source_seek(src, ec.bom_len)) {
		st = sg_fail(err, SG_EIO, "%s: %s", path, g_strerror(errno));
		goto out;
	}

	d = g_new0(decoder, 1);
	d->src = src;
	d->kind = ec.kind;
	d->name = ec.encoding;
	d->offset = ec.bom_len;
	d->cd = (GIConv)-1;
	d->out = g_byte_array_new();
	if (ec.kind == DEC_ICONV) {
		d->cd = g_iconv_open("UTF-8", ec.iconv_name);
		if (d->cd == (GIConv)-1) {
			st = sg_fail(err, SG_EINTERNAL, "%s: no converter from %s", path,
				     ec.iconv_name);
			goto out;
		}
	}

	/* The decoded start of the file, kept to sniff on and then parsed again for the rows. */
	while (prefix->len < SNIFF_BYTES && (r = decoder_next(d)) != 0) {
		if (r < 0)
			goto decode_error;
		g_byte_array_append(prefix, d->out->data, d->out->len);
	}
	whole = prefix->len < SNIFF_BYTES;

	for (size_t i = 0; i < G_N_ELEMENTS(sniff_delims); i++) {
		rparser rp;

		sn[i].opts = opts;
		rp_init(&rp, sniff_delims[i], cap, sniff_record, &sn[i]);
		if (rp_feed(&rp, (const char *)prefix->data, prefix->len) && whole)
			rp_finish(&rp);
		rp_clear(&rp);
		if (sn[i].found) {
			win = (int)i;
			break;
		}
		if (sn[i].first_n > sn[widest].first_n)
			widest = (int)i;
	}

	if (win < 0 && opts->header == NULL && sn[widest].first != NULL) {
		/* Without a matcher the first non-blank record, split widest, is the header. */
		win = widest;
		sn[win].found = true;
		sn[win].header_line = sn[win].first_line;
		sn[win].header = g_strdupv(sn[win].first);
		sn[win].header_n = sn[win].first_n;
	}
	if (win < 0) {
		g_autofree char *cells =
		    sn[widest].first ? g_strjoinv(", ", sn[widest].first) : g_strdup("");

		g_autofree char *base = g_path_get_basename(path);

		info->reason = "bad_header";
		info->detail = g_steal_pointer(&cells);
		if (sn[widest].first == NULL)
			st = sg_fail(err, SG_EDATA, "%s: bad_header: the file has no rows", base);
		else
			st =
			    sg_fail(err, SG_EDATA,
				    "%s: bad_header: no header in the first %d rows; the first row "
				    "holds: %s",
				    base, SNIFF_RECORDS, info->detail);
		goto out;
	}
	info->delimiter = sniff_delims[win];
	info->header_line = sn[win].header_line;
	info->title_rows = sn[win].title_rows;
	info->header = g_steal_pointer(&sn[win].header);
	info->header_n = sn[win].header_n;

	{
		rows_ctx rc = {opts, info->header_line, 0};
		rparser rp;
		bool go;

		rp_init(&rp, info->delimiter, cap, data_record, &rc);
		go = rp_feed(&rp, (const char *)prefix->data, prefix->len);
		g_byte_array_set_size(prefix, 0);
		while (go && (r = decoder_next(d)) != 0) {
			if (r < 0) {
				rp_clear(&rp);
				info->records = rc.records;
				goto decode_error;
			}
			go = rp_feed(&rp, (const char *)d->out->data, d->out->len);
		}
		if (go)
			rp_finish(&rp);
		info->records = rc.records;
		info->stopped = rp.stop;
		if (rp.error) {
			info->error_line = rp.error_line;
			st =
			    fail_data(info, err, path, "malformed_csv", g_steal_pointer(&rp.error));
		}
		rp_clear(&rp);
	}
	goto out;

decode_error:
	if (d->io_error)
		st = sg_fail(err, SG_EIO, "%s: %s", path, g_strerror(errno));
	else
		st = fail_data(info, err, path, "bad_encoding", g_steal_pointer(&d->bad));
out:
	for (size_t i = 0; i < G_N_ELEMENTS(sn); i++) {
		g_strfreev(sn[i].first);
		g_strfreev(sn[i].header);
	}
	if (d) {
		if (d->cd != (GIConv)-1)
			g_iconv_close(d->cd);
		if (d->out)
			g_byte_array_unref(d->out);
		g_free(d->bad);
	}
	return st;
}

sg_status sg_csv_read(const char *path, const sg_csv_opts *opts, sg_csv_info *info, char **err)
{
	source src = {.fd = open(path, O_RDONLY | O_CLOEXEC)};
	sg_status st;

	memset(info, 0, sizeof(*info));
	if (src.fd < 0)
		return sg_fail(err, errno == ENOENT ? SG_ENOINPUT : SG_EIO, "%s: %s", path,
			       g_strerror(errno));
	st = read_source(path, &src, opts, info, err);
	close(src.fd);
	return st;
}

sg_status sg_csv_read_mem(const char *name, const void *data, size_t len,
			  const sg_csv_opts *opts, sg_csv_info *info, char **err)
{
	source src = {.fd = -1, .mem = data, .len = len};

	memset(info, 0, sizeof(*info));
	return read_source(name, &src, opts, info, err);
}

void sg_csv_info_clear(sg_csv_info *info)
{
	if (info == NULL)
		return;
	g_strfreev(info->header);
	g_free(info->detail);
	memset(info, 0, sizeof(*info));
}

/* ------------------------------------------------------------------------------------------ */

char *sg_csv_header_key(const char *name)
{
	g_autofree char *v = NULL, *fold = NULL, *norm = NULL;
	GString *out;
	size_t len;
	bool space = false;

	if (name == NULL)
		return g_strdup("");
	v = g_utf8_make_valid(name, -1);
	sg_trim(v);
	len = strlen(v);
	if (len > 0 && v[len - 1] == ':') {
		v[len - 1] = '\0';
		sg_trim(v);
	}
	fold = g_utf8_casefold(v, -1);
	norm = g_utf8_normalize(fold, -1, G_NORMALIZE_DEFAULT_COMPOSE);
	if (norm == NULL)
		return g_strdup(fold);
	/* ё is written as е by most people; runs of any space count as one space. */
	out = g_string_sized_new(strlen(norm));
	for (const char *p = norm; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		if (g_unichar_isspace(c) || c == 0x00A0 || c == 0x202F || c == 0x2007) {
			space = true;
			continue;
		}
		if (space && out->len > 0)
			g_string_append_c(out, ' ');
		space = false;
		if (c == 0x0451)
			c = 0x0435;
		g_string_append_unichar(out, c);
	}
	return g_string_free(out, FALSE);
}

size_t sg_csv_cell_chars(const char *cell) { return cell ? (size_t)g_utf8_strlen(cell, -1) : 0; }

/* ------------------------------------------------------------------------------------------ */
/* The writer. */

typedef enum { W_UTF8, W_CP1251, W_UTF16LE } wenc;

struct sg_csv_writer {
	FILE *out;
	wenc enc;
	char delim;
	bool guard;
	bool failed;
	char *eol;
	GString *line;
};

sg_csv_writer *sg_csv_writer_new(FILE *out, const char *encoding, char delimiter, bool bom,
				 bool formula_guard, const char *eol)
{
	sg_csv_writer *w = g_new0(sg_csv_writer, 1);

	w->out = out;
	w->enc = W_UTF8;
	if (encoding && (g_ascii_strcasecmp(encoding, "windows-1251") == 0 ||
			 g_ascii_strcasecmp(encoding, "cp1251") == 0))
		w->enc = W_CP1251;
	else if (encoding && g_ascii_strcasecmp(encoding, "utf-16le") == 0)
		w->enc = W_UTF16LE;
	w->delim = delimiter ? delimiter : ',';
	w->guard = formula_guard;
	w->eol = g_strdup(eol ? eol : "\r\n");
	w->line = g_string_new(NULL);
	cp1251_init();
	if (bom && w->enc == W_UTF8)
		w->failed |= fwrite("\xEF\xBB\xBF", 1, 3, out) != 3;
	else if (bom && w->enc == W_UTF16LE)
		w->failed |= fwrite("\xFF\xFE", 1, 2, out) != 2;
	return w;
}

static bool needs_quotes(const char *s, char delim)
{
	size_t n = strlen(s);

	if (n == 0)
		return false;
	if (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')
		return true;
	for (; *s; s++)
		if (*s == delim || *s == '"' || *s == '\r' || *s == '\n')
			return true;
	return false;
}

static void write_encoded(sg_csv_writer *w, const char *s, size_t len)
{
	if (w->enc == W_UTF8) {
		w->failed |= fwrite(s, 1, len, w->out) != len;
	} else if (w->enc == W_CP1251) {
		g_autofree char *b = g_malloc(len + 1);
		size_t o = 0;

		for (const char *p = s; p < s + len; p = g_utf8_next_char(p)) {
			gunichar c = g_utf8_get_char_validated(p, s + len - p);

			if (c < 0x80)
				b[o++] = (char)c;
			else if (c < CP_REV_MAX && cp1251_rev[c])
				b[o++] = (char)cp1251_rev[c];
			else
				b[o++] = '?';
		}
		w->failed |= fwrite(b, 1, o, w->out) != o;
	} else {
		glong n = 0;
		g_autofree gunichar2 *u = g_utf8_to_utf16(s, (glong)len, NULL, &n, NULL);
		g_autofree guint8 *b = NULL;

		if (u == NULL) {
			g_autofree char *fixed = g_utf8_make_valid(s, (gssize)len);

			u = g_utf8_to_utf16(fixed, -1, NULL, &n, NULL);
		}
		b = g_malloc((size_t)n * 2 + 1);
		for (glong i = 0; i < n; i++) {
			b[2 * i] = (guint8)(u[i] & 0xFF);
			b[2 * i + 1] = (guint8)(u[i] >> 8);
		}
		w->failed |= fwrite(b, 1, (size_t)n * 2, w->out) != (size_t)n * 2;
	}
}

void sg_csv_write_row(sg_csv_writer *w, const char *const *cells, size_t n)
{
	GString *l = w->line;

	g_string_truncate(l, 0);
	for (size_t i = 0; i < n; i++) {
		const char *s = cells[i] ? cells[i] : "";
		bool guard = w->guard && strchr("=+-@\t\r", s[0]) != NULL && s[0] != '\0';

		if (i > 0)
			g_string_append_c(l, w->delim);
		if (guard || needs_quotes(s, w->delim)) {
			g_string_append_c(l, '"');
			if (guard)
				g_string_append_c(l, '\'');
			for (const char *p = s; *p; p++) {
				if (*p == '"')
					g_string_append_c(l, '"');
				g_string_append_c(l, *p);
			}
			g_string_append_c(l, '"');
		} else {
			g_string_append(l, s);
		}
	}
	g_string_append(l, w->eol);
	write_encoded(w, l->str, l->len);
}

bool sg_csv_writer_close(sg_csv_writer *w)
{
	bool ok;

	if (w == NULL)
		return true;
	ok = !w->failed && fflush(w->out) == 0 && !ferror(w->out);
	g_string_free(w->line, TRUE);
	g_free(w->eol);
	g_free(w);
	return ok;
}
