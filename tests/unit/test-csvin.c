/* test-csvin.c: table-driven tests of the CSV reader (encodings, delimiters, lines, errors) and
 * writer. */
#include <glib/gstdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "csvin.h"
#include "tap.h"

static char *tmpdir;

/* The header matcher the tests use: a record naming the warehouse code column. */
static bool is_header(void *ctx, char **cells, size_t n)
{
	int *calls = ctx;

	(*calls)++;
	for (size_t i = 0; i < n; i++) {
		g_autofree char *k = sg_csv_header_key(cells[i]);

		if (strcmp(k, "код склада") == 0 || strcmp(k, "code") == 0)
			return true;
	}
	return false;
}

typedef struct {
	int header_calls;
	GString *rows;
	int stop_after;
} collect;

static bool is_header_c(void *ctx, char **cells, size_t n)
{
	collect *c = ctx;

	return is_header(&c->header_calls, cells, n);
}

/* Rows as "LINE:cell|cell\n", so one string compares a whole file. */
static int row_c(void *ctx, long line, char **cells, size_t n)
{
	collect *c = ctx;

	g_string_append_printf(c->rows, "%ld:", line);
	for (size_t i = 0; i < n; i++)
		g_string_append_printf(c->rows, "%s%s", i ? "|" : "", cells[i]);
	g_string_append_c(c->rows, '\n');
	return c->stop_after && --c->stop_after == 0;
}

static char *write_file(const char *name, const char *data, size_t len)
{
	char *path = g_build_filename(tmpdir, name, NULL);
	GError *e = NULL;

	if (!g_file_set_contents(path, data, (gssize)len, &e)) {
		printf("# cannot write %s: %s\n", path, e->message);
		exit(1);
	}
	return path;
}

/* UTF-8 text to UTF-16 bytes with a BOM (le or be). */
static char *utf16(const char *s, bool le, size_t *len)
{
	gsize w = 0;
	char *body = g_convert(s, -1, le ? "UTF-16LE" : "UTF-16BE", "UTF-8", NULL, &w, NULL);
	char *out = g_malloc(w + 2);

	memcpy(out, le ? "\xFF\xFE" : "\xFE\xFF", 2);
	memcpy(out + 2, body, w);
	g_free(body);
	*len = w + 2;
	return out;
}

static char *conv(const char *s, const char *to, size_t *len)
{
	gsize w = 0;
	char *out = g_convert(s, -1, to, "UTF-8", NULL, &w, NULL);

	*len = w;
	return out;
}

typedef enum { RAW, CP1251, KOI8R, U16LE, U16BE } form;

typedef struct {
	const char *name;
	form form; /* how the text below is turned into the file's bytes */
	const char *text;
	size_t len; /* for RAW with NULs: the byte count, else 0 */
	const char *label;
	size_t cap;
	sg_status st;
	const char *reason;
	const char *encoding;
	char delim;
	long header_line, title_rows;
	const char *rows;
	const char *detail; /* a substring of info.detail, or NULL */
	long error_line;
} read_case;

#define H "Код склада;Артикул;Остаток\r\n"

static const read_case reads[] = {
    {"cp1251 no label", CP1251, H "D1;A-1;5\r\nD1;Ёлка;7\r\n", 0, NULL, 0, SG_OK, NULL,
     "windows-1251", ';', 1, 0, "2:D1|A-1|5\n3:D1|Ёлка|7\n"},
    {"utf-8 no bom", RAW, "Код склада;Артикул;Остаток\nD1;Арт;1\n", 0, NULL, 0, SG_OK, NULL,
     "utf-8", ';', 1, 0, "2:D1|Арт|1\n"},
    {"utf-8 bom", RAW,
     "\xEF\xBB\xBF"
     "Код склада;Артикул\nD1;A\n",
     0, NULL, 0, SG_OK, NULL, "utf-8", ';', 1, 0, "2:D1|A\n"},
    {"utf-8 bom, invalid bytes", RAW,
     "\xEF\xBB\xBF"
     "code,a\nD1,\xC0\xAF\n",
     0, NULL, 0, SG_EDATA, "bad_encoding", "utf-8", 0, 0, 0, "", "not UTF-8"},
    {"utf-16le bom tab (Excel unicode text)", U16LE,
     "Код склада\tАртикул\tОстаток\r\nD1\tА 1\t3\r\n", 0, NULL, 0, SG_OK, NULL, "utf-16le", '\t', 1,
     0, "2:D1|А 1|3\n"},
    {"utf-16be bom", U16BE, "code;article\r\nD1;𝔸\r\n", 0, NULL, 0, SG_OK, NULL, "utf-16be", ';', 1,
     0, "2:D1|𝔸\n"},
    {"utf-16le odd length", RAW,
     "\xFF\xFE"
     "c\0o\0d\0e\0\n",
     11, NULL, 0, SG_EDATA, "bad_encoding", "utf-16le", 0, 0, 0, "", NULL},
    {"utf-16le unpaired surrogate", RAW,
     "\xFF\xFE"
     "c\0o\0d\0e\0\n\0\x00\xD8"
     "a\0",
     16, NULL, 0, SG_EDATA, "bad_encoding", "utf-16le", 0, 0, 0, "", NULL},
    {"utf-16le NUL char", RAW,
     "\xFF\xFE"
     "c\0o\0d\0e\0\n\0\0\0",
     14, NULL, 0, SG_EDATA, "bad_encoding", "utf-16le", 0, 0, 0, "", "NUL"},
    {"utf-8 label on cp1251 bytes", CP1251, H "D1;Щётка;2\r\n", 0, "utf-8", 0, SG_OK, NULL,
     "windows-1251", ';', 1, 0, "2:D1|Щётка|2\n"},
    {"koi8-r label", KOI8R, H "D1;Щётка;2\r\n", 0, "KOI8-R", 0, SG_OK, NULL, "koi8-r", ';', 1, 0,
     "2:D1|Щётка|2\n"},
    {"unknown label falls to cp1251", CP1251, H "D1;Щётка;2\r\n", 0, "x-no-such", 0, SG_OK, NULL,
     "windows-1251", ';', 1, 0, "2:D1|Щётка|2\n"},
    {"valid utf-8 beats a cp1251 label", RAW, "code;a\nD1;Ж\n", 0, "windows-1251", 0, SG_OK, NULL,
     "utf-8", ';', 1, 0, "2:D1|Ж\n"},
    {"ascii is utf-8", RAW, "code,a\nD1,x\n", 0, "koi8-r", 0, SG_OK, NULL, "utf-8", ',', 1, 0,
     "2:D1|x\n"},
    {"NUL in 8-bit text", RAW, "code;a\nD1;\xC0\0x\n", 12, NULL, 0, SG_EDATA, "bad_encoding",
     "windows-1251", 0, 0, 0, "", "NUL"},
    {"NUL in ascii", RAW, "code;a\nD1;\0x\n", 11, NULL, 0, SG_EDATA, "bad_encoding", "windows-1251",
     0, 0, 0, "", "NUL"},
    {"cp1251 hole 0x98", RAW, "code;a\nD1;\x98\n", 0, NULL, 0, SG_EDATA, "bad_encoding",
     "windows-1251", 0, 0, 0, "", "0x98"},
    {"xlsx", RAW, "PK\x03\x04rest", 0, NULL, 0, SG_EDATA, "not_csv", NULL, 0, 0, 0, "", "xlsx"},
    {"xls", RAW, "\xD0\xCF\x11\xE0\xA1\xB1", 0, NULL, 0, SG_EDATA, "not_csv", NULL, 0, 0, 0, "",
     "xls"},
    {"comma", RAW, "code,article,quantity\nD1,A,1\n", 0, NULL, 0, SG_OK, NULL, "utf-8", ',', 1, 0,
     "2:D1|A|1\n"},
    {"tab", RAW, "code\tarticle\nD1\t A \n", 0, NULL, 0, SG_OK, NULL, "utf-8", '\t', 1, 0,
     "2:D1|A\n"},
    {"tab: empty cells kept", RAW, "code\tarticle\tq\nD1\t\t5\n", 0, NULL, 0, SG_OK, NULL, "utf-8",
     '\t', 1, 0, "2:D1||5\n"},
    {"pipe", RAW, "code|article\nD1|A;B,C\n", 0, NULL, 0, SG_OK, NULL, "utf-8", '|', 1, 0,
     "2:D1|A;B,C\n"},
    {"semicolon wins over comma", RAW, "code;addr\nD1;a, b\n", 0, NULL, 0, SG_OK, NULL, "utf-8",
     ';', 1, 0, "2:D1|a, b\n"},
    {"quoted ; and newline; lines after", RAW,
     "code;address;contacts\r\nD1;\"г. Курск; ул. Ленина\";\"Иван\r\n+7 900\"\r\nD2;b;c\r\n", 0,
     NULL, 0, SG_OK, NULL, "utf-8", ';', 1, 0,
     "2:D1|г. Курск; ул. Ленина|Иван\r\n+7 900\n3:D2|b|c\n"},
    {"quoted quotes", RAW, "code;name\nD1;\"ООО \"\"Ромашка\"\"\"\n", 0, NULL, 0, SG_OK, NULL,
     "utf-8", ';', 1, 0, "2:D1|ООО \"Ромашка\"\n"},
    {"LF", RAW, "code;a\nD1;1\nD2;2\n", 0, NULL, 0, SG_OK, NULL, "utf-8", ';', 1, 0,
     "2:D1|1\n3:D2|2\n"},
    {"lone CR", RAW, "code;a\rD1;1\r\rD2;2\r", 0, NULL, 0, SG_OK, NULL, "utf-8", ';', 1, 0,
     "2:D1|1\n4:D2|2\n"},
    {"CRLF blank lines counted", RAW, "code;a\r\n\r\nD1;1\r\n;;\r\n  \r\nD2;2\r\n\r\n", 0, NULL, 0,
     SG_OK, NULL, "utf-8", ';', 1, 0, "3:D1|1\n6:D2|2\n"},
    {"mixed line ends", RAW, "code;a\r\nD1;1\nD2;2\rD3;3\r\n", 0, NULL, 0, SG_OK, NULL, "utf-8",
     ';', 1, 0, "2:D1|1\n3:D2|2\n4:D3|3\n"},
    {"title rows", CP1251, "Остатки на 01.03.2025;;\r\n\r\nООО Ромашка\r\n" H "D1;A;1\r\n", 0, NULL,
     0, SG_OK, NULL, "windows-1251", ';', 4, 2, "5:D1|A|1\n"},
    {"header on row 11", RAW, "t1\nt2\nt3\nt4\nt5\nt6\nt7\nt8\nt9\nt10\ncode;a\nD1;1\n", 0, NULL, 0,
     SG_EDATA, "bad_header", "utf-8", 0, 0, 0, "", "t1"},
    {"header on row 10 after a blank", RAW, "t1\n\nt2\nt3\nt4\nt5\nt6\nt7\nt8\nt9\ncode;a\nD1;1\n",
     0, NULL, 0, SG_OK, NULL, "utf-8", ';', 11, 9, "12:D1|1\n"},
    {"bad header detail split widest", RAW, "Склад,Артикул,Кол-во,\nD1,A,1\n", 0, NULL, 0, SG_EDATA,
     "bad_header", "utf-8", 0, 0, 0, "", "Склад, Артикул, Кол-во"},
    {"unterminated quote", RAW, "code;a\nD1;1\nD2;\"abc\nD3;3\n", 0, NULL, 0, SG_EDATA,
     "malformed_csv", "utf-8", ';', 1, 0, "2:D1|1\n", "unterminated quote starting at line 3", 3},
    {"stray quote (strict)", RAW, "code;a\nD1;\"ab\"c\n", 0, NULL, 0, SG_EDATA, "malformed_csv",
     "utf-8", ';', 1, 0, "", "quote", 2},
    {"last row without newline", RAW, "code;a\r\nD1;1\r\nD2;2", 0, NULL, 0, SG_OK, NULL, "utf-8",
     ';', 1, 0, "2:D1|1\n3:D2|2\n"},
    {"last quoted row without newline", RAW, "code;a\nD1;\"x\"", 0, NULL, 0, SG_OK, NULL, "utf-8",
     ';', 1, 0, "2:D1|x\n"},
    {"NBSP and narrow NBSP trimmed", CP1251,
     "code;qty\r\n\xC2\xA0"
     "D1\xC2\xA0;\t1 000 \r\n",
     0, NULL, 0, SG_OK, NULL, "windows-1251", ';', 1, 0, "2:D1|1 000\n"},
    {"U+202F and U+FEFF trimmed", RAW,
     "code;q\nD1\xE2\x80\xAF;\xEF\xBB\xBF"
     "5\n",
     0, NULL, 0, SG_OK, NULL, "utf-8", ';', 1, 0, "2:D1|5\n"},
    {"Excel trailing ;;", RAW, "code;a;\nD1;1;;\n;;\n", 0, NULL, 0, SG_OK, NULL, "utf-8", ';', 1, 0,
     "2:D1|1||\n"},
    {"cell over cap", RAW, "code;a\nD1;0123456789abcdef\n", 0, NULL, 8, SG_EDATA, "malformed_csv",
     "utf-8", ';', 1, 0, "", "longer than 8 bytes", 2},
    {"cell at cap", RAW, "code;a\nD1;01234567\n", 0, NULL, 8, SG_OK, NULL, "utf-8", ';', 1, 0,
     "2:D1|01234567\n"},
    {"empty file", RAW, "", 0, NULL, 0, SG_EDATA, "bad_header", "utf-8", 0, 0, 0, "", ""},
    {"header only", RAW, "code;a\n", 0, NULL, 0, SG_OK, NULL, "utf-8", ';', 1, 0, ""},
};

static void run_read(const read_case *c)
{
	g_autofree char *bytes = NULL, *path = NULL, *err = NULL;
	size_t len = 0;
	collect col = {0, g_string_new(NULL), 0};
	sg_csv_opts opts = {c->label, c->cap, is_header_c, row_c, &col};
	sg_csv_info info;
	sg_status st;

	switch (c->form) {
	case RAW:
		len = c->len ? c->len : strlen(c->text);
		bytes = g_memdup2(c->text, len);
		break;
	case CP1251:
		bytes = conv(c->text, "WINDOWS-1251", &len);
		break;
	case KOI8R:
		bytes = conv(c->text, "KOI8-R", &len);
		break;
	case U16LE:
	case U16BE:
		bytes = utf16(c->text, c->form == U16LE, &len);
		break;
	}
	path = write_file("in.csv", bytes, len);
	/* the same verdict from the file and from the bytes in memory (an attachment) */
	for (int mem = 0; mem < 2; mem++) {
		const char *src = mem ? "mem" : "file";

		g_string_truncate(col.rows, 0);
		g_clear_pointer(&err, g_free);
		st = mem ? sg_csv_read_mem("in.csv", bytes, len, &opts, &info, &err)
			 : sg_csv_read(path, &opts, &info, &err);
		NUM(st, c->st, "%s (%s): status", c->name, src);
		IS(info.reason, c->reason, "%s (%s): reason", c->name, src);
		if (c->encoding)
			IS(info.encoding, c->encoding, "%s (%s): encoding", c->name, src);
		NUM(info.delimiter, c->delim, "%s (%s): delimiter", c->name, src);
		NUM(info.header_line, c->header_line, "%s (%s): header line", c->name, src);
		NUM(info.title_rows, c->title_rows, "%s (%s): title rows", c->name, src);
		IS(col.rows->str, c->rows, "%s (%s): rows", c->name, src);
		if (c->detail)
			OK(info.detail && strstr(info.detail, c->detail),
			   "%s (%s): detail '%s' has '%s'", c->name, src,
			   info.detail ? info.detail : "(null)", c->detail);
		NUM(info.error_line, c->error_line, "%s (%s): error line", c->name, src);
		if (c->st != SG_OK)
			OK(err != NULL && g_str_has_prefix(err, "in.csv: "),
			   "%s (%s): err names the file (%s)", c->name, src, err ? err : "");
		sg_csv_info_clear(&info);
	}
	g_string_free(col.rows, TRUE);
}

static void test_header_cells(void)
{
	g_autofree char *path = NULL;
	collect col = {0, g_string_new(NULL), 0};
	sg_csv_opts opts = {NULL, 0, is_header_c, row_c, &col};
	sg_csv_info info;
	const char *text = "\xEF\xBB\xBF Код склада: ;Артикул;Остаток;\nD1;A;1\nD1;B;2\nD1;C;3\n";

	path = write_file("h.csv", text, strlen(text));
	NUM(sg_csv_read(path, &opts, &info, NULL), SG_OK, "header cells: read");
	NUM(info.header_n, 4, "header cells: n as parsed");
	IS(info.header[0], "Код склада:", "header cells: written, trimmed, BOM gone");
	OK(info.bom, "header cells: bom flagged");
	NUM(info.records, 3, "header cells: records");
	sg_csv_info_clear(&info);

	/* Stopping after the second row. */
	g_string_truncate(col.rows, 0);
	col.stop_after = 2;
	NUM(sg_csv_read(path, &opts, &info, NULL), SG_OK, "stop: read");
	OK(info.stopped, "stop: stopped set");
	IS(col.rows->str, "2:D1|A|1\n3:D1|B|2\n", "stop: two rows");
	sg_csv_info_clear(&info);
	g_string_free(col.rows, TRUE);

	/* A missing file. */
	g_autofree char *err = NULL;
	NUM(sg_csv_read("/nonexistent/x.csv", &opts, &info, &err), SG_ENOINPUT, "missing file");
	sg_csv_info_clear(&info);
}

/* A file larger than the sniffed start, with a cell split across reads, and a huge cell. */
static void test_large(void)
{
	GString *s = g_string_new("Код склада;Артикул;Остаток\r\n");
	g_autofree char *path = NULL, *bytes = NULL, *err = NULL;
	collect col = {0, g_string_new(NULL), 0};
	sg_csv_opts opts = {NULL, 0, is_header_c, row_c, &col};
	sg_csv_info info;
	size_t len;
	char want[64];

	for (int i = 0; i < 100000; i++)
		g_string_append_printf(s, "Склад1;Артикул-%06d;%d\r\n", i, i % 97);
	bytes = conv(s->str, "WINDOWS-1251", &len);
	path = write_file("big.csv", bytes, len);
	NUM(sg_csv_read(path, &opts, &info, &err), SG_OK, "large cp1251: read (%s)",
	    err ? err : "");
	NUM(info.records, 100000, "large cp1251: records");
	snprintf(want, sizeof(want), "100001:Склад1|Артикул-099999|%d\n", 99999 % 97);
	OK(g_str_has_suffix(col.rows->str, want), "large cp1251: last row and line");
	sg_csv_info_clear(&info);

	/* From memory, the same rows. */
	{
		g_autoptr(GString) file_rows = g_string_new(col.rows->str);
		g_string_truncate(col.rows, 0);
		NUM(sg_csv_read_mem("big.csv", bytes, len, &opts, &info, NULL), SG_OK,
		    "large cp1251 in memory: read");
		NUM(info.records, 100000, "large cp1251 in memory: records");
		OK(strcmp(file_rows->str, col.rows->str) == 0, "large cp1251 in memory: same rows");
		sg_csv_info_clear(&info);
	}
	g_free(g_steal_pointer(&path));
	g_free(g_steal_pointer(&bytes));

	/* The same as UTF-8: characters straddle the 64 KiB reads. */
	g_string_truncate(col.rows, 0);
	path = write_file("big8.csv", s->str, s->len);
	NUM(sg_csv_read(path, &opts, &info, NULL), SG_OK, "large utf-8: read");
	IS(info.encoding, "utf-8", "large utf-8: encoding");
	NUM(info.records, 100000, "large utf-8: records");
	sg_csv_info_clear(&info);
	g_free(g_steal_pointer(&path));

	/* And as UTF-16LE. */
	g_string_truncate(col.rows, 0);
	bytes = utf16(s->str, true, &len);
	path = write_file("big16.csv", bytes, len);
	NUM(sg_csv_read(path, &opts, &info, NULL), SG_OK, "large utf-16le: read");
	NUM(info.records, 100000, "large utf-16le: records");
	OK(g_str_has_suffix(col.rows->str, want), "large utf-16le: last row");
	sg_csv_info_clear(&info);
	g_free(g_steal_pointer(&path));

	/* A 3 MiB unterminated quoted cell stops at the 1 MiB default cap. */
	g_string_assign(s, "code;a\nD1;\"");
	for (int i = 0; i < 3 * 1024 * 1024 / 16; i++)
		g_string_append(s, "0123456789abcdef");
	path = write_file("huge.csv", s->str, s->len);
	g_string_truncate(col.rows, 0);
	NUM(sg_csv_read(path, &opts, &info, NULL), SG_EDATA, "huge cell: refused");
	IS(info.reason, "malformed_csv", "huge cell: reason");
	NUM(info.error_line, 2, "huge cell: line");
	sg_csv_info_clear(&info);

	/* 20,000 cells in one record. */
	g_string_assign(s, "code;a\n");
	for (int i = 0; i < 20000; i++)
		g_string_append(s, "x;");
	g_string_append(s, "\n");
	g_free(path);
	path = write_file("wide.csv", s->str, s->len);
	NUM(sg_csv_read(path, &opts, &info, NULL), SG_EDATA, "too many cells: refused");
	IS(info.reason, "malformed_csv", "too many cells: reason");
	sg_csv_info_clear(&info);

	g_string_free(col.rows, TRUE);
	g_string_free(s, TRUE);
}

static void test_header_key(void)
{
	static const struct {
		const char *in, *want;
	} keys[] = {
	    {"Код склада:", "код склада"},
	    {"ОСТАТОК", "остаток"},
	    {"Ёмкость", "емкость"},
	    {" Artikul ", "artikul"},
	    {"\xC2\xA0Код\xC2\xA0 склада :", "код склада"},
	    {"Code", "code"},
	    {"е\xCC\x88ж", "еж"}, /* a decomposed ё */
	    {"", ""},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
		g_autofree char *k = sg_csv_header_key(keys[i].in);

		IS(k, keys[i].want, "header_key '%s'", keys[i].in);
	}
	NUM(sg_csv_cell_chars("Ёлка"), 4, "cell_chars counts characters");
	NUM(sg_csv_cell_chars(""), 0, "cell_chars empty");
}

static char *write_rows(const char *enc, char delim, bool bom, bool guard, const char *eol,
			const char *const *cells, size_t n, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	sg_csv_writer *w = sg_csv_writer_new(f, enc, delim, bom, guard, eol);

	sg_csv_write_row(w, cells, n);
	OK(sg_csv_writer_close(w), "writer %s: close", enc);
	fclose(f);
	*len = sz;
	return buf;
}

static void test_writer(void)
{
	static const struct {
		const char *cell;
		bool guard;
		const char *want;
	} q[] = {
	    {"plain", false, "plain"},
	    {"a;b", false, "\"a;b\""},
	    {"say \"hi\"", false, "\"say \"\"hi\"\"\""},
	    {"two\nlines", false, "\"two\nlines\""},
	    {"cr\rx", false, "\"cr\rx\""},
	    {" lead", false, "\" lead\""},
	    {"trail ", false, "\"trail \""},
	    {"a,b", false, "a,b"},
	    {"", false, ""},
	    {"=SUM(A1)", true, "\"'=SUM(A1)\""},
	    {"+1", true, "\"'+1\""},
	    {"-1", true, "\"'-1\""},
	    {"@x", true, "\"'@x\""},
	    {"\t=1", true, "\"'\t=1\""},
	    {"\r=1", true, "\"'\r=1\""},
	    {"=1", false, "=1"},
	    {"ok", true, "ok"},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(q); i++) {
		const char *cells[] = {q[i].cell, "z"};
		size_t len;
		g_autofree char *got =
		    write_rows("utf-8", ';', false, q[i].guard, "\n", cells, 2, &len);
		g_autofree char *want = g_strdup_printf("%s;z\n", q[i].want);

		IS(got, want, "writer quotes '%s'%s", q[i].cell, q[i].guard ? " (guard)" : "");
	}

	/* BOM and CRLF; NULL cells empty. */
	{
		const char *cells[] = {"a", NULL, "b"};
		size_t len;
		g_autofree char *got =
		    write_rows("utf-8", ';', true, false, "\r\n", cells, 3, &len);

		IS(got,
		   "\xEF\xBB\xBF"
		   "a;;b\r\n",
		   "writer utf-8 BOM, CRLF, NULL cell");
	}

	/* windows-1251 round trip through the reader, unmappable → '?'. */
	{
		const char *hdr[] = {"Код склада", "Артикул", "Остаток"};
		const char *row[] = {"Ёж; №1", "Щётка „x“ €", "日本"};
		char *buf = NULL;
		size_t sz = 0;
		FILE *f = open_memstream(&buf, &sz);
		sg_csv_writer *w = sg_csv_writer_new(f, "windows-1251", ';', false, false, "\r\n");
		g_autofree char *path = NULL;
		collect col = {0, g_string_new(NULL), 0};
		sg_csv_opts opts = {NULL, 0, is_header_c, row_c, &col};
		sg_csv_info info;

		sg_csv_write_row(w, hdr, 3);
		sg_csv_write_row(w, row, 3);
		OK(sg_csv_writer_close(w), "writer cp1251: close");
		fclose(f);
		OK(memchr(buf, 0xD0, sz) == NULL, "writer cp1251: no UTF-8 lead bytes");
		path = write_file("w1251.csv", buf, sz);
		NUM(sg_csv_read(path, &opts, &info, NULL), SG_OK, "writer cp1251: reads back");
		IS(info.encoding, "windows-1251", "writer cp1251: encoding detected");
		IS(col.rows->str, "2:Ёж; №1|Щётка „x“ €|??\n", "writer cp1251: round trip");
		sg_csv_info_clear(&info);
		g_string_free(col.rows, TRUE);
		free(buf);
	}

	/* UTF-16LE with BOM, read back. */
	{
		const char *hdr[] = {"code", "имя"};
		const char *row[] = {"D1", "𝔸 x"};
		char *buf = NULL;
		size_t sz = 0;
		FILE *f = open_memstream(&buf, &sz);
		sg_csv_writer *w = sg_csv_writer_new(f, "utf-16le", '\t', true, false, "\r\n");
		g_autofree char *path = NULL;
		collect col = {0, g_string_new(NULL), 0};
		sg_csv_opts opts = {NULL, 0, is_header_c, row_c, &col};
		sg_csv_info info;

		sg_csv_write_row(w, hdr, 2);
		sg_csv_write_row(w, row, 2);
		OK(sg_csv_writer_close(w), "writer utf-16le: close");
		fclose(f);
		OK(sz > 2 && memcmp(buf, "\xFF\xFE", 2) == 0, "writer utf-16le: BOM");
		path = write_file("w16.csv", buf, sz);
		NUM(sg_csv_read(path, &opts, &info, NULL), SG_OK, "writer utf-16le: reads back");
		IS(info.encoding, "utf-16le", "writer utf-16le: encoding");
		NUM(info.delimiter, '\t', "writer utf-16le: tab");
		IS(col.rows->str, "2:D1|𝔸 x\n", "writer utf-16le: round trip");
		sg_csv_info_clear(&info);
		g_string_free(col.rows, TRUE);
		free(buf);
	}
}

/* Without a header matcher, the first non-blank record split widest is the header. */
static void test_no_matcher(void)
{
	g_autofree char *path = NULL;
	collect col = {0, g_string_new(NULL), 0};
	sg_csv_opts opts = {NULL, 0, NULL, row_c, &col};
	sg_csv_info info;
	const char *text = "\nvin,note\nX1,a;b\n";

	path = write_file("nm.csv", text, strlen(text));
	NUM(sg_csv_read(path, &opts, &info, NULL), SG_OK, "no matcher: read");
	NUM(info.delimiter, ',', "no matcher: widest delimiter");
	NUM(info.header_line, 2, "no matcher: header line");
	IS(col.rows->str, "3:X1|a;b\n", "no matcher: rows");
	sg_csv_info_clear(&info);
	g_string_free(col.rows, TRUE);
}

int main(void)
{
	GError *e = NULL;

	tmpdir = g_dir_make_tmp("test-csvin.XXXXXX", &e);
	if (tmpdir == NULL) {
		printf("# %s\n", e->message);
		return 1;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(reads); i++)
		run_read(&reads[i]);
	test_header_cells();
	test_large();
	test_header_key();
	test_writer();
	test_no_matcher();

	{
		GDir *dir = g_dir_open(tmpdir, 0, NULL);
		const char *n;

		while (dir && (n = g_dir_read_name(dir))) {
			g_autofree char *p = g_build_filename(tmpdir, n, NULL);
			g_unlink(p);
		}
		if (dir)
			g_dir_close(dir);
		g_rmdir(tmpdir);
	}
	g_free(tmpdir);
	return tap_done();
}
