/* test-report.c: the report message parsed back with gmime: headers, body, errors.csv. */
#include <gmime/gmime.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report.h"
#include "transport.h"
#include "tap.h"
#include "util.h"

static GMimeMessage *parse(const char *data, size_t len)
{
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(data, len);
	GMimeParser *p = g_mime_parser_new_with_stream(st);
	GMimeMessage *m = g_mime_parser_construct_message(p, NULL);

	g_object_unref(p);
	g_object_unref(st);
	return m;
}

/* The decoded bytes of the attachment named name, or NULL. */
static GByteArray *attachment_bytes(GMimeMessage *m, const char *name)
{
	GMimePartIter *it = g_mime_part_iter_new(GMIME_OBJECT(m));
	GByteArray *res = NULL;

	do {
		GMimeObject *o = g_mime_part_iter_get_current(it);
		if (o && GMIME_IS_PART(o) && g_strcmp0(g_mime_part_get_filename(GMIME_PART(o)), name) == 0) {
			GMimeStream *ms = g_mime_stream_mem_new();
			g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(GMIME_PART(o)), ms);
			GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(ms));
			res = g_byte_array_new();
			g_byte_array_append(res, ba->data, ba->len);
			g_object_unref(ms);
			break;
		}
	} while (g_mime_part_iter_next(it));
	g_mime_part_iter_free(it);
	return res;
}

static char *body_text(GMimeMessage *m)
{
	GMimeObject *b = g_mime_message_get_body(m);
	return b && GMIME_IS_TEXT_PART(b) ? g_mime_text_part_get_text(GMIME_TEXT_PART(b)) : NULL;
}

static bool all_crlf(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return false;
	return true;
}

static sg_result *sample(bool dev, int nerrors)
{
	sg_result *r = sg_result_new("file:x.eml");
	r->method = g_strdup("remains");
	r->dev_mode = dev;

	sg_file_result *f1 = sg_file_result_new("x.csv\r\nBcc: evil@example.com");
	f1->rows = nerrors + 1;
	sg_file_error(f1, 2, "Остаток", "bad_quantity", "=HYPERLINK(\"http://evil\")",
		      "not a whole number");
	sg_file_error(f1, 3, "Остаток", "bad_quantity", "-1", "'-1' is negative");
	for (int i = 3; i <= nerrors; i++) {
		char v[16];
		g_snprintf(v, sizeof v, "e%03d", i);
		sg_file_error(f1, i + 1, "Артикул", "bad_article", v, "bad article");
	}
	sg_file_warning(f1, 9, NULL, "not_in_catalog", "@SUM(A1)");
	sg_file_reject(f1, "row_errors", NULL);
	g_ptr_array_add(r->files, f1);

	sg_file_result *f2 = sg_file_result_new("ok.csv");
	f2->applied = true;
	f2->warehouse = g_strdup("W1");
	f2->rows = 7, f2->added = 1, f2->updated = 2, f2->deleted = 3, f2->unchanged = 4;
	g_ptr_array_add(r->files, f2);

	sg_file_result *f3 = sg_file_result_new("winmail.dat");
	sg_file_reject(f3, "bad_mime_type", "application/ms-tnef");
	g_ptr_array_add(r->files, f3);

	sg_file_result *f4 = sg_file_result_new("book.xlsx");
	sg_file_reject(f4, "not_csv", NULL);
	g_ptr_array_add(r->files, f4);

	sg_file_result *f5 = sg_file_result_new("hdr.csv");
	sg_file_reject(f5, "bad_header", "found: Foo, Bar; expected: Код склада, Артикул, Остаток");
	g_ptr_array_add(r->files, f5);

	sg_file_result *f6 = sg_file_result_new("empty.csv");
	sg_file_reject(f6, "empty_file", NULL);
	g_ptr_array_add(r->files, f6);

	sg_result_settle(r);
	return r;
}

static void test_headers_and_csv(void)
{
	g_autoptr(sg_result) r = sample(false, 60);
	sg_report_opts o = {
		.from = "\"Stock API\" <api@stock.example>",
		.to = "dealer@shop.example",
		.language = "ru",
		.in_reply_to = "orig.1@shop.example",
		.method = "remains",
	};
	char *out = NULL, *id = NULL, *err = NULL;
	size_t len = 0;

	NUM(sg_report_build(r, &o, &out, &len, &id, &err), SG_OK, "report built");
	OK(out && len == strlen(out), "length matches");
	OK(all_crlf(out, len), "every line ends with CRLF");
	OK(strstr(out, "\nBcc:") == NULL && strstr(out, "evil@example.com\r\n") == NULL,
	   "no header injected from a file name");

	GMimeMessage *m = parse(out, len);
	OK(m != NULL, "report parses");
	g_autofree char *to = internet_address_list_to_string(g_mime_message_get_to(m), NULL, FALSE);
	IS(to, "dealer@shop.example", "To is the registry address only");
	NUM(internet_address_list_length(g_mime_message_get_cc(m)), 0, "no Cc");
	NUM(internet_address_list_length(g_mime_message_get_bcc(m)), 0, "no Bcc header");
	g_autofree char *from = internet_address_list_to_string(g_mime_message_get_from(m), NULL, FALSE);
	IS(from, "Stock API <api@stock.example>", "From from the config");
	IS(g_mime_message_get_subject(m), "remains: обработано частично", "Russian subject");
	IS(g_mime_object_get_header(GMIME_OBJECT(m), "Auto-Submitted"), "auto-replied", "Auto-Submitted");
	IS(g_mime_object_get_header(GMIME_OBJECT(m), SG_REPORT_HEADER), "1", "X-Stockgate-Report");
	IS(g_mime_object_get_header(GMIME_OBJECT(m), "In-Reply-To"), "<orig.1@shop.example>", "In-Reply-To");
	IS(g_mime_object_get_header(GMIME_OBJECT(m), "References"), "<orig.1@shop.example>", "References");
	OK(strstr(out, "\r\nContent-Language: ru\r\n") != NULL, "Content-Language");
	IS(g_mime_object_get_header(GMIME_OBJECT(m), "MIME-Version"), "1.0", "MIME-Version");
	IS(g_mime_message_get_message_id(m), id, "Message-ID returned");
	OK(id && g_str_has_suffix(id, "@stock.example"), "Message-ID domain from From: %s", id);

	g_autofree char *body = body_text(m);
	OK(body && strstr(body, "Отчёт stockgate") != NULL, "Russian body");
	OK(body && strstr(body, "РЕЖИМ РАЗРАБОТКИ") == NULL, "no dev-mode notice outside dev mode");
	OK(body && strstr(body, "Файл 1: x.csv  Bcc: evil@example.com\n") != NULL, "name on one line");
	OK(body && strstr(body, "«e050»") != NULL, "error 50 in the body");
	OK(body && strstr(body, "e051") == NULL, "error 51 not in the body");
	OK(body && strstr(body, "и ещё ошибок: 10") != NULL, "the rest counted");
	OK(body && strstr(body, "строка 2, столбец «Остаток»") != NULL, "line and column");
	OK(body && strstr(body, "HTML") != NULL && strstr(body, "winmail.dat") != NULL, "winmail advice");
	OK(body && strstr(body, "сохраните как CSV") != NULL, "not_csv advice");
	OK(body && strstr(body, "found: Foo, Bar; expected") != NULL, "bad_header detail");
	OK(body && strstr(body, "с количеством 0") != NULL, "empty_file advice");
	OK(body && strstr(body, "добавлено: 1, изменено: 2, удалено: 3") != NULL, "counts");
	OK(body && strstr(body, "Предупреждений: 1") != NULL, "warnings summary");

	g_autoptr(GByteArray) csv = attachment_bytes(m, "errors.csv");
	OK(csv != NULL, "errors.csv attached");
	if (csv) {
		g_autofree char *s = g_strndup((const char *)csv->data, csv->len);
		OK(g_str_has_prefix(s, "\xEF\xBB\xBF" "file;line;column;code;message;value\r\n"),
		   "BOM, ';' and header");
		OK(strstr(s, ";\"'=HYPERLINK(\"\"http://evil\"\")\"\r\n") != NULL, "formula guarded and quoted");
		OK(strstr(s, ";'-1\r\n") != NULL, "-1 guarded");
		OK(strstr(s, ";'@SUM(A1)\r\n") != NULL, "warning value guarded");
		OK(strstr(s, "\"x.csv  Bcc: evil@example.com\";2;Остаток;bad_quantity;") != NULL ||
		   strstr(s, "x.csv  Bcc: evil@example.com;2;Остаток;bad_quantity;") != NULL,
		   "file, line, column, code");
		OK(strstr(s, ";e060\r\n") != NULL, "all errors in the CSV");
		OK(all_crlf(s, csv->len), "CSV lines end with CRLF");
	}
	g_object_unref(m);
	g_free(out);
	g_free(id);
}

static void test_english_dev_and_injection(void)
{
	g_autoptr(sg_result) r = sample(true, 3);
	sg_report_opts o = {
		.from = "not an address",
		.to = "dealer@shop.example",
		.bcc = "audit@stock.example",
		.language = "en",
		.in_reply_to = "abc@x>\r\nBcc: evil@example.com",
		.method = "remains\r\nX-Evil: 1",
	};
	char *out = NULL, *id = NULL, *err = NULL;
	size_t len = 0;

	NUM(sg_report_build(r, &o, &out, &len, &id, &err), SG_OK, "English report built");
	GMimeMessage *m = parse(out, len);
	OK(m != NULL, "parses");
	OK(g_mime_object_get_header(GMIME_OBJECT(m), "In-Reply-To") == NULL, "unsafe id not echoed");
	OK(g_mime_object_get_header(GMIME_OBJECT(m), "References") == NULL, "no References");
	OK(g_mime_object_get_header(GMIME_OBJECT(m), "X-Evil") == NULL, "no header from the method");
	OK(strstr(out, "\nBcc:") == NULL && strstr(out, "\nX-Evil") == NULL &&
	   strstr(out, "abc@x") == NULL, "nothing of the injection in the headers");
	IS(g_mime_message_get_subject(m), "[TEST] stockgate: partially applied", "English dev subject");
	g_autofree char *from = internet_address_list_to_string(g_mime_message_get_from(m), NULL, FALSE);
	IS(from, "stockgate <stockgate@localhost>", "bad From falls back");
	OK(strstr(out, "\r\nContent-Language: en\r\n") != NULL, "Content-Language en");
	g_autofree char *body = body_text(m);
	OK(body && g_str_has_prefix(body, "*** DEVELOPMENT MODE"), "dev-mode notice at the top");
	OK(body && strstr(body, "line 2, column \"Остаток\": not a whole number") != NULL,
	   "English error line");
	OK(body && strstr(body, "plain-text or HTML format") != NULL, "winmail advice in English");
	OK(body && strstr(body, "save as CSV") != NULL, "not_csv advice in English");
	OK(body && strstr(body, "send the articles with 0") != NULL, "empty_file advice in English");
	g_object_unref(m);
	g_free(out);
	g_free(id);
}

static void test_applied_and_extra(void)
{
	g_autoptr(sg_result) r = sg_result_new("file:y.eml");
	sg_file_result *f = sg_file_result_new("w.csv");
	f->applied = true;
	g_ptr_array_add(r->files, f);
	sg_result_settle(r);

	char tmpl[] = "/tmp/sg-report-XXXXXX";
	int fd = g_mkstemp(tmpl);
	(void)!write(fd, "vin,status\r\nX,ok\r\n", 18);
	close(fd);

	sg_report_opts o = { .from = "api@stock.example", .to = "d@shop.example", .method = "vin",
			     .extra_name = "../results.csv", .extra_path = tmpl };
	char *out = NULL, *id = NULL, *err = NULL;
	size_t len = 0;
	NUM(sg_report_build(r, &o, &out, &len, &id, &err), SG_OK, "report with an extra file");
	GMimeMessage *m = parse(out, len);
	IS(g_mime_message_get_subject(m), "vin: обработано", "subject applied");
	OK(attachment_bytes(m, "errors.csv") == NULL, "no errors.csv without errors");
	g_autoptr(GByteArray) ex = attachment_bytes(m, "results.csv");
	OK(ex && ex->len == 18 && memcmp(ex->data, "vin,status\r\nX,ok\r\n", 18) == 0,
	   "extra attachment byte for byte");
	OK(g_mime_object_get_header(GMIME_OBJECT(m), "In-Reply-To") == NULL, "no In-Reply-To without id");
	g_object_unref(m);
	g_free(out);
	g_free(id);
	unlink(tmpl);

	o.extra_path = "/nonexistent/results.csv";
	NUM(sg_report_build(r, &o, &out, &len, &id, &err), SG_EIO, "missing extra file");
	g_free(err);
	err = NULL;

	sg_report_opts bad = { .from = "api@stock.example", .to = "a@b.example\r\nBcc: x@y" };
	NUM(sg_report_build(r, &bad, &out, &len, &id, &err), SG_EDATA, "unsafe To refused");
	OK(err != NULL, "with a message");
	g_free(err);
}

static void test_deterministic_id(void)
{
	g_autoptr(sg_result) r = sg_result_new("file:z.eml");
	sg_result_settle(r);
	sg_report_opts o = { .from = "api@Stock.Example", .to = "d@shop.example" };
	char *out1, *out2, *id1, *id2, *err = NULL;
	size_t len;

	g_setenv("SG_MSGID_SEED", "42", TRUE);
	g_setenv("SG_NOW", "1795867200", TRUE);
	sg_report_build(r, &o, &out1, &len, &id1, &err);
	sg_report_build(r, &o, &out2, &len, &id2, &err);
	OK(id1 && id2 && strcmp(id1, id2) != 0, "two reports, two ids");
	OK(g_str_has_suffix(id1, "@stock.example"), "domain lower-cased");
	OK(strstr(out1, "Date: Sat, 28 Nov 2026 12:00:00 +0000\r\n") != NULL, "Date from SG_NOW");
	g_free(out1), g_free(out2), g_free(id1), g_free(id2);
	g_unsetenv("SG_MSGID_SEED");
	g_unsetenv("SG_NOW");
}

/* The dir: outbox: one complete .eml a report, mode 0600, no temp file left. */
static void test_dir_transport(void)
{
	char tmpl[] = "/tmp/sg-outbox-XXXXXX";
	char *dir = g_mkdtemp(tmpl);
	sg_transport *t = NULL;
	char *err = NULL;
	const char *rcpts[] = { "d@shop.example", NULL };
	int n = 0;

	NUM(sg_transport_dir_open("/nonexistent/outbox", &t, &err), SG_EIO, "missing outbox");
	OK(err && strstr(err, "/nonexistent/outbox") != NULL, "message names the directory");
	g_free(err);
	err = NULL;

	NUM(sg_transport_dir_open(dir, &t, &err), SG_OK, "outbox opened");
	IS(t->ops->done, "written", "done word");
	g_setenv("SG_NOW", "1795867200", TRUE);
	NUM(t->ops->send(t, "api@stock.example", rcpts, "A\r\n", 3, &err), SG_OK, "first report");
	NUM(t->ops->send(t, "api@stock.example", rcpts, "B\r\n", 3, &err), SG_OK, "second report");
	g_unsetenv("SG_NOW");
	t->ops->close(t); /* transport.c needs the SMTP driver to link */

	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;
	while (d && (name = g_dir_read_name(d)) != NULL) {
		g_autofree char *p = g_build_filename(dir, name, NULL);
		struct stat st;
		n++;
		OK(g_str_has_prefix(name, "1795867200-") && g_str_has_suffix(name, ".eml"),
		   "file name %s", name);
		OK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600");
		unlink(p);
	}
	if (d)
		g_dir_close(d);
	NUM(n, 2, "two files, no temp file left");
	rmdir(dir);
}

int main(void)
{
	g_mime_init();
	test_headers_and_csv();
	test_english_dev_and_injection();
	test_applied_and_extra();
	test_deterministic_id();
	test_dir_transport();
	return tap_done();
}
