/* test-message.c: the message facts, the limits and hostile MIME, and subject routing. */
#include <fcntl.h>
#include <signal.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "message.h"
#include "util.h"
#include "tap.h"

static char *dir;
static int nfile;

static const sg_message_limits lim = {
    .max_message_size = 2 << 20,
    .max_header_size = 64 * 1024,
    .max_mime_depth = 10,
    .max_parts = 50,
    .max_attachments = 10,
    .cpu_seconds = 2,
};

/* Writes a message (len -1: a C string) and parses it. */
static sg_status parse(const char *text, gssize len, const sg_message_limits *l, sg_message **m,
		       const char **reason)
{
	g_autofree char *path = g_strdup_printf("%s/m%d.eml", dir, nfile++);
	g_autofree char *err = NULL;
	sg_status s;

	g_file_set_contents(path, text, len, NULL);
	s = sg_message_parse(path, l ? l : &lim, m, reason, &err);
	if (s != SG_OK && g_getenv("VERBOSE"))
		printf("# %s\n", err ? err : "");
	return s;
}

static const sg_attachment *att(const sg_message *m, guint i)
{
	return m && m->attachments && i < m->attachments->len ? g_ptr_array_index(m->attachments, i)
							      : NULL;
}

static char *file_text(const sg_attachment *a)
{
	gsize n = 0;
	const char *d;

	if (a == NULL || a->data == NULL)
		return NULL;
	d = g_bytes_get_data(a->data, &n);
	return g_strndup(d ? d : "", n);
}

#define HDR "From: Dealer <Dealer@Example.COM>\nTo: in@stockgate\nSubject: remains\n"

static void test_basic(void)
{
	sg_message *m = NULL;
	const char *reason = NULL;
	sg_status s;

	s = parse("Return-Path: <dealer@example.com>\n"
		  "From: \"Ivan\" <Ivan.Petrov@Example.COM>\n"
		  "Sender: ivan.petrov@example.com\n"
		  "Message-ID: <abc@example.com>\n"
		  "Subject: =?UTF-8?B?0J7RgdGC0LDRgtC60Lg=?=\n"
		  "Date: Sun, 22 Nov 2026 12:00:00 +0000\n"
		  "Authentication-Results: mx.stockgate; dmarc=pass header.from=example.com\n"
		  "Authentication-Results: other; dkim=fail\n"
		  "Auto-Submitted: auto-generated\n"
		  "Precedence: bulk\n"
		  "List-Id: <x.example.com>\n"
		  "\n"
		  "\n  KEY-1  \nsecond\n",
		  -1, NULL, &m, &reason);
	NUM(s, SG_OK, "basic: parses");
	if (m == NULL)
		return;
	IS(m->from, "ivan.petrov@example.com", "basic: From lower-cased addr-spec");
	NUM(m->from_count, 1, "basic: one From");
	IS(m->sender, "ivan.petrov@example.com", "basic: Sender");
	OK(!m->return_path_null, "basic: Return-Path not null");
	IS(m->message_id, "abc@example.com", "basic: Message-ID without <>");
	IS(m->subject, "Остатки", "basic: encoded-word subject decoded");
	NUM(m->date, 1795348800, "basic: Date as unix time");
	IS(m->auto_submitted, "auto-generated", "basic: Auto-Submitted");
	IS(m->precedence, "bulk", "basic: Precedence");
	OK(m->has_list_id, "basic: List-Id");
	OK(m->auth_results && m->auth_results[0] && m->auth_results[1] && !m->auth_results[2],
	   "basic: two A-R headers");
	if (m->auth_results && m->auth_results[0])
		OK(g_str_has_prefix(m->auth_results[0], "mx.stockgate;"),
		   "basic: A-R topmost first");
	IS(m->key, "KEY-1", "basic: key is the first non-empty line, trimmed");
	NUM(m->attachments->len, 0, "basic: no attachments");
	OK(!m->is_report && !m->own_report, "basic: not a report");
	sg_message_free(m);
}

typedef struct {
	const char *name;
	const char *text;
	const char *from;
	int from_count;
	const char *sender;
	bool rp_null, is_report, own_report;
	gint64 date;
	const char *subject;
} header_case;

static const header_case header_cases[] = {
    {"two From headers", "From: a@x.com\nFrom: b@y.com\nSubject: s\n\nk\n", NULL, 2},
    {"two addresses", "From: a@x.com, b@y.com\n\nk\n", NULL, 2},
    {"display-name trick", "From: \"dealer@good.com\" <attacker@evil.com>\n\nk\n",
     "attacker@evil.com", 1},
    {"group", "From: team: a@x.com;\n\nk\n", NULL, 2},
    {"no From", "Subject: x\n\nk\n", NULL, 0},
    {"null Return-Path", "Return-Path: <>\nFrom: mailer-daemon@x.com\n\nk\n", "mailer-daemon@x.com",
     1, NULL, true},
    {"Sender differs", "From: a@x.com\nSender: B@Y.com\n\nk\n", "a@x.com", 1, "b@y.com"},
    {"report",
     "From: a@x.com\nContent-Type: multipart/report; report-type=delivery-status;"
     " boundary=b\n\n--b\nContent-Type: text/plain\n\nfailed\n--b--\n",
     "a@x.com", 1, NULL, false, true},
    {"own report", "From: a@x.com\nX-Stockgate-Report: 1\n\nk\n", "a@x.com", 1, NULL, false, false,
     true},
    {"bad Date", "From: a@x.com\nDate: yesterday-ish\n\nk\n", "a@x.com", 1, NULL, false, false,
     false, -1},
    {"control chars in subject", "From: a@x.com\nSubject: =?UTF-8?Q?a=0D=0Ab=09c?=\n\nk\n",
     "a@x.com", 1, NULL, false, false, false, -1, "a  b c"},
    {"mbox From line", "From someone Sun Nov 22 12:00:00 2026\nFrom: a@x.com\n\nk\n", "a@x.com", 1},
};

static void test_headers(void)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(header_cases); i++) {
		const header_case *c = &header_cases[i];
		g_autoptr(sg_message) m = NULL;
		const char *reason = NULL;
		sg_status s = parse(c->text, -1, NULL, &m, &reason);
		NUM(s, SG_OK, "%s: parses", c->name);
		if (m == NULL)
			continue;
		IS(m->from, c->from, "%s: from", c->name);
		NUM(m->from_count, c->from_count, "%s: from_count", c->name);
		IS(m->sender, c->sender, "%s: sender", c->name);
		OK(m->return_path_null == c->rp_null, "%s: return_path_null", c->name);
		OK(m->is_report == c->is_report, "%s: is_report", c->name);
		OK(m->own_report == c->own_report, "%s: own_report", c->name);
		if (c->date != 0)
			NUM(m->date, c->date, "%s: date", c->name);
		if (c->subject != NULL)
			IS(m->subject, c->subject, "%s: subject", c->name);
	}
}

typedef struct {
	const char *name;
	const char *body; /* after HDR */
	const char *key;
	int natt;
	const char *att_name[3];
	const char *att_type[3];
	const char *att_content0;
} body_case;

#define MP "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
#define TEXT_PART "--b\nContent-Type: text/plain; charset=utf-8\n\nKEY-9\n"

static const body_case body_cases[] = {
    {"RFC 2231 windows-1251 name (Outlook)",
     MP TEXT_PART "--b\nContent-Type: text/csv; charset=windows-1251\n"
		  "Content-Disposition: attachment;\n"
		  " filename*=windows-1251''%CE%F1%F2%E0%F2%EA%E8.csv\n\n"
		  "a;b\n--b--\n",
     "KEY-9",
     1,
     {"Остатки.csv"},
     {"text/csv"},
     "a;b"},
    {"encoded-word name",
     MP TEXT_PART "--b\nContent-Type: application/octet-stream;\n"
		  " name=\"=?UTF-8?Q?=D1=81=D0=BA=D0=BB=D0=B0=D0=B4=D1=8B.csv?=\"\n"
		  "Content-Transfer-Encoding: base64\n\n"
		  "YTtiCg==\n--b--\n",
     "KEY-9",
     1,
     {"склады.csv"},
     {"application/octet-stream"},
     "a;b\n"},
    {"path traversal name",
     MP TEXT_PART "--b\nContent-Type: text/csv\nContent-Disposition: attachment;"
		  " filename*=utf-8''..%2F..%2Fetc%2Fcron.d%2Fx.csv\n\nx\n--b--\n",
     "KEY-9",
     1,
     {"x.csv"},
     {"text/csv"},
     "x"},
    {"attachment without a name",
     MP TEXT_PART "--b\nContent-Type: TEXT/CSV\nContent-Disposition: attachment\n\nx\n--b--\n",
     "KEY-9",
     1,
     {"attachment-1"},
     {"text/csv"}},
    {"HTML-only body",
     "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
     "<html><head><title>Title</title><style>p {}</style></head><body>\n"
     "<p>&nbsp;</p><p>&nbsp;S3CR&amp;T&nbsp;</p><p>second</p></body></html>\n",
     "S3CR&T", 0},
    {"alternative: plain wins over HTML",
     "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n"
     "--b\nContent-Type: text/html\n\n<p>HTMLKEY</p>\n"
     "--b\nContent-Type: text/plain\n\nPLAINKEY\n--b--\n",
     "PLAINKEY", 0},
    {"QP body with NBSP and CRLF",
     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
     "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
     "=C2=A0=20\r\n=C2=A0KEY-QP=C2=A0=20\r\nrest\r\n",
     "KEY-QP", 0},
    {"windows-1251 body",
     "MIME-Version: 1.0\nContent-Type: text/plain; charset=windows-1251\n"
     "Content-Transfer-Encoding: 8bit\n\n\xea\xeb\xfe\xf7\n",
     "ключ", 0},
    {"inline logo, pkcs7 signature and vCard left out",
     MP TEXT_PART "--b\nContent-Type: image/png; name=logo.png\nContent-ID: <logo@x>\n"
		  "Content-Disposition: inline; filename=logo.png\n\nPNG\n"
		  "--b\nContent-Type: application/pkcs7-signature; name=smime.p7s\n"
		  "Content-Disposition: attachment; filename=smime.p7s\n\nsig\n"
		  "--b\nContent-Type: text/x-vcard; name=ivan.vcf\n"
		  "Content-Disposition: attachment; filename=ivan.vcf\n\nBEGIN:VCARD\n"
		  "--b\nContent-Type: text/csv; name=r.csv\n\na\n--b--\n",
     "KEY-9",
     1,
     {"r.csv"},
     {"text/csv"}},
    {"winmail.dat kept",
     MP TEXT_PART "--b\nContent-Type: application/ms-tnef; name=winmail.dat\n"
		  "Content-Transfer-Encoding: base64\n\neJ8+IgAA\n--b--\n",
     "KEY-9",
     1,
     {"winmail.dat"},
     {"application/ms-tnef"}},
    {"message/rfc822 kept whole",
     MP TEXT_PART "--b\nContent-Type: message/rfc822\n\n"
		  "From: boss@other.com\nAuthentication-Results: mx.stockgate; dmarc=pass\n"
		  "Subject: inner\n\ninner body\n--b--\n",
     "KEY-9",
     1,
     {"attachment-1"},
     {"message/rfc822"}},
    {"broken base64",
     MP TEXT_PART "--b\nContent-Type: text/csv; name=a.csv\nContent-Transfer-Encoding: base64\n\n"
		  "YTt*iC!g=\n=\n%%%%\nYWJj\n--b--\n",
     "KEY-9",
     1,
     {"a.csv"},
     {"text/csv"}},
    {"truncated multipart",
     MP TEXT_PART "--b\nContent-Type: text/csv; name=a.csv\n\nhalf a fi",
     "KEY-9",
     1,
     {"a.csv"},
     {"text/csv"}},
    {"attachment keeps order and charset",
     MP TEXT_PART "--b\nContent-Type: text/csv; charset=Windows-1251; name=1.csv\n\n1\n"
		  "--b\nContent-Type: application/vnd.ms-excel; name=2.csv\n\n2\n--b--\n",
     "KEY-9",
     2,
     {"1.csv", "2.csv"},
     {"text/csv", "application/vnd.ms-excel"},
     "1"},
};

static void test_bodies(void)
{
	size_t i;
	int k;

	for (i = 0; i < G_N_ELEMENTS(body_cases); i++) {
		const body_case *c = &body_cases[i];
		g_autofree char *text = g_strconcat(HDR, c->body, NULL);
		g_autoptr(sg_message) m = NULL;
		const char *reason = NULL;
		sg_status s = parse(text, -1, NULL, &m, &reason);
		NUM(s, SG_OK, "%s: parses (%s)", c->name, reason ? reason : "");
		if (m == NULL)
			continue;
		IS(m->key, c->key, "%s: key", c->name);
		NUM(m->attachments->len, c->natt, "%s: attachments", c->name);
		for (k = 0; k < c->natt; k++) {
			const sg_attachment *a = att(m, (guint)k);
			IS(a ? a->name : NULL, c->att_name[k], "%s: name %d", c->name, k);
			IS(a ? a->content_type : NULL, c->att_type[k], "%s: type %d", c->name, k);
			if (a != NULL)
				NUM(a->data ? (gint64)g_bytes_get_size(a->data) : -1, a->size,
				    "%s: size %d is the length of the bytes", c->name, k);
		}
		if (c->att_content0 != NULL) {
			g_autofree char *t = file_text(att(m, 0));
			IS(t, c->att_content0, "%s: decoded content", c->name);
			NUM(att(m, 0)->size, strlen(c->att_content0), "%s: size", c->name);
		}
	}
}

static void test_charset_and_rfc822(void)
{
	g_autoptr(sg_message) m = NULL;
	const char *reason;

	parse(HDR MP TEXT_PART
	      "--b\nContent-Type: text/csv; charset=Windows-1251; name=1.csv\n\n1\n"
	      "--b--\n",
	      -1, NULL, &m, &reason);
	IS(att(m, 0) ? att(m, 0)->charset : NULL, "windows-1251", "charset parameter kept");
	g_clear_pointer(&m, sg_message_free);
	parse(HDR MP TEXT_PART "--b\nContent-Type: message/rfc822\n\n"
			       "From: boss@other.com\nSubject: inner\n\ninner body\n--b--\n",
	      -1, NULL, &m, &reason);
	if (m != NULL) {
		g_autofree char *t = file_text(att(m, 0));
		IS(m->from, "dealer@example.com", "rfc822: outer From only");
		OK(m->auth_results[0] == NULL, "rfc822: inner A-R not taken");
		OK(t && strstr(t, "From: boss@other.com") && strstr(t, "inner body"),
		   "rfc822: the forwarded message is the file");
	}
}

static GString *nested(int levels)
{
	GString *s = g_string_new("From: a@x.com\nMIME-Version: 1.0\n");
	int i;

	for (i = 0; i < levels; i++)
		g_string_append_printf(
		    s, "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n", i, i);
	g_string_append(s, "Content-Type: text/plain\n\nkey\n");
	for (i = levels - 1; i >= 0; i--)
		g_string_append_printf(s, "--b%d--\n", i);
	return s;
}

static gint64 ms(void) { return g_get_monotonic_time() / 1000; }

static void test_limits(void)
{
	g_autoptr(GString) deep = nested(3000);
	g_autoptr(GString) many = g_string_new("From: a@x.com\nContent-Type: multipart/mixed; "
					       "boundary=b\n\n");
	g_autoptr(GString) longhdr = g_string_new("From: a@x.com\nSubject: ");
	g_autoptr(GString) folded = g_string_new("From: a@x.com\nSubject: x");
	g_autoptr(GString) big = g_string_new(HDR "\nkey\n");
	g_autoptr(GString) hdrs = g_string_new("From: a@x.com\n");
	sg_message *m = NULL;
	const char *reason = NULL;
	sg_status s;
	gint64 t0;
	int i;

	t0 = ms();
	s = parse(deep->str, (gssize)deep->len, NULL, &m, &reason);
	NUM(s, SG_EDATA, "nesting 3000: refused");
	IS(reason, "too_complex", "nesting 3000: too_complex");
	OK(ms() - t0 < 5000, "nesting 3000: fast (%lld ms)", (long long)(ms() - t0));
	IS(m ? m->from : NULL, "a@x.com", "nesting 3000: From still known");
	g_clear_pointer(&m, sg_message_free);

	for (i = 0; i < 5000; i++)
		g_string_append_printf(many, "--b\nContent-Type: text/csv; name=%d.csv\n\n%d\n", i,
				       i);
	g_string_append(many, "--b--\n");
	s = parse(many->str, (gssize)many->len, NULL, &m, &reason);
	NUM(s, SG_EDATA, "5000 parts: refused");
	IS(reason, "too_complex", "5000 parts: too_complex");
	NUM(m ? m->attachments->len : 0, 0, "5000 parts: no attachment decoded");
	g_clear_pointer(&m, sg_message_free);

	for (i = 0; i < 100 * 1024; i++)
		g_string_append_c(longhdr, 'a');
	g_string_append(longhdr, "\n\nkey\n");
	s = parse(longhdr->str, (gssize)longhdr->len, NULL, &m, &reason);
	IS(reason, "too_complex", "100 KB header line: too_complex");
	OK(s == SG_EDATA && m != NULL, "100 KB header line: the sender facts are still read");
	IS(m ? m->from : NULL, "a@x.com", "100 KB header line: From known (for the reply decision)");
	OK(m && (m->subject == NULL || *m->subject == '\0'), "100 KB header line: the long field left out");
	g_clear_pointer(&m, sg_message_free);

	for (i = 0; i < 2000; i++)
		g_string_append(folded, "\n folded-folded-folded-folded-folded-folded");
	g_string_append(folded, "\n\nkey\n");
	s = parse(folded->str, (gssize)folded->len, NULL, &m, &reason);
	IS(reason, "too_complex", "folded 80 KB header: too_complex");
	g_clear_pointer(&m, sg_message_free);

	for (i = 0; i < 3000; i++)
		g_string_append_printf(hdrs, "X-H%d: 0123456789012345678901234567890\n", i);
	g_string_append(hdrs, "\nkey\n");
	s = parse(hdrs->str, (gssize)hdrs->len, NULL, &m, &reason);
	IS(reason, "too_complex", "header block over the limit: too_complex");
	g_clear_pointer(&m, sg_message_free);

	while (big->len < (3u << 20))
		g_string_append(big,
				"0123456789012345678901234567890123456789012345678901234567\n");
	s = parse(big->str, (gssize)big->len, NULL, &m, &reason);
	NUM(s, SG_EDATA, "3 MB message: refused");
	IS(reason, "too_large", "3 MB message: too_large");
	IS(m ? m->from : NULL, "dealer@example.com", "too_large: From still known");
	IS(m ? m->subject : NULL, "remains", "too_large: Subject still known");
	NUM(m ? m->attachments->len : 99, 0, "too_large: no files");
	g_clear_pointer(&m, sg_message_free);

	g_string_prepend(big, " ");
	s = parse(big->str, (gssize)big->len, NULL, &m, &reason);
	IS(reason, "too_large", "too_large with a broken header: still too_large");
	OK(s == SG_EDATA && m == NULL, "too_large with a broken header: no facts");
	g_clear_pointer(&m, sg_message_free);
	{
		sg_message_limits zero = {0};
		s = parse(HDR MP TEXT_PART "--b--\n", -1, &zero, &m, &reason);
		NUM(s, SG_OK, "limits left at 0: parses");
		IS(m ? m->key : NULL, "KEY-9", "limits left at 0: key");
		g_clear_pointer(&m, sg_message_free);
	}
}

typedef struct {
	const char *name;
	const char *text;
	size_t len;
	const char *reason;
} bad_case;

#define BAD(name, lit, reason)                                                                     \
	{                                                                                          \
		name, lit, sizeof(lit) - 1, reason                                                 \
	}

static const bad_case bad_cases[] = {
    BAD("NUL in header", "From: a@x.com\0evil@y.com\nSubject: s\n\nk\n", "unparseable"),
    BAD("leading-space first line", " From: a@x.com\n\nk\n", "unparseable"),
    BAD("empty file", "", "unparseable"),
    BAD("no header at all", "\nbody only\n", "unparseable"),
    BAD("not a header", "hello world\nthis is text\n", "unparseable"),
    BAD("conflicting filename parameters",
	"From: a@x.com\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
	"Content-Type: text/plain\n\nk\n--b\nContent-Type: text/csv\n"
	"Content-Disposition: attachment; filename=b.exe; filename=a.csv\n\nx\n--b--\n",
	"unparseable"),
};

static void test_bad(void)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
		const bad_case *c = &bad_cases[i];
		g_autoptr(sg_message) m = NULL;
		const char *reason = NULL;
		sg_status s = parse(c->text, (gssize)c->len, NULL, &m, &reason);
		NUM(s, SG_EDATA, "%s: refused", c->name);
		IS(reason, c->reason, "%s: reason", c->name);
	}
}

static void test_gmime165(void)
{
	GString *s = g_string_new("Content-Type: multipart/mixed;\n ");
	sg_message *m = NULL;
	const char *reason = NULL;
	sg_status st;
	gint64 t0;
	int i;

	for (i = 0; i < 36; i++)
		g_string_append(s, "ќ");
	g_string_append(s, "=\"ќ\"");
	t0 = ms();
	st = parse(s->str, (gssize)s->len, NULL, &m, &reason);
	OK(ms() - t0 < 3 * 1000 * lim.cpu_seconds + 2000, "gmime #165: returns in %lld ms",
	   (long long)(ms() - t0));
	OK(st == SG_OK || (st == SG_EDATA && strcmp(reason, "unparseable") == 0),
	   "gmime #165: parsed or unparseable (%s)", reason ? reason : "ok");
	sg_message_free(m);
	g_string_free(s, TRUE);

	/* the same Content-Type inside a forwarded message, which would be written out */
	s = g_string_new(HDR MP TEXT_PART "--b\nContent-Type: message/rfc822\n\n"
					  "From: x@y.com\nContent-Type: multipart/mixed;\n ");
	for (i = 0; i < 36; i++)
		g_string_append(s, "ќ");
	g_string_append(s, "=\"ќ\"\n\n--b--\n");
	t0 = ms();
	m = NULL;
	st = parse(s->str, (gssize)s->len, NULL, &m, &reason);
	OK(ms() - t0 < 3 * 1000 * lim.cpu_seconds + 2000,
	   "gmime #165 in message/rfc822: returns in %lld ms", (long long)(ms() - t0));
	OK(st == SG_OK || (st == SG_EDATA && strcmp(reason, "unparseable") == 0),
	   "gmime #165 in message/rfc822: parsed or unparseable (%s)", reason ? reason : "ok");
	sg_message_free(m);
	g_string_free(s, TRUE);
}

static void test_in_process(void)
{
	sg_message_limits l = lim;
	g_autoptr(sg_message) m = NULL;
	const char *reason = NULL;

	l.in_process = true;
	NUM(parse(HDR MP TEXT_PART "--b\nContent-Type: text/csv; name=a.csv\n\nx\n--b--\n", -1, &l,
		  &m, &reason),
	    SG_OK, "in process: parses");
	IS(m ? m->key : NULL, "KEY-9", "in process: key");
	NUM(m ? m->attachments->len : 0, 1, "in process: attachment");
}

/* A worker that dies or spins is contained: unparseable, within the time bound. */
static void test_child_failures(void)
{
	static const char *const points[] = {"message-child", "message-spin"};
	sg_message_limits l = lim;
	size_t i;

	l.cpu_seconds = 1;
	for (i = 0; i < G_N_ELEMENTS(points); i++) {
		g_autoptr(sg_message) m = NULL;
		const char *reason = NULL;
		gint64 t0 = ms();
		sg_status s;

		g_setenv("SG_CRASH", points[i], TRUE);
		s = parse(HDR "\nkey\n", -1, &l, &m, &reason);
		g_unsetenv("SG_CRASH");
		NUM(s, SG_EDATA, "%s: refused", points[i]);
		IS(reason, "unparseable", "%s: unparseable", points[i]);
		OK(m == NULL, "%s: no facts", points[i]);
		OK(ms() - t0 < 4000, "%s: contained in %lld ms", points[i], (long long)(ms() - t0));
	}
}

/* The worker's open descriptors other than 0-2, as "N:target" joined by spaces. */
static char *worker_fds(pid_t pid)
{
	g_autofree char *d = g_strdup_printf("/proc/%d/fd", (int)pid);
	g_autoptr(GString) out = g_string_new(NULL);
	GDir *dh = g_dir_open(d, 0, NULL);
	const char *n;

	if (dh == NULL)
		return g_strdup("(unreadable)");
	while ((n = g_dir_read_name(dh)) != NULL) {
		g_autofree char *p = g_build_filename(d, n, NULL);
		g_autofree char *t = g_file_read_link(p, NULL);
		if (atoi(n) > 2)
			g_string_append_printf(out, "%s%s:%s", out->len ? " " : "", n,
					       t && g_str_has_prefix(t, "socket:") ? "socket" : t);
	}
	g_dir_close(dh);
	return g_strdup(out->str);
}

/* One worker parses message after message; one that dies or spins costs its message only, the
 * next gets a fresh worker; it holds none of the parent's descriptors; it is replaced after
 * 256 messages. */
/* A stop signal sent to the whole process group (Ctrl-C, systemd's SIGTERM to the unit) is the
 * parent's: the worker keeps going, so that the message in hand is parsed, not failed. */
static void test_worker_signals(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	g_autoptr(sg_message) m = NULL, m2 = NULL;
	const char *reason = NULL;
	pid_t pid;

	NUM(parse(HDR "\nkey\n", -1, NULL, &m, &reason), SG_OK, "signals: a message parsed");
	pid = sg_message_worker_pid();
	OK(pid > 0, "signals: by a worker");
	for (size_t i = 0; i < G_N_ELEMENTS(sigs); i++)
		kill(pid, sigs[i]);
	NUM(parse(HDR "\nkey\n", -1, NULL, &m2, &reason), SG_OK,
	    "signals: after SIGINT, SIGTERM and SIGHUP the next message is parsed");
	NUM(sg_message_worker_pid(), pid, "signals: by the same worker, which ignored them");
}

/* A parse started ahead is taken by the parse of its message; any other parse drops it. */
static void test_ahead(void)
{
#define AHEAD_MSG(csv)                                                                            \
	HDR "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nkey\n--b\n"                       \
	    "Content-Type: text/csv; name=r.csv\n\n" csv "\n--b--\n"
	g_autofree char *a = g_strdup_printf("%s/ahead-a.eml", dir);
	g_autofree char *b = g_strdup_printf("%s/ahead-b.eml", dir);
	sg_message_limits small = lim;

	g_file_set_contents(a, AHEAD_MSG("A;1"), -1, NULL);
	g_file_set_contents(b, AHEAD_MSG("B;2"), -1, NULL);
	for (int round = 0; round < 2; round++) {
		g_autoptr(sg_message) m = NULL;
		g_autofree char *sha = NULL, *t = NULL, *want = sg_sha256_file(a);
		const char *reason = NULL;

		sg_message_parse_ahead(a, &lim);
		if (round == 1)
			sg_message_parse_ahead(b, &lim); /* one at a time: ignored */
		NUM(sg_message_parse_hashed(a, &lim, &m, &reason, &sha, NULL), SG_OK,
		    "ahead %d: the message parsed ahead is parsed", round);
		t = file_text(att(m, 0));
		IS(t, "A;1", "ahead %d: its own attachment", round);
		IS(sha, want, "ahead %d: its hash taken here", round);
	}
	{
		g_autoptr(sg_message) mb = NULL, ma = NULL;
		g_autofree char *tb2 = NULL, *ta2 = NULL;
		const char *reason = NULL;

		sg_message_parse_ahead(a, &lim);
		NUM(sg_message_parse(b, &lim, &mb, &reason, NULL), SG_OK,
		    "another message than the one ahead is parsed");
		tb2 = file_text(att(mb, 0));
		IS(tb2, "B;2", "with its own attachment, not the answer ahead");
		NUM(sg_message_parse(a, &lim, &ma, &reason, NULL), SG_OK, "then the one ahead");
		ta2 = file_text(att(ma, 0));
		IS(ta2, "A;1", "from a job of its own");
	}
	{
		g_autoptr(sg_message) m = NULL;
		g_autofree char *t = NULL;
		const char *reason = NULL;

		small.max_message_size = 16;
		sg_message_parse_ahead(a, &small); /* too large: decided by its parse, not ahead */
		NUM(sg_message_parse(b, &lim, &m, &reason, NULL), SG_OK,
		    "after a parse ahead asked for a too large message, the next parse runs");
		t = file_text(att(m, 0));
		IS(t, "B;2", "and gets its own answer");
		g_clear_pointer(&m, sg_message_free);
		NUM(sg_message_parse(a, &lim, &m, &reason, NULL) == SG_OK && m, 1,
		    "a parse with other limits than the job ahead runs its own");
	}
	{
		g_autoptr(sg_message) m = NULL;
		g_autoptr(sg_message) m2 = NULL;
		g_autofree char *t = NULL;
		const char *reason = NULL;

		/* the test hook counts the job ahead as its message's */
		g_setenv("SG_CRASH", "message-child:1", TRUE);
		sg_message_parse_ahead(a, &lim);
		sg_message_parse(a, &lim, &m, &reason, NULL);
		IS(reason, "unparseable", "a worker dying on the job ahead fails that message");
		reason = NULL;
		NUM(sg_message_parse(b, &lim, &m2, &reason, NULL), SG_OK,
		    "and the next one is parsed by a fresh worker");
		t = file_text(att(m2, 0));
		IS(t, "B;2", "correctly");
		g_unsetenv("SG_CRASH");
	}
}

static void test_worker(void)
{
	static const char *const hooks[] = {"message-child:2", "message-spin:2"};
	const char *att_msg = HDR "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nkey\n--b\n"
				  "Content-Type: text/csv; name=r.csv\n\nA;1\n--b--\n";
	sg_message_limits l = lim;
	pid_t first, pid;
	int keep[3];

	l.cpu_seconds = 1;
	for (size_t h = 0; h < G_N_ELEMENTS(hooks); h++) {
		pid_t before = 0;
		g_setenv("SG_CRASH", hooks[h], TRUE);
		for (int i = 1; i <= 3; i++) {
			g_autoptr(sg_message) m = NULL;
			const char *reason = NULL;
			sg_status s = parse(att_msg, -1, &l, &m, &reason);
			g_autofree char *t = file_text(att(m, 0));
			if (i == 2) {
				IS(reason, "unparseable", "%s: message 2 unparseable", hooks[h]);
				NUM(sg_message_worker_pid(), 0, "%s: its worker is gone", hooks[h]);
				continue;
			}
			NUM(s, SG_OK, "%s: message %d parsed", hooks[h], i);
			IS(t, "A;1", "%s: message %d attachment", hooks[h], i);
			pid = sg_message_worker_pid();
			OK(pid > 0 && pid != before, "%s: message %d by a fresh worker", hooks[h], i);
			before = pid;
		}
		g_unsetenv("SG_CRASH");
	}

	/* Descriptors open here (no CLOEXEC) when the worker starts are not in it. */
	keep[0] = open("/dev/null", O_RDONLY);
	OK(socketpair(AF_UNIX, SOCK_STREAM, 0, keep + 1) == 0, "fds: a socket pair opened");
	g_setenv("SG_CRASH", "message-child", TRUE);
	{
		g_autoptr(sg_message) m = NULL;
		const char *reason = NULL;
		parse(att_msg, -1, &l, &m, &reason);
	}
	g_unsetenv("SG_CRASH");
	{
		g_autoptr(sg_message) m = NULL;
		const char *reason = NULL;
		NUM(parse(att_msg, -1, &l, &m, &reason), SG_OK, "fds: parsed by a fresh worker");
	}
	first = sg_message_worker_pid();
	{
		g_autofree char *fds = worker_fds(first);
		IS(fds, "3:socket", "fds: the worker holds only its socket (and 0-2)");
	}
	for (int i = 0; i < 3; i++)
		close(keep[i]);

	/* the same worker for the next messages, until its 256th */
	for (int i = 1; i < 256; i++) {
		g_autoptr(sg_message) m = NULL;
		const char *reason = NULL;
		if (parse(HDR "\nkey\n", -1, &l, &m, &reason) != SG_OK) {
			OK(false, "replaced: message %d failed", i);
			break;
		}
		if (i == 254)
			NUM(sg_message_worker_pid(), first, "one worker for 255 messages");
	}
	NUM(sg_message_worker_pid(), 0, "the worker ends after 256 messages");
	{
		g_autoptr(sg_message) m = NULL;
		const char *reason = NULL;
		NUM(parse(HDR "\nkey\n", -1, &l, &m, &reason), SG_OK, "the 257th parsed");
		pid = sg_message_worker_pid();
		OK(pid > 0 && pid != first, "the 257th by a new worker");
		IS(m ? m->key : NULL, "key", "the 257th: key");
	}
}

static const struct {
	const char *subject, *method;
} subjects[] = {
    {"remains", "remains"},
    {"Re: Fwd: remains", "remains"},
    {"RE[2]: Склады", "warehouses"},
    {"  ОСТАТКИ ", "remains"},
    {"FW: vin", "vin"},
    {"Fw:frame", "frame"},
    {"Отв: Пересл: остатки", "remains"},
    {"re: re: RE:  Price", "price"},
    {"Re(3): rental", "rental"},
    {"WAREHOUSES", "warehouses"},
    {"\xc2\xa0remains\xc2\xa0", "remains"},
    {"hello", NULL},
    {"Re: ", NULL},
    {"", NULL},
    {"remains please", NULL},
    {"Rem: remains", NULL},
    {NULL, NULL},
};

static void test_subjects(void)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(subjects); i++)
		IS(sg_subject_method(subjects[i].subject), subjects[i].method, "subject '%s'",
		   subjects[i].subject ? subjects[i].subject : "(null)");
}

/* The hash taken while the child parses is the file's, whatever the parse's outcome. */
static void test_hashed(void)
{
	static const struct {
		const char *name;
		size_t size;
		bool multipart; /* else: not a message at all */
	} t[] = {
		{"small message", 0, true},
		{"3 MiB attachment", 3 << 20, true},
		{"unparseable", 1000, false},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		g_autofree char *path = g_strdup_printf("%s/h%zu.eml", dir, i);
		GString *b = g_string_new(t[i].multipart ? HDR "Content-Type: multipart/mixed; "
							      "boundary=b\n\n--b\n\nkey\n--b\n"
							      "Content-Type: text/csv\n\n"
							    : "\x01\x02 not a header\n\n");
		for (size_t k = 0; k < t[i].size; k++)
			g_string_append_c(b, k % 64 == 63 ? '\n' : 'a' + (char)(k % 26));
		if (t[i].multipart)
			g_string_append(b, "\n--b--\n");
		g_file_set_contents(path, b->str, (gssize)b->len, NULL);
		g_string_free(b, TRUE);
		sg_message *m = NULL;
		const char *reason = NULL;
		g_autofree char *sha = NULL, *want = sg_sha256_file(path), *err = NULL;
		sg_message_limits big = lim;
		big.max_message_size = 0;
		sg_status st = sg_message_parse_hashed(path, &big, &m, &reason, &sha, &err);
		NUM(st, t[i].multipart ? SG_OK : SG_EDATA, "hashed %s: parse status", t[i].name);
		IS(sha, want, "hashed %s: the file's SHA-256", t[i].name);
		sg_message_free(m);
	}
	sg_message *m = NULL;
	const char *reason = NULL;
	g_autofree char *sha = NULL, *err = NULL, *nopath = g_strdup_printf("%s/none.eml", dir);
	NUM(sg_message_parse_hashed(nopath, &lim, &m, &reason, &sha, &err), SG_EIO,
	    "hashed missing file: SG_EIO");
	OK(sha == NULL, "hashed missing file: no hash");
}

int main(void)
{
	dir = g_dir_make_tmp("sg-test-message-XXXXXX", NULL);
	test_hashed();
	test_basic();
	test_headers();
	test_bodies();
	test_charset_and_rfc822();
	test_limits();
	test_bad();
	test_gmime165();
	test_in_process();
	test_child_failures();
	test_worker();
	test_ahead();
	test_worker_signals();
	test_subjects();
	{
		/* every private dir was removed by sg_message_free; only the inputs remain */
		GDir *d = g_dir_open(dir, 0, NULL);
		const char *n;
		int left = 0;
		while (d && (n = g_dir_read_name(d)) != NULL) {
			g_autofree char *p = g_build_filename(dir, n, NULL);
			if (g_str_has_prefix(n, "sg-msg-"))
				left++;
			g_unlink(p);
		}
		if (d)
			g_dir_close(d);
		NUM(left, 0, "no private dir left behind");
		g_rmdir(dir);
	}
	return tap_done();
}
