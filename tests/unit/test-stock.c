/* test-stock.c: warehouses and remains files: validation, verdicts, counts, apply, rollback. */
#include <glib/gstdio.h>
#include <string.h>

#include "stock.h"
#include "stub-mirror.c"
#include "tap.h"
#include "util.h"

static sg_store *st;
static char *tmpdir;
static int file_no;

typedef struct {
	const char *dealer; /* "" = D1 (the default), NULL only with check */
	bool check;
	gint64 date;
	bool dev_mode;
	long max_rows;
	int max_field_length;
	GHashTable *seen;
	bool mirror;
} opts;

static sg_status last_status;

static char *write_tmp(const char *text, size_t len)
{
	char *path = g_strdup_printf("%s/f%d.csv", tmpdir, ++file_no);
	g_file_set_contents(path, text, (gssize)len, NULL);
	return path;
}

/* Applies the file at path, or (path NULL) the bytes data as an attachment is applied. */
static sg_file_result *apply_input(const char *kind, const char *path, GBytes *data,
				   const opts *o)
{
	static const opts none = {0};
	static int fake_mirror;
	if (!o)
		o = &none;
	sg_stock_ctx ctx = {
	    .dealer = o->check ? NULL : (o->dealer && *o->dealer ? o->dealer : "D1"),
	    .kind = kind,
	    .date = o->date,
	    .dev_mode = o->dev_mode,
	    .max_rows = o->max_rows ? o->max_rows : 1000000,
	    .max_field_length = o->max_field_length ? o->max_field_length : 1024,
	    .seen = o->seen,
	    .mirror = o->mirror ? (sg_mirror *)&fake_mirror : NULL,
	    .key = "k",
	};
	sg_file_result *fr = sg_file_result_new("f.csv");
	g_autofree char *err = NULL;
	sg_store_begin(st, NULL);
	last_status = path ? sg_stock_apply_file(st, &ctx, path, fr, &err)
			   : sg_stock_apply_bytes(st, &ctx, "f.csv", data, fr, &err);
	if (last_status == SG_OK)
		sg_store_commit(st, NULL);
	else
		sg_store_rollback(st);
	if (last_status && last_status != SG_ETEMP)
		printf("# apply: status %d: %s\n", last_status, err ? err : "");
	return fr;
}

static sg_file_result *apply_path(const char *kind, const char *path, const opts *o)
{
	return apply_input(kind, path, NULL, o);
}

/* The text as an attachment's bytes in memory (the pipeline's way). */
static sg_file_result *apply(const char *kind, const char *csv, const opts *o)
{
	g_autoptr(GBytes) data = g_bytes_new(csv, strlen(csv));
	return apply_input(kind, NULL, data, o);
}

static void add_line(void *ctx, const char *w, const char *a, long long q)
{
	g_string_append_printf(ctx, "%s/%s=%lld\n", w, a, q);
}

/* Everything the dealer D1 has, as text. */
static char *snapshot(void)
{
	GString *s = g_string_new(NULL);
	GPtrArray *ws = NULL;
	sg_warehouse_list(st, "D1", &ws, NULL);
	for (guint i = 0; i < ws->len; i++) {
		sg_warehouse *w = ws->pdata[i];
		g_string_append_printf(s, "[%s|%s|%s]\n", w->code, w->address, w->contacts);
	}
	g_ptr_array_unref(ws);
	sg_remains_each(st, "D1", NULL, add_line, s, NULL);
	return g_string_free(s, FALSE);
}

static const sg_issue *issue(GPtrArray *a, guint i) { return i < a->len ? a->pdata[i] : NULL; }

static void test_quantity(void)
{
	static const struct {
		const char *in;
		bool ok;
		long long v;
	} t[] = {
	    {"0", true, 0},
	    {"5", true, 5},
	    {"007", true, 7},
	    {"999999999", true, 999999999},
	    {"1000000000", false, 0},
	    {"99999999999999999999999", false, 0},
	    {"5,00", true, 5},
	    {"5.0", true, 5},
	    {"10,000", true, 10},
	    {"1 234,00", true, 1234},
	    {"1 234 567", true, 1234567},
	    {"1\xc2\xa0"
	     "234",
	     true, 1234},
	    {"1\xe2\x80\xaf"
	     "234",
	     true, 1234},
	    {" 12 ", true, 12},
	    {"2,5", false, 0},
	    {"5,01", false, 0},
	    {"5,", false, 0},
	    {",5", false, 0},
	    {"-1", false, 0},
	    {"-0", false, 0},
	    {"+1", false, 0},
	    {"", false, 0},
	    {"   ", false, 0},
	    {"1e3", false, 0},
	    {"0x10", false, 0},
	    {"1 23", false, 0},
	    {"1234 567", false, 0},
	    {"1  234", false, 0},
	    {"1 234 ", true, 1234},
	    {"1\t234", false, 0},
	    {"1.000.000", false, 0},
	    {"abc", false, 0},
	    {"12abc", false, 0},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		long long v = -1;
		bool ok = sg_parse_quantity(t[i].in, &v);
		OK(ok == t[i].ok && (!ok || v == t[i].v), "quantity '%s' → %s %lld", t[i].in,
		   ok ? "ok" : "bad", ok ? v : 0);
	}
}

static void test_code(void)
{
	static const struct {
		const char *in;
		bool ok;
	} t[] = {
	    {"W1", true},
	    {"D4R7WE", true},
	    {"склад-1", true},
	    {"Ёлка_2.0", true},
	    {"a", true},
	    {"x234567890123456789012345678901234567890123456789012345678901234", true},
	    {"x2345678901234567890123456789012345678901234567890123456789012345", false},
	    {"", false},
	    {"W 1", false},
	    {"W/1", false},
	    {"W1;", false},
	    {"αβγ", false},
	    {"倉庫", false},
	    {"W١", false}, /* Arabic-Indic digit */
	    {"é", true},
	    {"\xff", false},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++)
		OK(sg_valid_code(t[i].in) == t[i].ok, "code '%s' %s", t[i].in,
		   t[i].ok ? "valid" : "invalid");
}

#define RH "Код склада;Артикул;Остаток\n"
#define WH "Адрес;Контакты;Код склада\n"

/* Rejected files: the reason, the first error (code, line, column, value). */
static void test_rejects(void)
{
	g_autofree char *long65 = g_strnfill(65, 'A');
	g_autofree char *r_long_article = g_strdup_printf(RH "W1;%s;1\n", long65);
	static opts max2 = {.max_rows = 2}, field10 = {.max_field_length = 10};
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_hash_table_add(seen, g_strdup("W1"));
	opts seen_w1 = {.seen = seen};
	const struct {
		const char *kind, *csv;
		const opts *o;
		const char *reason, *code;
		long line;
		const char *column, *value, *message;
		guint nerrors;
	} t[] = {
	    {"remains", RH "W1;A1;2,5\n", NULL, "row_errors", "bad_quantity", 2, "Остаток", "2,5",
	     "'2,5' is not a whole number", 1},
	    {"remains", RH "W1;A1;-1\n", NULL, "row_errors", "bad_quantity", 2, "Остаток", "-1",
	     "'-1' is negative", 1},
	    {"remains", RH "W1;A1;1e3\n", NULL, "row_errors", "bad_quantity", 2, NULL, "1e3", NULL,
	     1},
	    {"remains", RH "W1;A1;\n", NULL, "row_errors", "missing_value", 2, "Остаток", NULL,
	     NULL, 1},
	    {"remains", RH "W1;;5\n", NULL, "row_errors", "missing_value", 2, "Артикул", NULL, NULL,
	     1},
	    {"remains", RH ";A1;5\n", NULL, "row_errors", "missing_value", 2, "Код склада", NULL,
	     NULL, 1},
	    {"remains", RH "W 1;A1;5\n", NULL, "row_errors", "bad_code", 2, "Код склада", "W 1",
	     NULL, 1},
	    {"remains", RH "W1;A1;5\nW2;A2;5\nW1;A3;1\n", NULL, "row_errors", "other_warehouse", 3,
	     "Код склада", "W2", NULL, 1},
	    {"remains", r_long_article, NULL, "row_errors", "bad_article", 2, "Артикул", long65,
	     NULL, 1},
	    {"remains", RH "W1;A1;5;x\n", NULL, "row_errors", "wrong_column_count", 2, NULL, NULL,
	     NULL, 1},
	    {"remains", RH "W1;A1\n", NULL, "row_errors", "wrong_column_count", 2, NULL, NULL,
	     "the row has 2 cells, the header has 3 columns", 1},
	    {"remains", RH "W1;A1;5;;;\nW1;A2;\n", NULL, "row_errors", "missing_value", 3,
	     "Остаток", NULL, NULL, 1},
	    {"remains", RH "W1;ABCDEFGHIJK;5\n", &field10, "row_errors", "field_too_long", 2,
	     "Артикул", "ABCDEFGHIJK", NULL, 1},
	    {"remains", RH "W1;A1;x\n\nW1;A2;y\nW1;;z\n", NULL, "row_errors", "bad_quantity", 2,
	     "Остаток", "x", NULL, 4},
	    {"remains", "code;article;quantity\nW1;A1;1\nW1;A2;2\nW1;A3;3\n", &max2,
	     "too_many_rows", NULL, 0, NULL, NULL, NULL, 0},
	    {"remains", RH, NULL, "empty_file", NULL, 0, NULL, NULL, NULL, 0},
	    {"remains", "", NULL, "empty_file", NULL, 0, NULL, NULL, NULL, 0},
	    {"remains", "a;b;c\n1;2;3\n", NULL, "bad_header", NULL, 0, NULL, NULL, NULL, 0},
	    {"remains", "Код склада;Артикул;Остаток;Цена\nW1;A;1;2\n", NULL, "bad_header", NULL, 0,
	     NULL, NULL, NULL, 0},
	    {"remains", "code;Код склада;article;quantity\nW1;W1;A;1\n", NULL, "bad_header", NULL,
	     0, NULL, NULL, NULL, 0},
	    {"remains", RH "W9;A1;5\nW1;A2;x\n", NULL, "unknown_warehouse", NULL, 0, NULL, NULL,
	     NULL, 0},
	    {"remains", RH "W1;A1;5\n", &seen_w1, "duplicate_warehouse", NULL, 0, NULL, NULL, NULL,
	     0},
	    {"warehouses", WH "Москва;;W1\nТула;;W1\n", NULL, "row_errors", "duplicate_code", 3,
	     "Код склада", "W1", NULL, 1},
	    {"warehouses", WH ";c;W1\n", NULL, "row_errors", "missing_value", 2, "Адрес", NULL,
	     NULL, 1},
	    {"warehouses", WH "Москва;;W/1\n", NULL, "row_errors", "bad_code", 2, "Код склада",
	     "W/1", NULL, 1},
	    {"warehouses", WH, NULL, "empty_file", NULL, 0, NULL, NULL, NULL, 0},
	    {"warehouses", "Адрес;Контакты;Код склада;Артикул\nx;y;W1;A\n", NULL, "bad_header",
	     NULL, 0, NULL, NULL, NULL, 0},
	    {"warehouses", RH "W1;A;1\n", NULL, "bad_header", NULL, 0, NULL, NULL, NULL, 0},
	};
	g_autofree char *before = snapshot();
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		g_autoptr(sg_file_result) fr = apply(t[i].kind, t[i].csv, t[i].o);
		const sg_issue *e = issue(fr->errors, 0);
		OK(!fr->applied, "case %zu: rejected", i);
		IS(fr->reason, t[i].reason, "case %zu: reason (%s)", i,
		   fr->detail ? fr->detail : "");
		NUM(fr->errors->len, t[i].nerrors, "case %zu: errors", i);
		if (t[i].code) {
			IS(e ? e->code : NULL, t[i].code, "case %zu: code", i);
			NUM(e ? e->line : -1, t[i].line, "case %zu: line", i);
			if (t[i].column)
				IS(e ? e->column : NULL, t[i].column, "case %zu: column", i);
			if (t[i].value)
				IS(e ? e->value : NULL, t[i].value, "case %zu: value", i);
			if (t[i].message)
				IS(e ? e->message : NULL, t[i].message, "case %zu: message", i);
		}
		g_autofree char *after = snapshot();
		IS(after, before, "case %zu: store unchanged", i);
	}
	g_hash_table_unref(seen);

	g_autoptr(sg_file_result) fr =
	    apply("remains", "Код склада;Артикул;Остаток;Цена\nW1;A;1;2\n", NULL);
	OK(fr->detail && strstr(fr->detail, "Цена") && strstr(fr->detail, "Остаток"),
	   "bad_header names the columns found and expected: %s", fr->detail);
	g_autoptr(sg_file_result) fr2 = apply("remains", "a;b;c\n1;2;3\n", NULL);
	OK(fr2->detail && strstr(fr2->detail, "a, b, c") && strstr(fr2->detail, "Артикул"),
	   "no header: found and expected: %s", fr2->detail);
}

static void test_fixtures(void)
{
	const char *top = g_getenv("SG_TOP") ? g_getenv("SG_TOP") : ".";
	g_autofree char *wh = g_build_filename(top, "fixtures/csv/warehouses-utf8-bom.csv", NULL);
	g_autofree char *rem = g_build_filename(top, "fixtures/csv/remains-cp1251-title.csv", NULL);
	g_autofree char *bad = g_build_filename(top, "fixtures/csv/remains-row-errors.csv", NULL);
	opts o = {.dealer = "D2"};
	sg_dealer_add(st, "D2", "Two", "k2", NULL);

	g_autoptr(sg_file_result) a = apply_path("warehouses", wh, &o);
	OK(a->applied, "fixture warehouses applied (%s)", a->reason ? a->reason : "");
	NUM(a->added, 2, "two warehouses added");
	IS(a->encoding, "utf-8", "utf-8");
	NUM(a->delimiter, ',', "comma");
	GPtrArray *ws = NULL;
	sg_warehouse_list(st, "D2", &ws, NULL);
	IS(ws->len ? ((sg_warehouse *)ws->pdata[0])->address : NULL, "Москва, ул. Ленина, 1",
	   "quoted address");
	IS(ws->len > 1 ? ((sg_warehouse *)ws->pdata[1])->contacts : NULL, "", "empty contacts");
	g_ptr_array_unref(ws);

	g_autoptr(sg_file_result) b = apply_path("remains", rem, &o);
	OK(b->applied, "fixture remains applied (%s)", b->reason ? b->reason : "");
	IS(b->encoding, "windows-1251", "windows-1251");
	NUM(b->rows, 2, "two rows");
	const sg_issue *w = issue(b->warnings, 0);
	IS(w ? w->code : NULL, "title_rows_skipped", "title rows warning");
	NUM(w ? w->line : 0, 3, "on the header's line");
	IS(b->warehouse, "W1", "warehouse");
	g_autoptr(GString) s = g_string_new(NULL);
	sg_remains_each(st, "D2", NULL, add_line, s, NULL);
	IS(s->str, "W1/00123=1234\nW1/A-7=5\n", "leading zeros kept, 1 234,00 = 1234");

	g_autoptr(sg_file_result) c = apply_path("remains", bad, &o);
	IS(c->reason, "row_errors", "fixture with errors rejected");
	NUM(c->errors->len, 4, "every row error listed");
	NUM(c->rows, 4, "rows counted");
}

/* Rows A, B, A … of quantity 1, for a hand-made stored list. */
static bool next_twice(void *vp, const char **article, long long *qty)
{
	const char *const **p = vp;
	if (!**p)
		return false;
	*article = *(*p)++;
	*qty = 1;
	return true;
}

static void test_sequence(void)
{
	opts o = {0};
	g_autoptr(sg_file_result) a =
	    apply("warehouses", WH "Москва;+7 1;W1\nТула;;W2\nОрёл;;W3\n", &o);
	OK(a->applied, "warehouses applied");
	NUM(a->added, 1, "1 added (W1, W2 were there)");
	NUM(a->updated, 2, "2 updated (new addresses)");
	NUM(a->rows, 3, "3 rows");

	g_autoptr(sg_file_result) b = apply("remains", RH "W1;A;1\nW1;B;2\n", &o);
	OK(b->applied, "remains applied");
	IS(b->warehouse, "W1", "warehouse of the file");
	NUM(b->added, 2, "2 added");

	g_autoptr(sg_file_result) c = apply("remains", RH "W1;A;1\nW1;B;3\nW1;C;4\n", &o);
	OK(c->applied && c->added == 1 && c->updated == 1 && c->unchanged == 1 && c->deleted == 0,
	   "counts: 1 added 1 updated 1 unchanged (%ld %ld %ld %ld)", c->added, c->updated,
	   c->unchanged, c->deleted);

	g_autoptr(sg_file_result) d = apply("remains", RH "W1;A;0\n", &o);
	OK(d->applied && d->updated == 1 && d->deleted == 2, "replace: 1 updated, 2 deleted");

	g_autoptr(sg_file_result) e = apply("remains", RH "W2;X;1\nW2;Y;2\nW2;X;3\n", &o);
	OK(e->applied, "remains with a repeated article applied");
	NUM(e->rows, 3, "repeated rows counted");
	NUM(e->added, 2, "2 articles");
	const sg_issue *w = issue(e->warnings, 0);
	IS(w ? w->code : NULL, "duplicate_article", "duplicate_article warning");
	NUM(w ? w->line : 0, 4, "on the repeated row");
	IS(w ? w->value : NULL, "X", "value");

	g_autofree char *s1 = snapshot();
	IS(s1, "[W1|Москва|+7 1]\n[W2|Тула|]\n[W3|Орёл|]\nW1/A=0\nW2/X=4\nW2/Y=2\n",
	   "store after remains (sums, 0 kept)");

	g_autoptr(sg_file_result) f =
	    apply("warehouses", WH "Москва, центр;+7 1;W1\nОрёл;;W3\n", &o);
	OK(f->applied && f->updated == 1 && f->unchanged == 1 && f->deleted == 1 && f->added == 0,
	   "warehouses: 1 updated 1 unchanged 1 deleted");
	g_autofree char *s2 = snapshot();
	IS(s2, "[W1|Москва, центр|+7 1]\n[W3|Орёл|]\nW1/A=0\n",
	   "a dropped warehouse loses its remains");

	/* Catalogue: articles outside it are skipped with a warning. */
	sg_catalog_add(st, "A", NULL);
	sg_catalog_add(st, "B", NULL);
	g_autoptr(sg_file_result) g = apply("remains", RH "W1;A;1\nW1;X;5\nW1;B;2\n", &o);
	OK(g->applied, "catalogue-filtered file applied");
	NUM(g->skipped, 1, "1 skipped");
	NUM(g->rows, 3, "skipped rows counted in rows");
	w = issue(g->warnings, 0);
	IS(w ? w->code : NULL, "not_in_catalog", "not_in_catalog warning");
	IS(w ? w->value : NULL, "X", "with the article");
	NUM(w ? w->line : 0, 3, "on its line");
	sg_catalog_clear(st, NULL);
	g_autofree char *s3 = snapshot();
	IS(s3, "[W1|Москва, центр|+7 1]\n[W3|Орёл|]\nW1/A=1\nW1/B=2\n", "store after catalogue");

	/* A stored list that names an article twice (edited by hand): matched once, the repeat
	 * counted deleted and dropped by the rewrite; no count goes negative. */
	{
		static const char *const twice[] = {"A", "B", "A", NULL};
		const char *const *p = twice;
		sg_remains_replace(st, "D1", "W1", next_twice, &p, NULL);
	}
	g_autoptr(sg_file_result) t2 = apply("remains", RH "W1;A;1\nW1;C;1\n", &o);
	OK(t2->applied && t2->added == 1 && t2->unchanged == 1 && t2->updated == 0 &&
	       t2->deleted == 2,
	   "repeat in the stored list: 1 added 1 unchanged 2 deleted (%ld %ld %ld %ld)", t2->added,
	   t2->unchanged, t2->updated, t2->deleted);
	g_autofree char *s4 = snapshot();
	IS(s4, "[W1|Москва, центр|+7 1]\n[W3|Орёл|]\nW1/A=1\nW1/C=1\n", "the rewrite drops the repeat");

	/* Two files for one warehouse in one message. */
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	opts so = {.seen = seen};
	g_autoptr(sg_file_result) h1 = apply("remains", RH "W3;Q;1\n", &so);
	g_autoptr(sg_file_result) h2 = apply("remains", RH "W3;Q;2\n", &so);
	OK(h1->applied, "first file for W3 applied");
	IS(h2->reason, "duplicate_warehouse", "second file for W3 rejected");
	g_hash_table_unref(seen);
}

static void test_dates_dev_check_mirror(void)
{
	opts o = {.date = 1000};
	g_autoptr(sg_file_result) a = apply("remains", RH "W1;A;5\n", &o);
	OK(a->applied, "dated file applied");
	gint64 mark = 0;
	sg_mark_get(st, "D1", "remains", "W1", &mark, NULL);
	NUM(mark, 1000, "mark set");
	g_autofree char *before = snapshot();
	opts older = {.date = 999};
	g_autoptr(sg_file_result) b = apply("remains", RH "W1;A;6\n", &older);
	IS(b->reason, "superseded", "older file superseded");
	opts same = {.date = 1000};
	g_autoptr(sg_file_result) c = apply("remains", RH "W1;A;5\n", &same);
	OK(c->applied, "same instant is not older");
	opts wolder = {.date = 500};
	g_autoptr(sg_file_result) c2 = apply("warehouses", WH "x;;W1\n", &wolder);
	OK(c2->applied, "warehouses have their own mark");
	g_autoptr(sg_file_result) c3 = apply("warehouses", WH "x;;W1\n", &(opts){.date = 400});
	IS(c3->reason, "superseded", "older warehouses file superseded");
	g_autoptr(sg_file_result) c4 =
	    apply("warehouses", WH "Москва, центр;+7 1;W1\nОрёл;;W3\n", &(opts){.date = 600});
	OK(c4->applied, "restore warehouses");
	sg_store_exec(st, "INSERT INTO remains VALUES ('D1','W3','Q',1)", NULL);
	g_free(before);
	before = snapshot();

	/* Development mode: everything computed, nothing kept, no mark. */
	opts dev = {.dev_mode = true, .date = 5000};
	g_autoptr(sg_file_result) d = apply("remains", RH "W1;A;7\nW1;N;1\n", &dev);
	OK(d->applied, "dev mode: would be applied");
	OK(d->added == 1 && d->updated == 1, "dev mode: counts computed");
	g_autoptr(sg_file_result) d2 = apply("warehouses", WH "x;;W9\n", &dev);
	OK(d2->applied && d2->deleted == 2 && d2->added == 1, "dev mode warehouses counted");
	g_autofree char *after = snapshot();
	IS(after, before, "dev mode changes nothing");
	sg_mark_get(st, "D1", "remains", "W1", &mark, NULL);
	NUM(mark, 1000, "dev mode sets no mark");

	/* check: no dealer, validation only. */
	opts chk = {.check = true};
	g_autoptr(sg_file_result) e = apply("remains", RH "W9;A;1\nW9;A;2\n", &chk);
	OK(e->applied, "check: unknown warehouse not looked up");
	NUM(e->rows, 2, "check counts rows");
	g_autoptr(sg_file_result) e2 = apply("warehouses", WH "a;;W1\nb;;W1\n", &chk);
	IS(e2->reason, "row_errors", "check: duplicate code found");
	g_autoptr(sg_file_result) e3 = apply("warehouses", WH "a;;W1\nb;;W2\n", &chk);
	OK(e3->applied, "check: valid warehouses");
	g_free(after);
	after = snapshot();
	IS(after, before, "check changes nothing");

	/* The mirror's verdicts. */
	opts mo = {.mirror = true};
	stub_mirror_answer = SG_EDATA;
	g_autoptr(sg_file_result) m1 = apply("remains", RH "W1;A;99\n", &mo);
	IS(m1->reason, "mirror_error", "mirror error rejects the file");
	stub_mirror_answer = SG_ETEMP;
	g_autoptr(sg_file_result) m2 = apply("remains", RH "W1;A;99\n", &mo);
	NUM(last_status, SG_ETEMP, "mirror unavailable: SG_ETEMP");
	g_autoptr(sg_file_result) m3 = apply("warehouses", WH "x;;W1\n", &mo);
	NUM(last_status, SG_ETEMP, "mirror unavailable for warehouses: SG_ETEMP");
	g_free(after);
	after = snapshot();
	IS(after, before, "mirror failures change nothing");
	stub_mirror_answer = SG_OK;
	int calls = stub_mirror_calls;
	g_autoptr(sg_file_result) m4 = apply("remains", RH "W1;A;99\n", &mo);
	OK(m4->applied && stub_mirror_calls == calls + 1, "mirror accepted: applied");
	g_autoptr(sg_file_result) m5 =
	    apply("remains", RH "W1;A;98\n", &(opts){.mirror = true, .dev_mode = true});
	NUM(stub_mirror_calls, calls + 1, "dev mode does not call the mirror");
}

/* Many articles with repeats: the in-memory table grows (rehashes), sums and finds repeats in
 * line order; `check` finds the same repeats; a catalogue drops every row of its outsiders. */
static void test_many_articles(void)
{
	GString *csv = g_string_new(RH);
	for (int i = 0; i < 5000; i++)
		g_string_append_printf(csv, "W4;A%d;%d\n", i % 3000, i % 7);
	sg_store_exec(st, "INSERT INTO warehouses VALUES ('D1','W4','c','')", NULL);

	g_autoptr(sg_file_result) c = apply("remains", csv->str, &(opts){.check = true});
	OK(c->applied, "check: many articles valid");
	NUM(c->warnings->len, 2000, "check: 2000 repeats found");

	g_autoptr(sg_file_result) a = apply("remains", csv->str, NULL);
	OK(a->applied, "many articles applied");
	NUM(a->added, 3000, "3000 distinct articles added");
	NUM(a->warnings->len, 2000, "2000 duplicate_article warnings");
	bool ordered = true;
	for (guint i = 0; i < a->warnings->len; i++) {
		const sg_issue *w = issue(a->warnings, i);
		ordered &= w->line == 3002 + (long)i && strcmp(w->code, "duplicate_article") == 0;
	}
	OK(ordered, "one warning a repeated row, in line order");
	const sg_issue *w = issue(a->warnings, 0);
	IS(w ? w->value : NULL, "A0", "first repeat is A0");
	gint64 q[2] = {0};
	sg_remains_reader *rd = NULL;
	const char *rw, *ra;
	long long rq;
	sg_remains_open(st, "D1", "W4", &rd, NULL);
	while (rd && sg_remains_next(rd, &rw, &ra, &rq)) {
		if (strcmp(ra, "A1") == 0)
			q[0] = rq;
		q[1] += rq;
	}
	sg_remains_close(rd);
	/* A1 is on rows 1 and 3001: 1 % 7 + 3001 % 7 = 1 + 5. */
	NUM(q[0], 6, "A1 summed");
	long total = 0;
	for (int i = 0; i < 5000; i++)
		total += i % 7;
	NUM(q[1], total, "every row's quantity stored");

	g_autoptr(sg_file_result) b = apply("remains", csv->str, NULL);
	OK(b->applied && b->unchanged == 3000 && b->added == 0 && b->updated == 0 &&
	       b->deleted == 0,
	   "second load (staged diff): 3000 unchanged");

	for (int i = 0; i < 1000; i++) {
		g_autofree char *art = g_strdup_printf("A%d", i);
		sg_catalog_add(st, art, NULL);
	}
	g_autoptr(sg_file_result) g = apply("remains", csv->str, NULL);
	OK(g->applied, "catalogue-filtered many articles applied");
	NUM(g->skipped, 3000, "3000 rows outside the catalogue skipped");
	NUM(g->unchanged, 1000, "1000 unchanged");
	NUM(g->deleted, 2000, "2000 deleted");
	guint nic = 0, dup = 0;
	ordered = true;
	for (guint i = 0; i < g->warnings->len; i++) {
		w = issue(g->warnings, i);
		nic += strcmp(w->code, "not_in_catalog") == 0;
		dup += strcmp(w->code, "duplicate_article") == 0;
		if (i)
			ordered &= issue(g->warnings, i - 1)->line < w->line;
	}
	NUM(nic, 3000, "a not_in_catalog warning for each skipped row");
	NUM(dup, 1000, "a duplicate_article warning for each repeat kept");
	OK(ordered, "warnings in line order");
	sg_catalog_clear(st, NULL);
	sg_store_exec(st, "DELETE FROM warehouses WHERE code = 'W4'", NULL);
	g_string_free(csv, TRUE);
}

/* SG_BENCH_ROWS=N: time a remains file of N rows, applied twice (insert, then update). */
static void bench(long n)
{
	g_autofree char *path = g_strdup_printf("%s/bench.csv", tmpdir);
	FILE *f = fopen(path, "w");
	fputs("Код склада;Артикул;Остаток\n", f);
	for (long i = 0; i < n; i++)
		fprintf(f, "BENCH;ART-%08ld;%ld\n", (i * 7919) % n, i % 1000);
	fclose(f);
	sg_dealer_add(st, "B", "bench", "k", NULL);
	sg_store_exec(st, "INSERT INTO warehouses VALUES ('B','BENCH','x','')", NULL);
	opts o = {.dealer = "B", .max_rows = n};
	for (int pass = 0; pass < 2; pass++) {
		gint64 t0 = g_get_monotonic_time();
		g_autoptr(sg_file_result) fr = apply_path("remains", path, &o);
		gint64 t1 = g_get_monotonic_time();
		OK(fr->applied && fr->rows == n, "bench pass %d: %ld rows in %.2f s (added %ld)",
		   pass, fr->rows, (t1 - t0) / 1e6, fr->added);
	}
}

/* A file on disk and the same bytes in memory get the same verdict (check mode: nothing kept). */
static void test_file_and_bytes(void)
{
	static const opts check = {.check = true};
	static const char *const texts[] = {
	    RH "W1;A1;5\nW1;A2;7\n",
	    RH "W1;\"A1;5\n",
	    "no;header;here\n1;2;3\n",
	    "\xEF\xBB\xBF" RH "W1;A1;x\n",
	    "",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
		g_autofree char *path = write_tmp(texts[i], strlen(texts[i]));
		g_autoptr(sg_file_result) f = apply_path("remains", path, &check);
		g_autoptr(sg_file_result) b = apply("remains", texts[i], &check);
		OK(f->applied == b->applied, "file and bytes %zu: applied %d", i, f->applied);
		IS(b->reason, f->reason, "file and bytes %zu: reason", i);
		NUM(b->rows, f->rows, "file and bytes %zu: rows", i);
		NUM(b->errors->len, f->errors->len, "file and bytes %zu: errors", i);
	}
}

int main(void)
{
	g_autofree char *dbpath = NULL;
	tmpdir = g_dir_make_tmp("test-stock-XXXXXX", NULL);
	dbpath = g_build_filename(tmpdir, "state.db", NULL);
	NUM(sg_store_open(dbpath, &st, NULL), SG_OK, "open db");
	sg_dealer_add(st, "D1", "One", "k1", NULL);
	sg_store_exec(st, "INSERT INTO warehouses VALUES ('D1','W1','a',''),('D1','W2','b','')",
		      NULL);

	test_quantity();
	test_code();
	test_rejects();
	test_fixtures();
	test_sequence();
	test_dates_dev_check_mirror();
	test_many_articles();
	test_file_and_bytes();
	const char *b = g_getenv("SG_BENCH_ROWS");
	if (b)
		bench(atol(b));
	sg_store_close(st);
	g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	g_free(tmpdir);
	return tap_done();
}
