/* test-util.c: durations, sizes, trimming, truncation, file names, hashes, atomic writes. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "util.h"

static void test_duration(void)
{
	static const struct { const char *in; gint64 want; } t[] = {
		{ "90", 90 },	  { "30s", 30 },     { "15m", 900 },   { "24h", 86400 },
		{ "7d", 604800 }, { "0", 0 },	     { "1H", 3600 },   { "", -1 },
		{ "m", -1 },	  { "-5", -1 },	     { "5x", -1 },     { "5mm", -1 },
		{ " 5", -1 },	  { "99999999999999999999", -1 },     { "9999999999999999d", -1 },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		NUM(sg_parse_duration(t[i].in), t[i].want, "duration '%s'", t[i].in);
	NUM(sg_parse_duration(NULL), -1, "duration NULL");
}

static void test_size(void)
{
	static const struct { const char *in; gint64 want; } t[] = {
		{ "1000", 1000 },	  { "64K", 65536 }, { "25M", 26214400 }, { "1G", 1073741824 },
		{ "25m", 26214400 },	  { "", -1 },	    { "M", -1 },	 { "1.5M", -1 },
		{ "10T", -1 },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		NUM(sg_parse_size(t[i].in), t[i].want, "size '%s'", t[i].in);
}

static void test_trim(void)
{
	static const struct { const char *in, *want; } t[] = {
		{ "  a b  ", "a b" },
		{ "\xc2\xa0" "12" "\xc2\xa0", "12" },
		{ "\xe2\x80\xaf" "5\xe2\x80\xaf" "000 \t", "5\xe2\x80\xaf" "000" },
		{ "\xef\xbb\xbf" "code", "code" },
		{ "\xe2\x80\x87x\xe2\x80\x87", "x" },
		{ " \r\n", "" },
		{ "", "" },
		{ "ж", "ж" },
		{ "Код склада ", "Код склада" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		char *s = g_strdup(t[i].in);
		IS(sg_trim(s), t[i].want, "trim #%zu", i);
		g_free(s);
	}
}

static void test_truncate(void)
{
	g_autofree char *a = sg_truncate("abcdef", 6);
	g_autofree char *b = sg_truncate("abcdefg", 6);
	g_autofree char *c = sg_truncate("жжжжжжжж", 4);
	IS(a, "abcdef", "not cut at the limit");
	IS(b, "abcde…", "cut to the limit with an ellipsis");
	IS(c, "жжж…", "cut by characters, not bytes");
	OK(sg_truncate(NULL, 5) == NULL, "NULL stays NULL");
}

static void test_sanitize(void)
{
	static const struct { const char *in, *want; } t[] = {
		{ "../../etc/x.csv", "x.csv" },
		{ "a\\b.csv", "b.csv" },
		{ "C:\\Users\\me\\остатки.csv", "остатки.csv" },
		{ "invoice\xe2\x80\xae" "vsc.exe", "invoicevsc.exe" },
		{ "a\xe2\x81\xa6" "b\xe2\x80\x8f.csv", "ab.csv" },
		{ "x.csv\r\nBcc: evil@example.com", "x.csvBcc: evil@example.com" },
		{ "tab\there.csv", "tabhere.csv" },
		{ "del\x7f.csv", "del.csv" },
		{ "c1\xc2\x85.csv", "c1.csv" },
		{ "", "attachment" },
		{ "dir/", "attachment" },
		{ "...", "attachment" },
		{ " . .hidden.csv", "hidden.csv" },
		{ "bad\xff.csv", "bad\xef\xbf\xbd.csv" },
		{ "plain.csv", "plain.csv" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		g_autofree char *s = sg_sanitize_filename(t[i].in);
		IS(s, t[i].want, "sanitize #%zu", i);
	}
	g_autofree char *n = sg_sanitize_filename(NULL);
	IS(n, "attachment", "sanitize NULL");

	GString *lng = g_string_new(NULL);
	for (int i = 0; i < 300; i++)
		g_string_append(lng, "ы");
	g_string_append(lng, ".csv");
	g_autofree char *l = sg_sanitize_filename(lng->str);
	NUM(g_utf8_strlen(l, -1), 100, "long name cut to 100 characters");
	OK(g_str_has_suffix(l, "….csv"), "long name keeps its extension");
	g_string_free(lng, TRUE);
}

static void test_hash_and_time(void)
{
	g_autofree char *h = sg_sha256_hex("abc", 3);
	IS(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256 of abc");
	OK(sg_secure_equal("abc", "abc"), "equal strings");
	OK(!sg_secure_equal("abc", "abd"), "different strings");
	OK(!sg_secure_equal("abc", "ab"), "different lengths");
	OK(!sg_secure_equal(NULL, "ab"), "NULL");

	g_setenv("SG_NOW", "1795867200", TRUE);
	NUM(sg_now(), 1795867200, "SG_NOW fixes the clock");
	g_autofree char *iso = sg_iso_time(sg_now());
	IS(iso, "2026-11-28T12:00:00Z", "ISO time");
	g_setenv("SG_NOW", "garbage", TRUE);
	OK(sg_now() > 1700000000, "a malformed SG_NOW is ignored");
	g_unsetenv("SG_NOW");
}

static void test_atomic(void)
{
	char tmpl[] = "/tmp/sg-util-XXXXXX";
	char *dir = g_mkdtemp(tmpl);
	g_autofree char *path = g_build_filename(dir, "out.txt", NULL);
	g_autofree char *hash = NULL;
	char *err = NULL, *got = NULL;
	struct stat st;

	OK(sg_write_atomic(path, "hello", 5, 0600, &err), "atomic write");
	OK(g_file_get_contents(path, &got, NULL, NULL) && strcmp(got, "hello") == 0, "content");
	OK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600");
	hash = sg_sha256_file(path);
	IS(hash, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "sha256 of a file");
	OK(sg_sha256_file("/nonexistent/x") == NULL, "sha256 of a missing file");
	OK(sg_write_atomic(path, "bye", 3, 0644, &err), "atomic overwrite");
	g_free(got);
	OK(g_file_get_contents(path, &got, NULL, NULL) && strcmp(got, "bye") == 0, "new content");
	g_free(got);
	OK(!sg_write_atomic("/nonexistent/dir/x", "a", 1, 0600, &err) && err != NULL,
	   "missing directory fails with a message");
	g_free(err);
	unlink(path);
	GDir *d = g_dir_open(dir, 0, NULL);
	OK(d && g_dir_read_name(d) == NULL, "no temp file left behind");
	if (d)
		g_dir_close(d);
	rmdir(dir);
}

int main(void)
{
	test_duration();
	test_size();
	test_trim();
	test_truncate();
	test_sanitize();
	test_hash_and_time();
	test_atomic();
	return tap_done();
}
