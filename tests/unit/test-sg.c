/* test-sg.c: the result record: exit codes, settle rules, value truncation and the JSON line. */
#include <string.h>

#include "sg.h"
#include "tap.h"
#include "util.h"

static void test_exit_codes(void)
{
	static const struct { sg_status st; int code; } t[] = {
		{ SG_OK, 0 },	     { SG_EUSAGE, 64 },	   { SG_EDATA, 65 },
		{ SG_ENOINPUT, 66 }, { SG_EUNAVAIL, 69 },  { SG_EINTERNAL, 70 },
		{ SG_EIO, 74 },	     { SG_ETEMP, 75 },	   { SG_ECONFIG, 78 },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		NUM(sg_exit_code(t[i].st), t[i].code, "exit code of status %d", (int)t[i].st);
}

static void test_fail(void)
{
	char *err = NULL;

	NUM(sg_fail(&err, SG_EDATA, "x.csv:%d: bad", 3), SG_EDATA, "sg_fail returns the status");
	IS(err, "x.csv:3: bad", "sg_fail formats the message");
	sg_fail(&err, SG_EIO, "second");
	IS(err, "x.csv:3: bad", "sg_fail keeps the first message");
	g_free(err);
	NUM(sg_fail(NULL, SG_ETEMP, "nobody listens"), SG_ETEMP, "sg_fail with no err");
}

/* files: a string of 'a' (applied) and 'r' (rejected). */
static const char *settle(const char *preset, const char *reason, const char *files)
{
	g_autoptr(sg_result) r = sg_result_new("file:x.eml");
	r->outcome = preset;
	r->reason = reason;
	for (const char *p = files; *p; p++) {
		sg_file_result *fr = sg_file_result_new("f.csv");
		fr->applied = *p == 'a';
		if (!fr->applied)
			sg_file_reject(fr, "row_errors", NULL);
		g_ptr_array_add(r->files, fr);
	}
	sg_result_settle(r);
	return r->outcome;
}

static void test_settle(void)
{
	static const struct { const char *preset, *reason, *files, *want; } t[] = {
		{ NULL, NULL, "aa", "applied" },
		{ NULL, NULL, "ar", "partial" },
		{ NULL, NULL, "rra", "partial" },
		{ NULL, NULL, "rr", "failed" },
		{ NULL, NULL, "", "failed" },
		{ NULL, "unknown_method", "", "failed" },
		{ NULL, "no_attachments", "", "failed" },
		{ "rejected", "bad_key", "", "rejected" },
		{ "duplicate", NULL, "", "duplicate" },
		{ "deferred", "mirror_unavailable", "a", "deferred" },
		{ "failed", NULL, "aa", "applied" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		IS(settle(t[i].preset, t[i].reason, t[i].files), t[i].want,
		   "settle %s/%s/'%s'", t[i].preset ? t[i].preset : "-",
		   t[i].reason ? t[i].reason : "-", t[i].files);
}

static void test_truncation(void)
{
	g_autoptr(sg_file_result) fr = sg_file_result_new("a.csv");
	GString *longv = g_string_new(NULL);
	for (int i = 0; i < 150; i++)
		g_string_append(longv, "ж");
	sg_file_error(fr, 3, "Артикул", "field_too_long", longv->str, "too long");
	sg_file_warning(fr, 4, NULL, "not_in_catalog", longv->str);
	sg_issue *e = g_ptr_array_index(fr->errors, 0);
	sg_issue *w = g_ptr_array_index(fr->warnings, 0);
	NUM(g_utf8_strlen(e->value, -1), 100, "error value cut to 100 characters");
	NUM(g_utf8_strlen(w->value, -1), 100, "warning value cut to 100 characters");
	OK(g_str_has_suffix(e->value, "…"), "a cut value ends with an ellipsis");
	IS(e->column, "Артикул", "column copied");
	IS(e->message, "too long", "message formatted");
	OK(w->message == NULL, "warnings carry no message");
	g_string_free(longv, TRUE);

	sg_file_reject(fr, "bad_header", "found %s", "a, b");
	IS(fr->reason, "bad_header", "reject sets the reason");
	IS(fr->detail, "found a, b", "reject sets the detail");
	OK(!fr->applied, "reject clears applied");
}

static void test_json(void)
{
	g_autoptr(sg_result) r = sg_result_new("imap:INBOX/42");
	r->message_id = g_strdup("abc@x");
	r->from = g_strdup("dealer@shop.example");
	r->dealer = g_strdup("D1");
	r->method = g_strdup("remains");
	r->report = "written";

	sg_file_result *f1 = sg_file_result_new("ost \"1\".csv");
	f1->applied = true;
	f1->warehouse = g_strdup("W1");
	f1->encoding = "windows-1251";
	f1->delimiter = ';';
	f1->rows = 10, f1->added = 2, f1->updated = 3, f1->deleted = 1, f1->unchanged = 4,
	f1->skipped = 1;
	sg_file_warning(f1, 7, "Артикул", "not_in_catalog", "X-1");
	g_ptr_array_add(r->files, f1);

	sg_file_result *f2 = sg_file_result_new("b.csv");
	f2->encoding = "utf-8";
	f2->delimiter = '\t';
	f2->rows = 1;
	sg_file_error(f2, 5, "Остаток", "bad_quantity", "2,5", "'%s' is not a whole number", "2,5");
	sg_file_error(f2, 0, NULL, "wrong_column_count", NULL, NULL);
	sg_file_reject(f2, "row_errors", NULL);
	g_ptr_array_add(r->files, f2);

	sg_file_result *f3 = sg_file_result_new("winmail.dat");
	sg_file_reject(f3, "bad_mime_type", "application/ms-tnef");
	g_ptr_array_add(r->files, f3);

	sg_result_settle(r);
	g_autofree char *j = sg_result_to_json(r);
	IS(j,
	   "{\"source\":\"imap:INBOX/42\",\"message_id\":\"abc@x\",\"from\":\"dealer@shop.example\","
	   "\"dealer\":\"D1\",\"method\":\"remains\",\"dev_mode\":false,\"outcome\":\"partial\","
	   "\"reason\":null,\"files\":["
	   "{\"name\":\"ost \\\"1\\\".csv\",\"status\":\"applied\",\"reason\":null,"
	   "\"warehouse\":\"W1\",\"encoding\":\"windows-1251\",\"delimiter\":\";\",\"rows\":10,"
	   "\"added\":2,\"updated\":3,\"deleted\":1,\"unchanged\":4,\"skipped\":1,\"errors\":[],"
	   "\"warnings\":[{\"line\":7,\"code\":\"not_in_catalog\",\"value\":\"X-1\"}]},"
	   "{\"name\":\"b.csv\",\"status\":\"rejected\",\"reason\":\"row_errors\","
	   "\"warehouse\":null,\"encoding\":\"utf-8\",\"delimiter\":\"\\t\",\"rows\":1,"
	   "\"added\":0,\"updated\":0,\"deleted\":0,\"unchanged\":0,\"skipped\":0,\"errors\":["
	   "{\"line\":5,\"column\":\"Остаток\",\"code\":\"bad_quantity\","
	   "\"message\":\"'2,5' is not a whole number\",\"value\":\"2,5\"},"
	   "{\"line\":null,\"column\":null,\"code\":\"wrong_column_count\",\"message\":null,"
	   "\"value\":null}],\"warnings\":[]},"
	   "{\"name\":\"winmail.dat\",\"status\":\"rejected\",\"reason\":\"bad_mime_type\","
	   "\"warehouse\":null,\"encoding\":null,\"delimiter\":null,\"rows\":0,\"added\":0,"
	   "\"updated\":0,\"deleted\":0,\"unchanged\":0,\"skipped\":0,\"errors\":[],"
	   "\"warnings\":[]}],\"report\":\"written\"}",
	   "JSON line of a full record");

	g_autoptr(sg_result) e = sg_result_new("file:x.eml");
	e->reason = "unknown_method";
	e->dev_mode = true;
	sg_result_settle(e);
	g_autofree char *j2 = sg_result_to_json(e);
	IS(j2,
	   "{\"source\":\"file:x.eml\",\"message_id\":null,\"from\":null,\"dealer\":null,"
	   "\"method\":null,\"dev_mode\":true,\"outcome\":\"failed\",\"reason\":\"unknown_method\","
	   "\"files\":[],\"report\":\"none\"}",
	   "JSON line of an empty record");

	g_autoptr(sg_result) bad = sg_result_new("file:\xff.eml");
	bad->outcome = "failed";
	g_autofree char *j3 = sg_result_to_json(bad);
	OK(g_utf8_validate(j3, -1, NULL), "invalid UTF-8 never reaches the JSON line");
}

int main(void)
{
	test_exit_codes();
	test_fail();
	test_settle();
	test_truncation();
	test_json();
	return tap_done();
}
