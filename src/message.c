/* message.c: a message taken apart safely: raw pre-scan, then gmime in a CPU-limited child. */
#include "message.h"

#include <errno.h>
#include <fcntl.h>
#include <gmime/gmime.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/*
 * The child reports its findings in a manifest: records of one tag byte, a 4-byte little-endian
 * length and that many bytes. The parent decodes it as untrusted input: every length is checked
 * against what is left, strings must be NUL-free and are made valid UTF-8, numbers are parsed
 * strictly, and attachment sizes come from stat(), not from the child.
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
	T_PARTS = 'p',
	T_DEPTH = 'd',
	T_END = 'E', /* last record: "ok", "too_complex" or "unparseable" */
};

#define MANIFEST_MAX (8 << 20)
#define KEY_MAX 1024
#define TEXT_MAX (1 << 20) /* decoded body text read to find the key */

/* ---- manifest writing (child) ---- */

static void put(GByteArray *b, char tag, const char *s, size_t n)
{
	guint8 h[5];

	if (n > MANIFEST_MAX)
		n = MANIFEST_MAX;
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

/* ---- child: facts from the tree ---- */

typedef struct {
	const sg_message_limits *lim;
	const char *tmpdir;
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
	g_autofree char *path = NULL, *type = NULL;
	const char *charset, *mt, *st;
	GMimeStream *fs;
	int fd;
	bool ok = false;

	path = g_strdup_printf("%s/%d", w->tmpdir, w->nattach);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		w->failed = true;
		return;
	}
	/* A pipe stream writes straight to the fd and, unlike an fs stream, does not fsync on
	 * flush: the file only lives for this run (a crash parses the message again). */
	fs = g_mime_stream_pipe_new(fd); /* owns fd */
	if (GMIME_IS_PART(o)) {
		GMimeDataWrapper *dw = g_mime_part_get_content(GMIME_PART(o));
		ok = dw == NULL || g_mime_data_wrapper_write_to_stream(dw, fs) != -1;
	} else if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		if (m != NULL && safe_to_write(GMIME_OBJECT(o), 0))
			ok = g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, fs) != -1;
		else if (m == NULL)
			ok = true;
	}
	if (ok)
		ok = g_mime_stream_flush(fs) == 0;
	g_object_unref(fs);
	if (!ok) {
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
 * refused before any file is written. */
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
	const char *path;
	const sg_message_limits *lim;
	const char *tmpdir;
	gint64 skip;        /* bytes of an mbox "From " line to skip */
	gint64 headers_end; /* > 0: parse only the header block [skip, headers_end) */
} job;

/* The parse proper; fills out with the manifest. Runs in the child (or in process for fuzzing). */
static void parse_into(const job *j, GByteArray *out)
{
	GMimeParserOptions *opts;
	GMimeParser *parser;
	GMimeStream *fs, *sub;
	GMimeMessage *msg;
	walk w = {.lim = j->lim, .tmpdir = j->tmpdir, .out = out};
	int fd;

	fd = open(j->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		put_str(out, T_END, "unparseable");
		return;
	}
	fs = g_mime_stream_fs_new(fd);
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

static G_GNUC_NORETURN void child_main(const job *j, int wfd)
{
	struct rlimit rl;
	GByteArray *out = g_byte_array_new();

	signal(SIGALRM, SIG_DFL);
	signal(SIGXCPU, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	rl.rlim_cur = (rlim_t)j->lim->cpu_seconds;
	rl.rlim_max = (rlim_t)j->lim->cpu_seconds + 1;
	if (setrlimit(RLIMIT_CPU, &rl) != 0)
		_exit(3);
	/* Decoded files can never be larger than the message that holds them. */
	if (j->lim->max_message_size > 0) {
		rl.rlim_cur = rl.rlim_max = (rlim_t)j->lim->max_message_size + (1 << 20);
		setrlimit(RLIMIT_FSIZE, &rl);
	}
	alarm((unsigned)j->lim->cpu_seconds * 2 + 1);
	/* test hooks: a child that dies, or one that spins until its CPU limit */
	sg_crash_point("message-child");
	if (g_strcmp0(g_getenv("SG_CRASH"), "message-spin") == 0)
		for (volatile unsigned long n = 0;; n++)
			;
	g_mime_init();
	parse_into(j, out);
	if (!sg_write_all(wfd, out->data, out->len))
		_exit(4);
	close(wfd);
	_exit(0);
}

/* ---- parent ---- */

static gint64 mono_ms(void) { return g_get_monotonic_time() / 1000; }

/* The SHA-256 of the message file, computed here while the child parses it. */
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
 * Reaps the child, waiting for its exit until deadline (monotonic ms; 0: not at all) without
 * sleeping on a guess: a pidfd polled wakes the parent the moment the child is gone. Past the
 * deadline it is killed. Without pidfds (Linux < 5.3) the wait blocks: the child's own alarm
 * and CPU limit bound it. False when the child had to be killed.
 */
static bool reap(pid_t pid, gint64 deadline, int *status)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	bool exited = pidfd < 0 && deadline > 0;
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
		r = waitpid(pid, status, 0);
	while (r < 0 && errno == EINTR);
	return exited && r == pid;
}

/* Runs the child and collects its manifest, hashing with h (if any) while it waits; false on
 * crash, timeout or a local failure. */
static bool run_child(const job *j, GByteArray *manifest, hasher *h, char **err, bool *local_fail)
{
	int pfd[2], status = 0;
	pid_t pid;
	gint64 deadline = mono_ms() + (gint64)j->lim->cpu_seconds * 3000 + 1000;
	pid_t parent = getpid();
	bool ok = true;

	if (pipe2(pfd, O_CLOEXEC) != 0) {
		*local_fail = true;
		sg_fail(err, SG_EINTERNAL, "pipe: %s", g_strerror(errno));
		return false;
	}
	pid = fork();
	if (pid < 0) {
		*local_fail = true;
		sg_fail(err, SG_EINTERNAL, "fork: %s", g_strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return false;
	}
	if (pid == 0) {
		/* The child ends with its parent: a poller killed mid-parse leaves nothing
		 * running (and a parent gone before the prctl is seen by getppid). */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(5);
		close(pfd[0]);
		child_main(j, pfd[1]);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		guint8 buf[65536];
		gint64 left = deadline - mono_ms();
		ssize_t k;
		int r;

		if (left <= 0) {
			ok = false;
			break;
		}
		bool hashing = h && h->fd >= 0;
		r = poll(&p, 1, hashing ? 0 : (int)MIN(left, 1000));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ok = false;
			break;
		}
		if (r == 0) {
			if (hashing)
				hash_step(h);
			continue;
		}
		k = read(pfd[0], buf, sizeof buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (manifest->len + (size_t)k > MANIFEST_MAX) {
			ok = false;
			break;
		}
		g_byte_array_append(manifest, buf, (guint)k);
	}
	close(pfd[0]);
	if (!reap(pid, ok ? deadline : 0, &status))
		return false;
	return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

typedef struct {
	const guint8 *p;
	size_t left;
} reader;

static bool next_rec(reader *r, char *tag, char **val)
{
	size_t n;

	if (r->left < 5)
		return false;
	*tag = (char)r->p[0];
	n = (size_t)r->p[1] | ((size_t)r->p[2] << 8) | ((size_t)r->p[3] << 16) |
	    ((size_t)r->p[4] << 24);
	if (n > r->left - 5 || memchr(r->p + 5, '\0', n) != NULL)
		return false;
	*val = g_utf8_make_valid((const char *)r->p + 5, (gssize)n);
	r->p += 5 + n;
	r->left -= 5 + n;
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
	g_free(a->path);
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

/* Decodes the manifest into m; *end gets the child's verdict. False when it is malformed. */
static bool decode_manifest(const GByteArray *b, sg_message *m, const char **end)
{
	reader r = {b->data, b->len};
	GPtrArray *ar = g_ptr_array_new();
	sg_attachment *cur = NULL;
	char tag;
	char *val;
	gint64 v;
	bool ok = true;

	*end = NULL;
	while (ok && *end == NULL && next_rec(&r, &tag, &val)) {
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
		case T_ATT: {
			struct stat sb;
			cur = g_new0(sg_attachment, 1);
			g_ptr_array_add(m->attachments, cur);
			cur->path = g_strdup_printf("%s/%u", m->tmpdir, m->attachments->len - 1);
			cur->name = *val ? sg_sanitize_filename(val)
					 : g_strdup_printf("attachment-%u", m->attachments->len);
			cur->content_type = g_strdup("application/octet-stream");
			/* The size is what is on disk, whatever the child might claim. */
			if (lstat(cur->path, &sb) != 0 || !S_ISREG(sb.st_mode))
				ok = false;
			else
				cur->size = sb.st_size;
			break;
		}
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
	return ok && *end != NULL && r.left == 0;
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

static sg_message *message_new(char *tmpdir);
static bool decode_manifest(const GByteArray *b, sg_message *m, const char **end);

/* The template of a message's private directory: in tmp_parent, else in the process's scratch
 * directory (emptied by the next run if this one is killed); g_free. NULL with *err. */
static char *tmpdir_template(const char *tmp_parent, char **err)
{
	const char *parent = tmp_parent ? tmp_parent : sg_scratch_dir(err);

	return parent ? g_build_filename(parent, "sg-msg-XXXXXX", NULL) : NULL;
}

/* For a header block over the limits: the identity fields that are within the limit, written
 * to a file of their own and parsed (headers only) by the child. NULL when none can be read. */
static sg_message *header_facts(const char *path, gint64 skip, const sg_message_limits *lim,
				const char *tmp_parent)
{
	g_autofree char *tmpl = tmpdir_template(tmp_parent, NULL);
	g_autofree char *hpath = NULL, *line = NULL;
	g_autoptr(GString) field = g_string_new(NULL);
	g_autoptr(GByteArray) manifest = g_byte_array_new();
	g_autoptr(sg_message) m = NULL;
	const char *end = NULL;
	size_t cap = 0;
	ssize_t n;
	bool keep = false, over = false, local_fail = false;
	FILE *in, *out;
	job j;

	if (tmpl == NULL || g_mkdtemp_full(tmpl, 0700) == NULL)
		return NULL;
	m = message_new(g_strdup(tmpl));
	hpath = g_build_filename(m->tmpdir, "headers", NULL);
	in = fopen(path, "rb");
	out = fopen(hpath, "wb");
	if (!in || !out) {
		if (in)
			fclose(in);
		if (out)
			fclose(out);
		return NULL;
	}
	fseeko(in, skip, SEEK_SET);
	while ((n = getline(&line, &cap, in)) > 0) {
		bool blank = n == 1 || (n == 2 && line[0] == '\r');
		bool cont = line[0] == ' ' || line[0] == '\t';
		if (!cont || blank) {
			if (keep && !over)
				fwrite(field->str, 1, field->len, out);
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
	fputs("\n", out);
	fclose(in);
	if (fclose(out) != 0)
		return NULL;
	j = (job){.path = hpath, .lim = lim, .tmpdir = m->tmpdir, .skip = 0, .headers_end = 1};
	{
		struct stat sb;
		if (stat(hpath, &sb) != 0)
			return NULL;
		j.headers_end = sb.st_size;
	}
	if (!run_child(&j, manifest, NULL, NULL, &local_fail) || local_fail ||
	    !decode_manifest(manifest, m, &end) || strcmp(end, "unparseable") == 0)
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

static sg_message *message_new(char *tmpdir)
{
	sg_message *m = g_new0(sg_message, 1);

	m->date = -1;
	m->tmpdir = tmpdir;
	m->attachments = g_ptr_array_new_with_free_func(attachment_free);
	m->auth_results = g_new0(char *, 1);
	return m;
}

static sg_status parse(const char *path, const sg_message_limits *lim_in, const char *tmp_parent,
		       hasher *h, sg_message **out, const char **reason, char **err)
{
	sg_message_limits l;
	const sg_message_limits *lim;
	g_autoptr(GByteArray) manifest = g_byte_array_new();
	g_autoptr(sg_message) m = NULL;
	g_autofree char *tmpl = NULL;
	const char *end = NULL, *size_reason = NULL;
	struct stat sb;
	gint64 skip = 0, hend = 0;
	scan_result sr;
	job j;
	int fd;
	bool ran, local_fail = false;

	*out = NULL;
	*reason = NULL;
	/* A limit left at 0 by the caller means "none", except the header block (1 MiB, as the
	 * pre-scan reads it into memory) and the CPU time (10 s); the child and the pre-scan see
	 * this normalised copy only. */
	l = *lim_in;
	if (l.max_header_size <= 0)
		l.max_header_size = 1 << 20;
	if (l.max_mime_depth <= 0)
		l.max_mime_depth = G_MAXINT;
	if (l.max_parts <= 0)
		l.max_parts = G_MAXINT;
	if (l.cpu_seconds <= 0)
		l.cpu_seconds = 10;
	lim = &l;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sg_fail(err, SG_EIO, "%s: %s", path, g_strerror(errno));
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return sg_fail(err, SG_EIO, "%s: not a regular file", path);
	}
	if (lim->max_message_size > 0 && sb.st_size > lim->max_message_size)
		size_reason = "too_large";
	sr = prescan(fd, sb.st_size, lim->max_header_size, &skip, &hend);
	close(fd);
	if (sr == SCAN_IO)
		return sg_fail(err, SG_EIO, "%s: %s", path, g_strerror(errno));
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
		*out = header_facts(path, skip, lim, tmp_parent);
		return sg_fail(err, SG_EDATA,
			       "%s: a header is longer than %" G_GINT64_FORMAT " bytes", path,
			       lim->max_header_size);
	}

	tmpl = tmpdir_template(tmp_parent, err);
	if (tmpl == NULL)
		return SG_EIO;
	if (g_mkdtemp_full(tmpl, 0700) == NULL)
		return sg_fail(err, SG_EIO, "%s: %s", tmpl, g_strerror(errno));
	m = message_new(g_strdup(tmpl));

	j = (job){.path = path,
		  .lim = lim,
		  .tmpdir = m->tmpdir,
		  .skip = skip,
		  .headers_end = size_reason ? hend : 0};
	if (lim->in_process) {
		g_mime_init();
		parse_into(&j, manifest);
		ran = true;
	} else {
		ran = run_child(&j, manifest, h, err, &local_fail);
	}
	if (local_fail)
		return SG_EINTERNAL;
	bool decoded = ran && decode_manifest(manifest, m, &end);
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
		/* header facts only: no file was written */
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

sg_status sg_message_parse(const char *path, const sg_message_limits *lim,
			   const char *tmp_parent, sg_message **out, const char **reason,
			   char **err)
{
	return parse(path, lim, tmp_parent, NULL, out, reason, err);
}

sg_status sg_message_parse_hashed(const char *path, const sg_message_limits *lim,
				  const char *tmp_parent, sg_message **out, const char **reason,
				  char **sha256, char **err)
{
	hasher h = {.fd = open(path, O_RDONLY | O_CLOEXEC),
		    .ck = g_checksum_new(G_CHECKSUM_SHA256)};
	sg_status st;

	h.failed = h.fd < 0;
	st = parse(path, lim, tmp_parent, &h, out, reason, err);
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
	if (m->tmpdir != NULL) {
		GDir *d = g_dir_open(m->tmpdir, 0, NULL);
		const char *n;
		if (d != NULL) {
			while ((n = g_dir_read_name(d)) != NULL) {
				g_autofree char *p = g_build_filename(m->tmpdir, n, NULL);
				unlink(p);
			}
			g_dir_close(d);
		}
		rmdir(m->tmpdir);
	}
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
	g_free(m->tmpdir);
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
