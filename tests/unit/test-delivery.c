/* test-delivery.c: the VIN service's deliveries in every form, and the malformed ones, read by delivery.c. */
#include <string.h>

#include "delivery.h"
#include "tap.h"

#define MP "multipart/form-data; boundary=b"
#define PDF "%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n"

static const struct {
	const char *what, *ctype, *query, *body;
	/* want: reason (NULL: parsed), then id, vin, status, url, failed, file ext */
	const char *reason, *id, *vin, *status, *url;
	bool failed;
	const char *ext;
} cases[] = {
	{ "JSON", "application/json", NULL,
	  "{\"id\":12,\"vin\":\"wba5r1c53la123456\",\"status\":\"ok\",\"url\":\"https://r/1.pdf\"}",
	  NULL, "12", "WBA5R1C53LA123456", "ok", "https://r/1.pdf", false, NULL },
	{ "JSON with a charset", "Application/JSON; charset=utf-8", NULL, "{\"uid\":\"7\",\"link\":\"u\"}",
	  NULL, "7", NULL, NULL, "u", false, NULL },
	{ "form", "application/x-www-form-urlencoded", NULL,
	  "order_uiid=5&status=done&report_url=https%3A%2F%2Fr%2F5.pdf", NULL, "5", NULL, "done",
	  "https://r/5.pdf", false, NULL },
	{ "nested data", "application/json", NULL,
	  "{\"ok\":true,\"data\":{\"order_uuid\":\"9\",\"status\":\"ready\"}}", NULL, "9", NULL,
	  "ready", NULL, false, NULL },
	{ "data as a JSON string", "application/json", NULL,
	  "{\"data\":\"{\\\"id\\\":\\\"3\\\",\\\"status\\\":\\\"error\\\"}\"}", NULL, "3", NULL,
	  "error", NULL, true, NULL },
	{ "data as a JSON string in a form", "application/x-www-form-urlencoded", NULL,
	  "data=%7B%22id%22%3A%224%22%7D", NULL, "4", NULL, NULL, NULL, false, NULL },
	{ "GET with a query", NULL, "id=8&vin=WBA5R1C53LA123456&status=failed", "", NULL, "8",
	  "WBA5R1C53LA123456", "failed", NULL, true, NULL },
	{ "an error field fails the report", "application/json", NULL,
	  "{\"id\":1,\"error\":\"Отчёт не найден\"}", NULL, "1", NULL, NULL, NULL, true, NULL },
	{ "error false is no error", "application/json", NULL, "{\"id\":1,\"error\":false}", NULL,
	  "1", NULL, NULL, NULL, false, NULL },
	{ "multipart with a PDF named ../../etc/passwd", MP, NULL,
	  "--b\r\nContent-Disposition: form-data; name=\"uid\"\r\n\r\n21\r\n"
	  "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../etc/passwd\"\r\n"
	  "Content-Type: application/octet-stream\r\n\r\n" PDF "\r\n--b--\r\n",
	  NULL, "21", NULL, NULL, NULL, false, "pdf" },
	{ "multipart with an HTML report, LF only", MP, NULL,
	  "preamble\n--b\nContent-Disposition: form-data; name=\"id\"\n\n22\n"
	  "--b\nContent-Disposition: form-data; name=\"report\"; filename=\"r.html\"\n\n"
	  "<!DOCTYPE html><html><body>r</body></html>\n--b--\n",
	  NULL, "22", NULL, NULL, NULL, false, "html" },
	{ "multipart, quoted boundary", "multipart/form-data; boundary=\"x y\"", NULL,
	  "--x y\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n23\r\n--x y--",
	  NULL, "23", NULL, NULL, NULL, false, NULL },
	{ "multipart without its closing boundary", MP, NULL,
	  "--b\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n1", "bad_multipart" },
	{ "multipart without a boundary", "multipart/form-data", NULL, "--b\r\n\r\n1\r\n--b--",
	  "bad_multipart" },
	{ "multipart whose headers never end", MP, NULL, "--b\r\nContent-Disposition: x",
	  "bad_multipart" },
	{ "multipart with a file neither PDF nor HTML", MP, NULL,
	  "--b\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n1\r\n"
	  "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.exe\"\r\n\r\nMZ\x90\r\n--b--",
	  "bad_report_file" },
	{ "broken JSON", "application/json", NULL, "{\"id\":", "bad_json" },
	{ "JSON that is not an object", "application/json", NULL, "[1,2]", "bad_json" },
	{ "a form with a bad escape", "application/x-www-form-urlencoded", NULL, "id=%zz",
	  "bad_form" },
	{ "an XML body", "application/xml", NULL, "<id>1</id>", "unsupported_type" },
	{ "no id and no vin", "application/json", NULL, "{\"status\":\"ok\"}", "no_id" },
	{ "data nested too deep", "application/json", NULL,
	  "{\"data\":{\"data\":{\"data\":{\"data\":{\"id\":1}}}}}", "bad_json" },
	{ "untyped body that looks like JSON", NULL, NULL, " {\"id\":\"31\"}", NULL, "31" },
};

int main(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		sg_delivery d;
		const char *reason = NULL;
		g_autofree char *err = NULL;
		sg_status st = sg_delivery_parse(cases[i].ctype, cases[i].query, cases[i].body,
						 strlen(cases[i].body), &d, &reason, &err);

		IS(reason, cases[i].reason, "%s: reason", cases[i].what);
		if (cases[i].reason) {
			NUM(st, SG_EDATA, "%s: SG_EDATA", cases[i].what);
			OK(err && strstr(err, cases[i].reason) == err, "%s: the error names it: %s",
			   cases[i].what, err ? err : "(null)");
			continue;
		}
		IS(d.id, cases[i].id, "%s: id", cases[i].what);
		IS(d.vin, cases[i].vin, "%s: vin", cases[i].what);
		IS(d.status, cases[i].status, "%s: status", cases[i].what);
		IS(d.url, cases[i].url, "%s: url", cases[i].what);
		NUM(d.failed, cases[i].failed, "%s: failed", cases[i].what);
		IS(d.file_ext, cases[i].ext, "%s: file type", cases[i].what);
		if (cases[i].ext && strcmp(cases[i].ext, "pdf") == 0)
			OK(d.file_len == strlen(PDF) && memcmp(d.file, PDF, d.file_len) == 0,
			   "%s: the file is the part's bytes, without the line break", cases[i].what);
		sg_delivery_clear(&d);
	}
	return tap_done();
}
