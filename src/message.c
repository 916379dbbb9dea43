/* message.c: a message taken apart safely: raw pre-scan, then gmime in a CPU-limited worker. */
#include "message.h"

#include <errno.h>
#include <fcntl.h>
#include <gmime/gmime.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/*
 * The worker reports its findings on a message in a manifest: records of one tag byte, a 4-byte
 * little-endian length and that many bytes. The parent decodes it as untrusted input: every
 * length is checked against what is left, strings must be NUL-free and are made valid UTF-8,
 * numbers are parsed strictly, each attachment has exactly one data record (its decoded bytes,
 * the only binary record) and its size is the length of those bytes, whatever else is claimed.
 */
enum {
	T_FROM = 'F',
	T_FROM_COUNT = 'C',
	T_SENDER = 'S',
	T_RP_NULL = 'N',
	T_MSGID = 'M',
	T_SUBJECT = 'J',
	T_DATE = 'D',
	T_AUTO = 'A',
	T_PREC = 'P',
	T_LIST_ID = 'L',
	T_REPORT = 'T',
	T_OWN = 'O',
	T_AR = 'H',
	T_KEY = 'K',
	T_ATT = 'a', /* starts an attachment: its raw file name ("" when none) */
	T_ATT_TYPE = 't',
	T_ATT_CHARSET = 'c',
	T_ATT_DATA = 'b', /* the attachment's decoded bytes (binary) */
	T_PARTS = 'p',
	T_DEPTH = 'd',
	T_END = 'E', /* last record: "ok", "too_complex" or "unparseable" */
};

/* A manifest is bounded by the message it describes: decoded parts are never larger than
 * their encoded text, a forwarded message written back by gmime only a little (headers
 * refolded), and the rest of the records are small. */
#define MANIFEST_SLACK (8 << 20)
#define MANIFEST_MAX(msg_size) ((gsize)(msg_size) * 2 + MANIFEST_SLACK)
#define KEY_MAX 1024
#define TEXT_MAX (1 << 20) /* decoded body text read to find the key */

/* ---- manifest writing (worker) ---- */

static void put(GByteArray *b, char tag, const char *s, size_t n)
{
	guint8 h[5];

	if (n > G_MAXUINT32)
		n = G_MAXUINT32; /* only a string can be this long; the parent refuses it */
	h[0] = (guint8)tag;
	h[1] = n & 0xff;
	h[2] = (n >> 8) & 0xff;
	h[3] = (n >> 16) & 0xff;
	h[4] = (n >> 24) & 0xff;
	g_byte_array_append(b, h, 5);
	g_byte_array_append(b, (const guint8 *)s, (guint)n);
}

static void put_str(GByteArray *b, char tag, const char *s)
{
	if (s != NULL)
		put(b, tag, s, strlen(s));
}

static void put_num(GByteArray *b, char tag, gint64 v)
{
	char buf[32];

	g_snprintf(buf, sizeof buf, "%" G_GINT64_FORMAT, v);
	put_str(b, tag, buf);
}

/* ---- small text helpers ---- */

/* Control characters (C0, DEL, C1) become spaces; the result is valid UTF-8. */
static char *clean_text(const char *s)
{
	char *v, *p;

	if (s == NULL)
		return NULL;
	v = g_utf8_make_valid(s, -1);
	for (p = v; *p != '\0'; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (c < 0x20 || c == 0x7f) {
			*p = ' ';
		} else if (c >= 0x80 && c < 0xa0) {
			/* a two-byte sequence: blank both bytes */
			p[0] = ' ';
			p[1] = ' ';
			p++;
		}
	}
	return v;
}

static char *header_clean(GMimeObject *o, const char *name)
{
	const char *v = g_mime_object_get_header(o, name);
	char *c;

	if (v == NULL)
		return NULL;
	c = clean_text(v);
	return g_strstrip(c);
}

/* ---- worker: facts from the tree ---- */

typedef struct {
	const sg_message_limits *lim;
	GByteArray *out;
	int parts, depth;
	bool too_complex, failed;
	bool conflicting_param;
	int nattach;
	GMimePart *plain, *html;
} walk;

static void on_warning(gint64 offset, GMimeParserWarning code, const char *item, gpointer data)
{
	walk *w = data;

	(void)offset;
	(void)item;
	if (code == GMIME_CRIT_CONFLICTING_PARAMETER)
		w->conflicting_param = true;
	else if (code == GMIME_CRIT_NESTING_OVERFLOW)
		w->too_complex = true;
}

static bool type_is(GMimeContentType *ct, const char *type, const char *sub)
{
	const char *t = ct ? g_mime_content_type_get_media_type(ct) : NULL;
	const char *s = ct ? g_mime_content_type_get_media_subtype(ct) : NULL;

	return t && s && g_ascii_strcasecmp(t, type) == 0 &&
	       (sub == NULL || g_ascii_strcasecmp(s, sub) == 0);
}

/* Left out altogether (SPEC 5.3): logos referred to by Content-ID, signatures and vCards. */
static bool ignored_part(GMimeObject *o, GMimeContentType *ct)
{
	if (type_is(ct, "image", NULL) && g_mime_object_get_content_id(o) != NULL)
		return true;
	return type_is(ct, "application", "pkcs7-signature") ||
	       type_is(ct, "application", "x-pkcs7-signature") ||
	       type_is(ct, "application", "pgp-signature") || type_is(ct, "text", "vcard") ||
	       type_is(ct, "text", "x-vcard");
}

static bool looks_attached(GMimeObject *o, const char *filename)
{
	GMimeContentDisposition *cd = g_mime_object_get_content_disposition(o);

	return (filename != NULL && *filename != '\0') ||
	       (cd != NULL && g_mime_content_disposition_is_attachment(cd));
}

/* A multipart with no boundary parameter would make gmime generate and re-encode one when
 * written, which is where gmime 3.2.13 can loop forever: such an object is never serialised. */
static bool safe_to_write(GMimeObject *o, int level)
{
	if (level > 64)
		return false;
	if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		GMimeObject *body = m ? g_mime_message_get_mime_part(m) : NULL;
		return body == NULL || safe_to_write(body, level + 1);
	}
	if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = GMIME_MULTIPART(o);
		int i, n = g_mime_multipart_get_count(mp);
		if (g_mime_object_get_content_type_parameter(o, "boundary") == NULL)
			return false;
		for (i = 0; i < n; i++)
			if (!safe_to_write(g_mime_multipart_get_part(mp, i), level + 1))
				return false;
	}
	return true;
}

static void add_attachment(walk *w, GMimeObject *o, GMimeContentType *ct, const char *filename)
{
	g_autofree char *type = NULL;
	const char *charset, *mt, *st;
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *data;
	bool ok = false;

	if (GMIME_IS_PART(o)) {
		GMimeDataWrapper *dw = g_mime_part_get_content(GMIME_PART(o));
		ok = dw == NULL || g_mime_data_wrapper_write_to_stream(dw, mem) != -1;
	} else if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		if (m != NULL && safe_to_write(GMIME_OBJECT(o), 0))
			ok = g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, mem) != -1;
		else if (m == NULL)
			ok = true;
	}
	data = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (!ok || data->len > G_MAXUINT32) {
		g_object_unref(mem);
		w->failed = true;
		return;
	}
	mt = g_mime_content_type_get_media_type(ct);
	st = g_mime_content_type_get_media_subtype(ct);
	type = g_strdup_printf("%s/%s", mt ? mt : "application", st ? st : "octet-stream");
	for (char *c = type; *c != '\0'; c++)
		*c = g_ascii_tolower(*c);
	put_str(w->out, T_ATT, filename ? filename : "");
	put_str(w->out, T_ATT_TYPE, type);
	charset = g_mime_object_get_content_type_parameter(o, "charset");
	put_str(w->out, T_ATT_CHARSET, charset);
	put(w->out, T_ATT_DATA, (const char *)data->data, data->len);
	g_object_unref(mem);
	w->nattach++;
}

static void walk_leaf(walk *w, GMimeObject *o)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	const char *filename = NULL;

	if (GMIME_IS_MESSAGE_PART(o)) {
		/* A forwarded message is a file as a whole; its From and A-R are never ours. */
		GMimeContentDisposition *cd = g_mime_object_get_content_disposition(o);
		if (cd != NULL)
			filename = g_mime_content_disposition_get_parameter(cd, "filename");
		if (filename == NULL)
			filename = g_mime_object_get_content_type_parameter(o, "name");
		add_attachment(w, o, ct, filename);
		return;
	}
	if (!GMIME_IS_PART(o) || ignored_part(o, ct))
		return;
	filename = g_mime_part_get_filename(GMIME_PART(o));
	if (!looks_attached(o, filename)) {
		if (w->plain == NULL && type_is(ct, "text", "plain"))
			w->plain = GMIME_PART(o);
		else if (w->html == NULL && type_is(ct, "text", "html"))
			w->html = GMIME_PART(o);
		return;
	}
	add_attachment(w, o, ct, filename);
}

/* Counts parts and depth, stopping as soon as a limit is passed; with leaves, also takes the
 * body and the attachments. The first pass counts only, so that a tree over the limits is
 * refused before any attachment is decoded. */
static void walk_tree(walk *w, GMimeObject *o, int depth, bool leaves)
{
	if (o == NULL || w->too_complex || w->failed)
		return;
	w->parts++;
	if (depth > w->depth)
		w->depth = depth;
	if (w->parts > w->lim->max_parts || depth > w->lim->max_mime_depth) {
		w->too_complex = true;
		return;
	}
	if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = GMIME_MULTIPART(o);
		int i, n = g_mime_multipart_get_count(mp);
		/* RFC 2046 requires the boundary; without it the structure is guesswork (and
		 * gmime 3.2.13 can loop forever re-encoding one): not a message we can read. */
		if (g_mime_object_get_content_type_parameter(o, "boundary") == NULL) {
			w->failed = true;
			return;
		}
		for (i = 0; i < n && !w->too_complex && !w->failed; i++)
			walk_tree(w, g_mime_multipart_get_part(mp, i), depth + 1, leaves);
		return;
	}
	if (leaves)
		walk_leaf(w, o);
}

/* Decoded text of a text part in UTF-8 (at most TEXT_MAX bytes), or NULL. */
static char *part_text(GMimePart *p)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(p);
	GMimeStream *mem, *filtered;
	GMimeFilter *conv;
	GByteArray *ba;
	const char *charset;
	char *s;

	if (dw == NULL)
		return NULL;
	mem = g_mime_stream_mem_new();
	filtered = g_mime_stream_filter_new(mem);
	charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(p), "charset");
	if (charset != NULL && g_ascii_strcasecmp(charset, "utf-8") != 0 &&
	    (conv = g_mime_filter_charset_new(charset, "utf-8")) != NULL) {
		g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), conv);
		g_object_unref(conv);
	}
	g_mime_data_wrapper_write_to_stream(dw, filtered);
	g_mime_stream_flush(filtered);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	s = g_strndup((const char *)ba->data, MIN(ba->len, (guint)TEXT_MAX));
	g_object_unref(filtered);
	g_object_unref(mem);
	return s;
}

/* The first non-empty line, trimmed (NBSP too), at most KEY_MAX bytes; NULL when none. */
static char *first_line(const char *text)
{
	g_autofree char *valid = NULL;
	const char *p, *e;

	if (text == NULL)
		return NULL;
	valid = g_utf8_make_valid(text, -1);
	for (p = valid; *p != '\0'; p = *e ? e + 1 : e) {
		g_autofree char *line = NULL;
		e = strchr(p, '\n');
		if (e == NULL)
			e = p + strlen(p);
		line = g_strndup(p, (gsize)(e - p));
		g_strdelimit(line, "\r\t", ' ');
		sg_trim(line);
		if (*line != '\0') {
			if (strlen(line) > KEY_MAX)
				line[KEY_MAX] = '\0';
			return g_utf8_make_valid(line, -1);
		}
	}
	return NULL;
}

static bool tag_is(const char *p, const char *name)
{
	size_t n = strlen(name);

	return g_ascii_strncasecmp(p, name, n) == 0 &&
	       (p[n] == '>' || p[n] == ' ' || p[n] == '/' || p[n] == '\t' || p[n] == '\n' ||
		p[n] == '\r' || p[n] == '\0');
}

/* The text of an HTML body: tags dropped (block tags end a line), head/style/script/title
 * contents skipped, the common entities decoded. Enough to find the first line. */
static char *html_to_text(const char *html)
{
	static const char *const skip[] = {"head", "style", "script", "title"};
	static const char *const blocks[] = {"br",  "p",     "/p",     "div", "/div", "tr",  "/tr",
					     "li",  "/li",   "h1",     "h2",  "h3",   "/h1", "/h2",
					     "/h3", "table", "/table", "td",  "/td"};
	GString *out = g_string_new(NULL);
	const char *p = html;
	size_t i;

	while (*p != '\0') {
		if (*p == '<') {
			const char *q = p + 1;
			if (strncmp(p, "<!--", 4) == 0) {
				const char *e = strstr(p + 4, "-->");
				p = e ? e + 3 : p + strlen(p);
				continue;
			}
			for (i = 0; i < G_N_ELEMENTS(skip); i++) {
				if (tag_is(q, skip[i])) {
					g_autofree char *close = g_strdup_printf("</%s", skip[i]);
					const char *e = p;
					/* find the closing tag, any case */
					while ((e = strchr(e + 1, '<')) != NULL &&
					       g_ascii_strncasecmp(e, close, strlen(close)) != 0)
						;
					p = e ? e : p + strlen(p);
					break;
				}
			}
			if (i < G_N_ELEMENTS(skip))
				continue;
			for (i = 0; i < G_N_ELEMENTS(blocks); i++)
				if (tag_is(q, blocks[i])) {
					g_string_append_c(out, '\n');
					break;
				}
			q = strchr(p, '>');
			p = q ? q + 1 : p + strlen(p);
		} else if (*p == '&') {
			static const struct {
				const char *name;
				gunichar c;
			} ents[] = {{"nbsp;", 0xa0}, {"amp;", '&'},  {"lt;", '<'},
				    {"gt;", '>'},    {"quot;", '"'}, {"apos;", '\''}};
			bool done = false;
			for (i = 0; i < G_N_ELEMENTS(ents) && !done; i++) {
				size_t n = strlen(ents[i].name);
				if (g_ascii_strncasecmp(p + 1, ents[i].name, n) == 0) {
					g_string_append_unichar(out, ents[i].c);
					p += 1 + n;
					done = true;
				}
			}
			if (!done && p[1] == '#') {
				char *end = NULL;
				gint64 v = (p[2] == 'x' || p[2] == 'X')
					       ? g_ascii_strtoll(p + 3, &end, 16)
					       : g_ascii_strtoll(p + 2, &end, 10);
				if (end != NULL && *end == ';' && end > p + 2 && v > 0 &&
				    v < 0x110000 && g_unichar_validate((gunichar)v)) {
					g_string_append_unichar(out, (gunichar)v);
					p = end + 1;
					done = true;
				}
			}
			if (!done)
				g_string_append_c(out, *p++);
		} else {
			g_string_append_c(out, *p == '\r' ? '\n' : *p);
			p++;
		}
	}
	return g_string_free(out, FALSE);
}

static void put_from(GByteArray *out, GMimeMessage *msg)
{
	InternetAddressList *l = g_mime_message_get_from(msg);
	const char *single = NULL;
	int i, n = l ? internet_address_list_length(l) : 0, count = 0;

	for (i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(l, i);
		if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
			count++;
			single = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
		} else {
			/* A group is never one sender. */
			count += 2;
		}
	}
	put_num(out, T_FROM_COUNT, count);
	if (count == 1 && single != NULL) {
		g_autofree char *low = g_ascii_strdown(single, -1);
		put_str(out, T_FROM, low);
	}
}

static void put_sender(GByteArray *out, GMimeMessage *msg)
{
	InternetAddressList *l = g_mime_message_get_sender(msg);
	const char *raw = g_mime_object_get_header(GMIME_OBJECT(msg), "Sender");
	InternetAddress *ia;

	if (raw == NULL)
		return;
	if (l != NULL && internet_address_list_length(l) == 1 &&
	    INTERNET_ADDRESS_IS_MAILBOX(ia = internet_address_list_get_address(l, 0))) {
		g_autofree char *low = g_ascii_strdown(
		    internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia)), -1);
		put_str(out, T_SENDER, low);
	} else {
		/* Present but not one address: keep something that differs from any From. */
		g_autofree char *c = clean_text(raw);
		put_str(out, T_SENDER, *g_strstrip(c) ? c : "(empty)");
	}
}

static void put_headers(GByteArray *out, GMimeMessage *msg)
{
	GMimeObject *o = GMIME_OBJECT(msg);
	GMimeHeaderList *hl = g_mime_object_get_header_list(o);
	GMimeObject *body = g_mime_message_get_mime_part(msg);
	GDateTime *date;
	const char *v;
	int i, n;

	put_from(out, msg);
	put_sender(out, msg);
	if ((v = g_mime_object_get_header(o, "Return-Path")) != NULL) {
		g_autofree char *rp = g_strdelimit(g_strdup(v), " \t\r\n", ' ');
		g_autofree char *compact = NULL;
		char **w = g_strsplit(rp, " ", -1);
		compact = g_strjoinv("", w);
		g_strfreev(w);
		if (strcmp(compact, "<>") == 0)
			put_str(out, T_RP_NULL, "1");
	}
	if ((v = g_mime_message_get_message_id(msg)) != NULL) {
		g_autofree char *c = clean_text(v);
		put_str(out, T_MSGID, g_strstrip(c));
	}
	if ((v = g_mime_object_get_header(o, "Subject")) != NULL) {
		g_autofree char *dec = g_mime_utils_header_decode_text(NULL, v);
		g_autofree char *c = clean_text(dec ? dec : v);
		put_str(out, T_SUBJECT, c);
	}
	date = g_mime_message_get_date(msg);
	put_num(out, T_DATE, date ? g_date_time_to_unix(date) : -1);
	{
		g_autofree char *a = header_clean(o, "Auto-Submitted");
		g_autofree char *p = header_clean(o, "Precedence");
		put_str(out, T_AUTO, a);
		put_str(out, T_PREC, p);
	}
	if (g_mime_object_get_header(o, "List-Id") != NULL)
		put_str(out, T_LIST_ID, "1");
	if (g_mime_object_get_header(o, "X-Stockgate-Report") != NULL)
		put_str(out, T_OWN, "1");
	if (body != NULL && type_is(g_mime_object_get_content_type(body), "multipart", "report"))
		put_str(out, T_REPORT, "1");
	n = hl ? g_mime_header_list_get_count(hl) : 0;
	for (i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		if (g_ascii_strcasecmp(g_mime_header_get_name(h), "Authentication-Results") == 0) {
			g_autofree char *c = clean_text(g_mime_header_get_value(h));
			put_str(out, T_AR, c ? c : "");
		}
	}
}

typedef struct {
	const char *path;     /* the message file, or NULL: the message is data */
	const guint8 *data;   /* a message in memory (the identity fields of header_facts) */
	size_t len;
	const sg_message_limits *lim;
	gint64 skip;        /* bytes of an mbox "From " line to skip */
	gint64 headers_end; /* > 0: parse only the header block [skip, headers_end) */
	bool die, spin;     /* test hooks (SG_CRASH=message-child, message-spin) */
} job;

/* The parse proper; fills out with the manifest. Runs in the worker (or in process for
 * fuzzing). */
static void parse_into(const job *j, GByteArray *out)
{
	GMimeParserOptions *opts;
	GMimeParser *parser;
	GMimeStream *fs, *sub;
	GMimeMessage *msg;
	walk w = {.lim = j->lim, .out = out};

	if (j->path != NULL) {
		int fd = open(j->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			put_str(out, T_END, "unparseable");
			return;
		}
		fs = g_mime_stream_fs_new(fd);
	} else {
		fs = g_mime_stream_mem_new_with_buffer((const char *)j->data, j->len);
	}
	sub = g_mime_stream_substream(fs, j->skip, j->headers_end > 0 ? j->headers_end : -1);
	g_object_unref(fs);
	opts = g_mime_parser_options_new();
	g_mime_parser_options_set_warning_callback(opts, on_warning, &w);
	parser = g_mime_parser_new_with_stream(sub);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	g_mime_parser_set_persist_stream(parser, TRUE);
	msg = g_mime_parser_construct_message(parser, opts);
	if (msg == NULL) {
		put_str(out, T_END, "unparseable");
		goto out;
	}
	put_headers(out, msg);
	if (j->headers_end > 0) {
		put_str(out, T_END, "ok");
		goto out;
	}
	/* Conflicting filename parameters: the names disagree about what the file is (catalogue
	 * H9); such a message is refused rather than guessing which name the sender meant. */
	if (w.conflicting_param) {
		put_str(out, T_END, "unparseable");
		goto out;
	}
	walk_tree(&w, g_mime_message_get_mime_part(msg), 1, false);
	put_num(out, T_PARTS, w.parts);
	put_num(out, T_DEPTH, w.depth);
	if (w.too_complex) {
		put_str(out, T_END, "too_complex");
		goto out;
	}
	w.parts = w.depth = 0;
	walk_tree(&w, g_mime_message_get_mime_part(msg), 1, true);
	if (w.failed) {
		put_str(out, T_END, "unparseable");
		goto out;
	}
	if (w.plain != NULL) {
		g_autofree char *t = part_text(w.plain);
		g_autofree char *k = first_line(t);
		put_str(out, T_KEY, k);
	} else if (w.html != NULL) {
		g_autofree char *t = part_text(w.html);
		g_autofree char *txt = t ? html_to_text(t) : NULL;
		g_autofree char *k = first_line(txt);
		put_str(out, T_KEY, k);
	}
	put_str(out, T_END, "ok");
out:
	if (msg != NULL)
		g_object_unref(msg);
	g_object_unref(parser);
	g_mime_parser_options_free(opts);
	g_object_unref(sub);
}

/*
 * The worker: one process parses message after message, so that a message costs no fork (nor
 * the copy-on-write faults a fork leaves in the parent). A job is one wire_job, then path_len
 * bytes of path and data_len bytes of message; the answer is an 8-byte little-endian length and
 * that many bytes of manifest. The worker is trusted no more than the mail it parses: the
 * parent bounds each job in CPU and wall-clock time and the answer in size, and a worker that
 * breaks any of it is killed; the next message starts a fresh one.
 */
typedef struct {
	gint64 skip, headers_end, max_message_size, max_header_size;
	gint32 max_mime_depth, max_parts, cpu_seconds;
	guint32 flags; /* WJ_* */
	guint32 path_len, data_len;
} wire_job;

enum { WJ_DIE = 1, WJ_SPIN = 2 };

#define WORKER_JOBS 256         /* a worker is replaced after this many, to bound gmime's leaks */
#define WORKER_FD 3             /* the worker's end of its socket */
#define JOB_PATH_MAX 65536      /* a job the worker refuses is a parent gone wrong: it exits */
#define JOB_DATA_MAX (256 << 20)

static bool read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, (char *)buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

/* Whole seconds of CPU this process has used, rounded up. */
static rlim_t cpu_used(void)
{
	struct rusage ru;

	guint64 us;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	us = (guint64)ru.ru_utime.tv_sec * 1000000 + (guint64)ru.ru_utime.tv_usec +
	     (guint64)ru.ru_stime.tv_sec * 1000000 + (guint64)ru.ru_stime.tv_usec;
	return (rlim_t)((us + 999999) / 1000000);
}

/* Runs one job read from fd; false at the end of the jobs (the parent closed its end). */
static bool worker_job(int fd)
{
	wire_job wj;
	sg_message_limits lim = {0};
	g_autofree char *path = NULL;
	g_autofree guint8 *data = NULL;
	g_autoptr(GByteArray) out = g_byte_array_new();
	struct rlimit rl;
	guint8 len[8];
	job j;

	if (!read_full(fd, &wj, sizeof wj) || wj.path_len > JOB_PATH_MAX ||
	    wj.data_len > JOB_DATA_MAX || wj.cpu_seconds <= 0)
		return false;
	path = wj.path_len ? g_malloc0(wj.path_len + 1) : NULL;
	data = wj.data_len ? g_malloc(wj.data_len) : NULL;
	if ((path && !read_full(fd, path, wj.path_len)) ||
	    (data && !read_full(fd, data, wj.data_len)))
		return false;
	/* This message's CPU time on top of what the earlier ones used: one spinning in gmime
	 * dies of SIGXCPU after its own cpu_seconds (the hard limit is left as it is). */
	if (getrlimit(RLIMIT_CPU, &rl) != 0)
		_exit(3);
	rl.rlim_cur = cpu_used() + (rlim_t)wj.cpu_seconds;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
		rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_CPU, &rl) != 0)
		_exit(3);
	alarm((unsigned)wj.cpu_seconds * 2 + 1);
	/* test hooks: a worker that dies, or one that spins until its CPU limit */
	if (wj.flags & WJ_DIE)
		raise(SIGKILL);
	if (wj.flags & WJ_SPIN)
		for (volatile unsigned long n = 0;; n++)
			;
	lim = (sg_message_limits){.max_message_size = wj.max_message_size,
				  .max_header_size = wj.max_header_size,
				  .max_mime_depth = wj.max_mime_depth,
				  .max_parts = wj.max_parts,
				  .cpu_seconds = wj.cpu_seconds};
	j = (job){.path = path,
		  .data = data,
		  .len = wj.data_len,
		  .lim = &lim,
		  .skip = wj.skip,
		  .headers_end = wj.headers_end};
	parse_into(&j, out);
	alarm(0);
	for (int i = 0; i < 8; i++)
		len[i] = (guint8)((guint64)out->len >> (8 * i));
	if (!sg_write_all(fd, len, sizeof len) || !sg_write_all(fd, out->data, out->len))
		_exit(4);
	return true;
}

static G_GNUC_NORETURN void worker_main(void)
{
	static const int ends[] = {SIGALRM, SIGXCPU, SIGPIPE};
	static const int ignored[] = {SIGINT, SIGTERM, SIGHUP};
	sigset_t none;

	/* Nothing of the parent's signal handling applies here: its limits end the worker. A stop
	 * (Ctrl-C reaches the whole process group, systemd's SIGTERM the whole unit) is the
	 * parent's to act on: it finishes the message in hand, which needs the worker's answer;
	 * the worker goes when its socket closes or its parent dies. */
	for (size_t i = 0; i < G_N_ELEMENTS(ends); i++)
		signal(ends[i], SIG_DFL);
	for (size_t i = 0; i < G_N_ELEMENTS(ignored); i++)
		signal(ignored[i], SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	g_mime_init();
	while (worker_job(WORKER_FD))
		;
	_exit(0);
}

/* ---- parent ---- */

static gint64 mono_ms(void) { return g_get_monotonic_time() / 1000; }

/* The SHA-256 of the message file, computed here while the worker parses it. */
typedef struct {
	int fd; /* -1 once done */
	GChecksum *ck;
	bool failed;
} hasher;

/* Hashes the next piece of the file; false once it is all read (or a read failed). */
static bool hash_step(hasher *h)
{
	guint8 buf[65536];
	ssize_t n;

	if (h->fd < 0)
		return false;
	n = read(h->fd, buf, sizeof buf);
	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0) {
		h->failed |= n < 0;
		close(h->fd);
		h->fd = -1;
		return false;
	}
	g_checksum_update(h->ck, buf, (gssize)n);
	return true;
}

/*
 * Reaps the worker, waiting for its exit until deadline (monotonic ms; 0: not at all) without
 * sleeping on a guess: a pidfd polled wakes the parent the moment the worker is gone. Past the
 * deadline it is killed. Without pidfds (Linux < 5.3) the wait blocks: the worker's own alarm
 * and CPU limit bound it. False when the worker had to be killed.
 */
static bool reap(pid_t pid, gint64 deadline)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	bool exited = pidfd < 0 && deadline > 0;
	int status;
	pid_t r;

	while (pidfd >= 0 && !exited) {
		struct pollfd p = {.fd = pidfd, .events = POLLIN};
		gint64 left = deadline - mono_ms();
		int n;

		if (left <= 0)
			break;
		n = poll(&p, 1, (int)MIN(left, G_MAXINT));
		if (n < 0 && errno == EINTR)
			continue;
		exited = n != 0;
	}
	if (pidfd >= 0)
		close(pidfd);
	if (!exited)
		kill(pid, SIGKILL);
	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	return exited && r == pid;
}

/* The worker of this process (module state): started at the first parse. */
static struct {
	pid_t pid;   /* 0: none */
	pid_t owner; /* the process that started it (a forked copy of this one has none) */
	int fd;      /* the parent's end of the socket */
	int jobs;
} W;

/*
 * The job sent ahead (sg_message_parse_ahead): at most one job is in the worker at a time, this
 * one or the one run_job waits for. Its answer is collected by the parse of the same path with
 * the same limits, or read and dropped by any other parse.
 */
static struct {
	char *path; /* NULL: none */
	gint64 skip;
	sg_message_limits lim; /* normalised */
	gsize max;
	bool die, spin;
} A;

static void ahead_clear(void) { g_clear_pointer(&A.path, g_free); }

/* Ends the worker: at once (kill) or after its current job (close: it reads the end of its
 * jobs and exits); reaped either way. */
static void worker_stop(bool kill_now)
{
	if (W.pid <= 0)
		return;
	if (W.owner == getpid()) {
		if (kill_now)
			kill(W.pid, SIGKILL);
		close(W.fd);
		reap(W.pid, kill_now ? 0 : mono_ms() + 5000);
	} else {
		close(W.fd); /* a forked copy's: the worker belongs to the parent */
	}
	W.pid = 0;
	W.fd = -1;
	ahead_clear(); /* its answer went with the worker */
}

pid_t sg_message_worker_pid(void)
{
	return W.pid > 0 && W.owner == getpid() ? W.pid : 0;
}

static bool worker_start(char **err)
{
	int sv[2];
	pid_t parent = getpid();

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		sg_fail(err, SG_EINTERNAL, "socketpair: %s", g_strerror(errno));
		return false;
	}
	W.pid = fork();
	if (W.pid < 0) {
		sg_fail(err, SG_EINTERNAL, "fork: %s", g_strerror(errno));
		W.pid = 0;
		close(sv[0]);
		close(sv[1]);
		return false;
	}
	if (W.pid == 0) {
		/* The worker ends with its parent: a poller killed mid-parse leaves nothing
		 * running (and a parent gone before the prctl is seen by getppid). */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(5);
		/* It keeps its socket and 0-2 only: an IMAP or SMTP socket or the db held open
		 * here would outlive the parent's close of it. */
		if (dup2(sv[1], WORKER_FD) != WORKER_FD)
			_exit(6);
		if (close_range(WORKER_FD + 1, ~0U, 0) != 0) {
			long max = sysconf(_SC_OPEN_MAX);
			for (int fd = WORKER_FD + 1; fd < (max > 0 ? max : 65536); fd++)
				close(fd);
		}
		worker_main();
	}
	close(sv[1]);
	W.owner = parent;
	W.fd = sv[0];
	W.jobs = 0;
	return true;
}

/* Sends j to a live worker, starting one when there is none (or the one there is died between
 * jobs: then once more to a fresh one). False with *err when no worker can be had. */
static bool send_job(const job *j, char **err)
{
	wire_job wj = {.skip = j->skip,
		       .headers_end = j->headers_end,
		       .max_message_size = j->lim->max_message_size,
		       .max_header_size = j->lim->max_header_size,
		       .max_mime_depth = j->lim->max_mime_depth,
		       .max_parts = j->lim->max_parts,
		       .cpu_seconds = j->lim->cpu_seconds,
		       .flags = (j->die ? WJ_DIE : 0) | (j->spin ? WJ_SPIN : 0),
		       .path_len = j->path ? (guint32)strlen(j->path) : 0,
		       .data_len = (guint32)j->len};
	g_autoptr(GByteArray) b = g_byte_array_sized_new(sizeof wj + wj.path_len + wj.data_len);

	g_byte_array_append(b, (const guint8 *)&wj, sizeof wj);
	if (j->path)
		g_byte_array_append(b, (const guint8 *)j->path, wj.path_len);
	if (j->len)
		g_byte_array_append(b, j->data, wj.data_len);
	if (W.pid > 0 && W.owner != getpid())
		worker_stop(false);
	for (int attempt = 0; attempt < 2; attempt++) {
		size_t off = 0;

		if (W.pid <= 0 && !worker_start(err))
			return false;
		while (off < b->len) {
			ssize_t k = send(W.fd, b->data + off, b->len - off, MSG_NOSIGNAL);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break;
			off += (size_t)k;
		}
		if (off == b->len)
			return true;
		worker_stop(true);
	}
	sg_fail(err, SG_EINTERNAL, "the parser worker does not take jobs");
	return false;
}

static bool same_limits(const sg_message_limits *a, const sg_message_limits *b)
{
	return a->max_message_size == b->max_message_size &&
	       a->max_header_size == b->max_header_size && a->max_mime_depth == b->max_mime_depth &&
	       a->max_parts == b->max_parts && a->cpu_seconds == b->cpu_seconds;
}

/* Collects the answer to the job in the worker (at most max bytes), hashing with h (if any)
 * while it waits, for up to three times the job's CPU time from now; false on a crash, a
 * timeout or a malformed answer (the worker is killed). */
static bool collect(int cpu_seconds, gsize max, GByteArray *manifest, hasher *h)
{
	gint64 deadline = mono_ms() + (gint64)cpu_seconds * 3000 + 1000;
	guint64 want = G_MAXUINT64; /* manifest bytes announced, once the length is read */
	guint8 len[8];
	size_t got_len = 0;
	bool ok = false;

	for (;;) {
		struct pollfd p = {.fd = W.fd, .events = POLLIN};
		guint8 buf[65536];
		gint64 left = deadline - mono_ms();
		bool hashing = h && h->fd >= 0;
		size_t room;
		ssize_t k;
		int r;

		if (got_len == sizeof len && manifest->len == want) {
			ok = true;
			break;
		}
		if (left <= 0)
			break;
		r = poll(&p, 1, hashing ? 0 : (int)MIN(left, 1000));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (r == 0) {
			if (hashing)
				hash_step(h);
			continue;
		}
		/* never read past this answer: the worker sends nothing unasked */
		if (got_len < sizeof len)
			k = read(W.fd, len + got_len, sizeof len - got_len);
		else if ((room = (size_t)MIN(want - manifest->len, sizeof buf)) > 0)
			k = read(W.fd, buf, room);
		else
			k = 0;
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break; /* the worker died (or crashed) before its answer was whole */
		if (got_len < sizeof len) {
			got_len += (size_t)k;
			if (got_len == sizeof len) {
				want = 0;
				for (int i = 0; i < 8; i++)
					want |= (guint64)len[i] << (8 * i);
				if (want > max)
					break;
			}
			continue;
		}
		g_byte_array_append(manifest, buf, (guint)k);
	}
	if (!ok) {
		worker_stop(true);
		return false;
	}
	if (W.jobs >= WORKER_JOBS)
		worker_stop(false);
	return true;
}

/* The answer to a job sent ahead for another message than the one now asked for: read and
 * dropped, so that the next answer read is the next job's. */
static void ahead_drop(void)
{
	g_autoptr(GByteArray) drop = g_byte_array_new();

	if (A.path == NULL)
		return;
	if (W.pid > 0)
		collect(A.lim.cpu_seconds, A.max, drop, NULL);
	ahead_clear();
}

/* Runs j in the worker and collects its manifest (at most max bytes), hashing with h (if any)
 * while it waits: the answer of the job sent ahead for it when there is one. False on a crash,
 * a timeout or a malformed answer (the worker is killed), or a local failure (*local_fail). */
static bool run_job(const job *j, gsize max, GByteArray *manifest, hasher *h, char **err,
		    bool *local_fail)
{
	if (A.path != NULL && j->path != NULL && j->headers_end == 0 && strcmp(A.path, j->path) == 0 &&
	    A.skip == j->skip && A.max == max && same_limits(&A.lim, j->lim)) {
		ahead_clear();
		return collect(j->lim->cpu_seconds, max, manifest, h);
	}
	ahead_drop();
	if (!send_job(j, err)) {
		*local_fail = true;
		return false;
	}
	W.jobs++;
	return collect(j->lim->cpu_seconds, max, manifest, h);
}

typedef struct {
	const guint8 *start, *p;
	size_t left;
} reader;

/* The next record: *tag, its bytes at *at (n of them) within the manifest. */
static bool next_raw(reader *r, char *tag, size_t *at, size_t *n)
{
	if (r->left < 5)
		return false;
	*tag = (char)r->p[0];
	*n = (size_t)r->p[1] | ((size_t)r->p[2] << 8) | ((size_t)r->p[3] << 16) |
	     ((size_t)r->p[4] << 24);
	if (*n > r->left - 5)
		return false;
	*at = (size_t)(r->p + 5 - r->start);
	r->p += 5 + *n;
	r->left -= 5 + *n;
	return true;
}

static bool parse_num(const char *s, gint64 lo, gint64 hi, gint64 *out)
{
	return g_ascii_string_to_signed(s, 10, lo, hi, out, NULL);
}

static void attachment_free(gpointer p)
{
	sg_attachment *a = p;

	g_free(a->name);
	g_free(a->content_type);
	g_free(a->charset);
	if (a->data != NULL)
		g_bytes_unref(a->data);
	g_free(a);
}

/* A charset label safe to pass on: a short token of ASCII letters, digits and -_.:() */
static char *clean_charset(const char *s)
{
	const char *p;

	if (s == NULL || *s == '\0' || strlen(s) > 64)
		return NULL;
	for (p = s; *p; p++)
		if (!g_ascii_isalnum(*p) && !strchr("-_.:()", *p))
			return NULL;
	return g_ascii_strdown(s, -1);
}

static bool clean_type(const char *s)
{
	const char *p;
	int slashes = 0;

	if (strlen(s) > 255)
		return false;
	for (p = s; *p; p++) {
		if (*p == '/')
			slashes++;
		else if (!g_ascii_isalnum(*p) && !strchr("!#$&^_.+-", *p))
			return false;
	}
	return slashes == 1 && s[0] != '/' && p[-1] != '/';
}

/* Whether every attachment got its bytes. */
static bool all_have_data(const sg_message *m)
{
	for (guint i = 0; i < m->attachments->len; i++)
		if (((sg_attachment *)m->attachments->pdata[i])->data == NULL)
			return false;
	return true;
}

/* Decodes the manifest into m (attachments' data are slices of b); *end gets the worker's
 * verdict. False when it is malformed. */
static bool decode_manifest(GBytes *b, sg_message *m, const char **end)
{
	gsize blen;
	const guint8 *bp = g_bytes_get_data(b, &blen);
	reader r = {bp, bp, blen};
	GPtrArray *ar = g_ptr_array_new();
	sg_attachment *cur = NULL;
	char tag;
	char *val;
	size_t at, n;
	gint64 v;
	bool ok = true;

	*end = NULL;
	while (ok && *end == NULL && next_raw(&r, &tag, &at, &n)) {
		if (tag == T_ATT_DATA) {
			/* binary: the one record that may hold NULs and any bytes */
			if (cur == NULL || cur->data != NULL) {
				ok = false;
			} else {
				cur->data = g_bytes_new_from_bytes(b, at, n);
				cur->size = (gint64)n;
			}
			continue;
		}
		if (memchr(bp + at, '\0', n) != NULL) {
			ok = false;
			break;
		}
		val = g_utf8_make_valid((const char *)bp + at, (gssize)n);
		switch (tag) {
		case T_FROM:
			g_free(m->from);
			m->from = g_ascii_strdown(val, -1);
			break;
		case T_FROM_COUNT:
			ok = parse_num(val, 0, G_MAXINT, &v);
			m->from_count = (int)v;
			break;
		case T_SENDER:
			g_free(m->sender);
			m->sender = g_ascii_strdown(val, -1);
			break;
		case T_RP_NULL:
			m->return_path_null = true;
			break;
		case T_MSGID:
			g_free(m->message_id);
			m->message_id = clean_text(val);
			break;
		case T_SUBJECT:
			g_free(m->subject);
			m->subject = clean_text(val);
			break;
		case T_DATE:
			ok = parse_num(val, G_MININT64, G_MAXINT64, &m->date);
			break;
		case T_AUTO:
			g_free(m->auto_submitted);
			m->auto_submitted = clean_text(val);
			break;
		case T_PREC:
			g_free(m->precedence);
			m->precedence = clean_text(val);
			break;
		case T_LIST_ID:
			m->has_list_id = true;
			break;
		case T_REPORT:
			m->is_report = true;
			break;
		case T_OWN:
			m->own_report = true;
			break;
		case T_AR:
			g_ptr_array_add(ar, clean_text(val));
			break;
		case T_KEY:
			g_free(m->key);
			m->key = g_strdup(val);
			break;
		case T_ATT:
			cur = g_new0(sg_attachment, 1);
			g_ptr_array_add(m->attachments, cur);
			cur->name = *val ? sg_sanitize_filename(val)
					 : g_strdup_printf("attachment-%u", m->attachments->len);
			cur->content_type = g_strdup("application/octet-stream");
			break;
		case T_ATT_TYPE:
			if (cur == NULL) {
				ok = false;
			} else if (clean_type(val)) {
				g_free(cur->content_type);
				cur->content_type = g_ascii_strdown(val, -1);
			}
			break;
		case T_ATT_CHARSET:
			if (cur == NULL) {
				ok = false;
			} else {
				g_free(cur->charset);
				cur->charset = clean_charset(val);
			}
			break;
		case T_PARTS:
			ok = parse_num(val, 0, G_MAXINT, &v);
			m->parts = (int)v;
			break;
		case T_DEPTH:
			ok = parse_num(val, 0, G_MAXINT, &v);
			m->depth = (int)v;
			break;
		case T_END:
			if (strcmp(val, "ok") == 0)
				*end = "ok";
			else if (strcmp(val, "too_complex") == 0)
				*end = "too_complex";
			else
				*end = "unparseable";
			break;
		default:
			ok = false;
		}
		g_free(val);
	}
	g_ptr_array_add(ar, NULL);
	g_strfreev(m->auth_results);
	m->auth_results = (char **)g_ptr_array_free(ar, FALSE);
	return ok && *end != NULL && r.left == 0 && all_have_data(m);
}

/* ---- pre-scan ---- */

typedef enum { SCAN_OK, SCAN_UNPARSEABLE, SCAN_TOO_COMPLEX, SCAN_IO } scan_result;

/*
 * Reads the header block raw, before gmime sees it. *skip: length of a leading mbox "From "
 * line; *hend: the offset just past the blank line ending the block (the file size when the
 * message has no body).
 */
/* The fields the sender check reads; an over-long header block keeps only these. */
static bool identity_field(const char *line, size_t len)
{
	static const char *const names[] = {
		"from:", "sender:", "subject:", "return-path:", "message-id:", "date:",
		"auto-submitted:", "precedence:", "list-id:", "authentication-results:",
		"x-stockgate-report:", "content-type:", NULL};

	for (int i = 0; names[i]; i++) {
		size_t n = strlen(names[i]);
		if (len >= n && g_ascii_strncasecmp(line, names[i], n) == 0)
			return true;
	}
	return false;
}

static sg_message *message_new(void);
static bool decode_manifest(GBytes *b, sg_message *m, const char **end);
static sg_status run_parse(const job *j, gsize max, hasher *h, sg_message *m, const char **end,
			   bool *decoded, char **err);

/* For a header block over the limits: the identity fields that are within the limit, copied
 * and parsed (headers only) by the worker. NULL when none can be read. */
static sg_message *header_facts(const char *path, gint64 skip, const sg_message_limits *lim)
{
	g_autofree char *line = NULL;
	g_autoptr(GString) field = g_string_new(NULL);
	g_autoptr(GString) copy = g_string_new(NULL);
	g_autoptr(sg_message) m = message_new();
	const char *end = NULL;
	size_t cap = 0;
	ssize_t n;
	bool keep = false, over = false, decoded = false;
	FILE *in;
	job j;

	in = fopen(path, "rb");
	if (!in)
		return NULL;
	fseeko(in, skip, SEEK_SET);
	while ((n = getline(&line, &cap, in)) > 0) {
		bool blank = n == 1 || (n == 2 && line[0] == '\r');
		bool cont = line[0] == ' ' || line[0] == '\t';
		if (!cont || blank) {
			if (keep && !over)
				g_string_append_len(copy, field->str, (gssize)field->len);
			g_string_truncate(field, 0);
			over = false;
			if (blank)
				break;
			keep = identity_field(line, (size_t)n);
		}
		if (keep && !over) {
			if ((gint64)(field->len + (size_t)n) > lim->max_header_size)
				over = true;
			else
				g_string_append_len(field, line, n);
		}
	}
	g_string_append_c(copy, '\n');
	fclose(in);
	j = (job){.data = (const guint8 *)copy->str,
		  .len = copy->len,
		  .lim = lim,
		  .headers_end = (gint64)copy->len};
	if (run_parse(&j, MANIFEST_MAX(copy->len), NULL, m, &end, &decoded, NULL) != SG_OK ||
	    !decoded || strcmp(end, "unparseable") == 0)
		return NULL;
	return g_steal_pointer(&m);
}

static scan_result prescan(int fd, gint64 fsize, gint64 max_header, gint64 *skip, gint64 *hend)
{
	gint64 cap = MIN(fsize, max_header + 8192);
	g_autofree char *buf = NULL;
	gint64 got = 0, i, line, field = 0, block;
	bool first = true;

	if (fsize <= 0)
		return SCAN_UNPARSEABLE;
	buf = g_malloc((gsize)cap + 1);
	while (got < cap) {
		ssize_t k = pread(fd, buf + got, (size_t)(cap - got), (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return SCAN_IO;
		if (k == 0)
			break;
		got += k;
	}
	*skip = 0;
	if (got > 5 && memcmp(buf, "From ", 5) == 0) {
		char *nl = memchr(buf, '\n', (size_t)got);
		if (nl == NULL)
			return SCAN_UNPARSEABLE;
		*skip = nl - buf + 1;
	}
	i = *skip;
	if (i >= got || buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r')
		return SCAN_UNPARSEABLE;
	/* the first line must start with a field name and a colon */
	for (line = i; line < got && buf[line] != ':'; line++)
		if (buf[line] <= ' ' || buf[line] >= 127)
			return SCAN_UNPARSEABLE;
	if (line >= got || line == i)
		return SCAN_UNPARSEABLE;
	while (i < got) {
		gint64 start = i, len;
		char *nl = memchr(buf + i, '\n', (size_t)(got - i));
		gint64 e = nl ? nl - buf : got;
		if (memchr(buf + start, '\0', (size_t)(e - start)) != NULL)
			return SCAN_UNPARSEABLE;
		len = e - start;
		if (len > 0 && buf[e - 1] == '\r')
			len--;
		i = e + 1;
		if (len == 0 && nl != NULL) {
			*hend = i; /* the blank line ends the block */
			block = i - *skip;
			return block > max_header ? SCAN_TOO_COMPLEX : SCAN_OK;
		}
		if (!first && (buf[start] == ' ' || buf[start] == '\t'))
			field += len;
		else
			field = len;
		first = false;
		if (field > max_header || e - *skip > max_header)
			return SCAN_TOO_COMPLEX;
		if (nl == NULL)
			break;
	}
	if (got < fsize)
		return SCAN_TOO_COMPLEX; /* no end of the header block within the limit */
	*hend = fsize;
	return SCAN_OK;
}

static sg_message *message_new(void)
{
	sg_message *m = g_new0(sg_message, 1);

	m->date = -1;
	m->attachments = g_ptr_array_new_with_free_func(attachment_free);
	m->auth_results = g_new0(char *, 1);
	return m;
}

/* Parses j in the worker (in process when the limits say so) into m: *end the worker's verdict,
 * *decoded whether its manifest could be read. SG_OK, or a local failure (no worker). */
static sg_status run_parse(const job *j_in, gsize max, hasher *h, sg_message *m, const char **end,
			   bool *decoded, char **err)
{
	g_autoptr(GByteArray) manifest = g_byte_array_new();
	g_autoptr(GBytes) bytes = NULL;
	job j = *j_in;
	bool ran, local_fail = false;

	*decoded = false;
	*end = NULL;
	if (j.lim->in_process) {
		g_mime_init();
		parse_into(&j, manifest);
		ran = manifest->len <= max;
	} else {
		/* the test hooks count the messages of this process, not of one worker (a job
		 * sent ahead counted its message already) */
		if (A.path == NULL || j.path == NULL || strcmp(A.path, j.path) != 0) {
			j.die = sg_crash_due("message-child");
			j.spin = sg_crash_due("message-spin");
		}
		ran = run_job(&j, max, manifest, h, err, &local_fail);
	}
	if (local_fail)
		return SG_EINTERNAL;
	bytes = g_byte_array_free_to_bytes(g_steal_pointer(&manifest));
	*decoded = ran && decode_manifest(bytes, m, end);
	return SG_OK;
}

/* A limit left at 0 by the caller means "none", except the header block (1 MiB, as the
 * pre-scan reads it into memory) and the CPU time (10 s); the worker and the pre-scan see this
 * normalised copy only. */
static void normalise(const sg_message_limits *in, sg_message_limits *l)
{
	*l = *in;
	if (l->max_header_size <= 0)
		l->max_header_size = 1 << 20;
	if (l->max_mime_depth <= 0)
		l->max_mime_depth = G_MAXINT;
	if (l->max_parts <= 0)
		l->max_parts = G_MAXINT;
	if (l->cpu_seconds <= 0)
		l->cpu_seconds = 10;
}

/* The file's size and the pre-scan of its header block. */
static sg_status look(const char *path, const sg_message_limits *lim, struct stat *sb,
		      scan_result *sr, gint64 *skip, gint64 *hend, char **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return sg_fail(err, SG_EIO, "%s: %s", path, g_strerror(errno));
	if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
		close(fd);
		return sg_fail(err, SG_EIO, "%s: not a regular file", path);
	}
	*sr = prescan(fd, sb->st_size, lim->max_header_size, skip, hend);
	close(fd);
	if (*sr == SCAN_IO)
		return sg_fail(err, SG_EIO, "%s: %s", path, g_strerror(errno));
	return SG_OK;
}

void sg_message_parse_ahead(const char *path, const sg_message_limits *lim_in)
{
	struct stat sb;
	gint64 skip = 0, hend = 0;
	scan_result sr;
	job j;

	if (lim_in->in_process || A.path != NULL)
		return;
	normalise(lim_in, &A.lim);
	/* only a whole parse goes ahead: the rest is decided here, by the parse itself */
	if (look(path, &A.lim, &sb, &sr, &skip, &hend, NULL) != SG_OK || sr != SCAN_OK ||
	    (A.lim.max_message_size > 0 && sb.st_size > A.lim.max_message_size))
		return;
	j = (job){.path = path,
		  .lim = &A.lim,
		  .skip = skip,
		  .die = sg_crash_due("message-child"),
		  .spin = sg_crash_due("message-spin")};
	if (!send_job(&j, NULL))
		return; /* the parse itself says why */
	W.jobs++;
	A.path = g_strdup(path);
	A.skip = skip;
	A.max = MANIFEST_MAX(sb.st_size);
}

static sg_status parse(const char *path, const sg_message_limits *lim_in, hasher *h,
		       sg_message **out, const char **reason, char **err)
{
	sg_message_limits l;
	const sg_message_limits *lim;
	g_autoptr(sg_message) m = NULL;
	const char *end = NULL, *size_reason = NULL;
	struct stat sb;
	gint64 skip = 0, hend = 0;
	scan_result sr;
	sg_status st;
	job j;
	bool decoded;

	*out = NULL;
	*reason = NULL;
	normalise(lim_in, &l);
	lim = &l;
	if ((st = look(path, lim, &sb, &sr, &skip, &hend, err)) != SG_OK)
		return st;
	if (lim->max_message_size > 0 && sb.st_size > lim->max_message_size)
		size_reason = "too_large";
	if (size_reason != NULL && sr != SCAN_OK) {
		*reason = size_reason;
		return sg_fail(err, SG_EDATA, "%s: larger than %" G_GINT64_FORMAT " bytes", path,
			       lim->max_message_size);
	}
	if (sr == SCAN_UNPARSEABLE) {
		*reason = "unparseable";
		return sg_fail(err, SG_EDATA, "%s: not a mail message (header block)", path);
	}
	if (sr == SCAN_TOO_COMPLEX) {
		/* The sender facts still decide whether the refusal is answered (SPEC 5.7): read
		 * them from a copy of the identity fields that are within the limit. */
		*reason = "too_complex";
		*out = header_facts(path, skip, lim);
		return sg_fail(err, SG_EDATA,
			       "%s: a header is longer than %" G_GINT64_FORMAT " bytes", path,
			       lim->max_header_size);
	}

	m = message_new();
	j = (job){.path = path, .lim = lim, .skip = skip, .headers_end = size_reason ? hend : 0};
	st = run_parse(&j, MANIFEST_MAX(size_reason ? hend : sb.st_size), h, m, &end, &decoded,
		       err);
	if (st != SG_OK)
		return st;
	if (!decoded || strcmp(end, "unparseable") == 0) {
		if (size_reason != NULL) {
			/* the size decided first; only the header facts are missing */
			*reason = size_reason;
			return sg_fail(err, SG_EDATA, "%s: larger than %" G_GINT64_FORMAT " bytes",
				       path, lim->max_message_size);
		}
		*reason = "unparseable";
		if (decoded && (m->from_count > 0 || m->message_id != NULL)) {
			/* The headers were read, the MIME structure was not (a multipart without
			 * a boundary): the header facts say whose mail it was (SPEC 5.7); no part
			 * of the body is kept. */
			g_ptr_array_set_size(m->attachments, 0);
			g_clear_pointer(&m->key, g_free);
			*out = g_steal_pointer(&m);
			return sg_fail(err, SG_EDATA, "%s: the MIME structure cannot be read", path);
		}
		return sg_fail(err, SG_EDATA, "%s: the MIME parser failed or ran out of time",
			       path);
	}
	if (size_reason != NULL) {
		/* header facts only: no part was decoded */
		*reason = size_reason;
		*out = g_steal_pointer(&m);
		return sg_fail(err, SG_EDATA, "%s: larger than %" G_GINT64_FORMAT " bytes", path,
			       lim->max_message_size);
	}
	if (strcmp(end, "too_complex") == 0) {
		*reason = "too_complex";
		*out = g_steal_pointer(&m);
		return sg_fail(err, SG_EDATA, "%s: more than %d MIME parts or %d levels", path,
			       lim->max_parts, lim->max_mime_depth);
	}
	*out = g_steal_pointer(&m);
	return SG_OK;
}

sg_status sg_message_parse(const char *path, const sg_message_limits *lim, sg_message **out,
			   const char **reason, char **err)
{
	return parse(path, lim, NULL, out, reason, err);
}

sg_status sg_message_parse_hashed(const char *path, const sg_message_limits *lim,
				  sg_message **out, const char **reason, char **sha256, char **err)
{
	hasher h = {.fd = open(path, O_RDONLY | O_CLOEXEC),
		    .ck = g_checksum_new(G_CHECKSUM_SHA256)};
	sg_status st;

	h.failed = h.fd < 0;
	st = parse(path, lim, &h, out, reason, err);
	while (hash_step(&h))
		;
	*sha256 = h.failed ? NULL : g_strdup(g_checksum_get_string(h.ck));
	g_checksum_free(h.ck);
	return st;
}

void sg_message_free(sg_message *m)
{
	if (m == NULL)
		return;
	g_free(m->from);
	g_free(m->sender);
	g_free(m->message_id);
	g_free(m->subject);
	g_free(m->auto_submitted);
	g_free(m->precedence);
	g_strfreev(m->auth_results);
	g_free(m->key);
	if (m->attachments != NULL)
		g_ptr_array_free(m->attachments, TRUE);
	g_free(m);
}

/* ---- subject routing (SPEC 5.3) ---- */

/* Skips one reply/forward prefix at p (already case-folded); returns the rest or NULL. */
static const char *skip_prefix(const char *p)
{
	static const char *const prefixes[] = {"re", "fwd", "fw", "отв", "пересл"};
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(prefixes); i++) {
		size_t n = strlen(prefixes[i]);
		const char *q = p + n;
		if (strncmp(p, prefixes[i], n) != 0)
			continue;
		if (*q == '[' || *q == '(') {
			char close = *q == '[' ? ']' : ')';
			q++;
			while (g_ascii_isdigit(*q))
				q++;
			if (*q != close)
				continue;
			q++;
		}
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == ':')
			return q + 1;
	}
	return NULL;
}

const char *sg_subject_method(const char *subject)
{
	static const struct {
		const char *word, *method;
	} names[] = {{"warehouses", "warehouses"}, {"склады", "warehouses"}, {"remains", "remains"},
		     {"остатки", "remains"},	   {"vin", "vin"},	     {"frame", "frame"},
		     {"price", "price"},	   {"rental", "rental"}};
	g_autofree char *valid = NULL, *cur = NULL;
	const char *next;
	size_t i;

	if (subject == NULL)
		return NULL;
	valid = g_utf8_make_valid(subject, -1);
	cur = g_utf8_casefold(valid, -1);
	sg_trim(cur);
	while ((next = skip_prefix(cur)) != NULL) {
		char *rest = g_strdup(next);
		g_free(cur);
		cur = sg_trim(rest);
	}
	for (i = 0; i < G_N_ELEMENTS(names); i++)
		if (strcmp(cur, names[i].word) == 0)
			return names[i].method;
	return NULL;
}
