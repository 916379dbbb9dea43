/* cmd-catalog.c: `stockgate catalog load|list|clear`: the articles a remains file may name. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "csvin.h"
#include "log.h"

static const char usage_text[] =
	"usage: stockgate catalog load FILE.csv\n"
	"       stockgate catalog list\n"
	"       stockgate catalog clear\n"
	"load replaces the catalogue with the articles of the file: its first column, or the\n"
	"column named article or Артикул. The first row is a header when its first cell is\n"
	"article or Артикул (any case). An empty catalogue lets every article through.\n";

#define MAX_ARTICLE 64

/* What reading the catalogue file collects. */
struct load {
	const char *path;
	sg_store *store;
	bool header_mode; /* pass 1: the header names the column; pass 2: no header */
	size_t column;
	long added, bad;
	sg_status st;
	char *err;
};

static bool is_article_name(const char *cell)
{
	g_autofree char *k = sg_csv_header_key(cell);
	return strcmp(k, "article") == 0 || strcmp(k, "артикул") == 0;
}

/* Pass 1: the header is the record that names an article column. */
static bool header_named(void *vctx, char **cells, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (is_article_name(cells[i]))
			return true;
	return false;
}

/* Pass 2: no header; the first record is data, delivered through add_article by the caller. */
static bool header_first(void *vctx, char **cells, size_t n)
{
	return true;
}

static int add_article(struct load *L, long line, const char *article)
{
	if (!*article)
		return 0;
	if (g_utf8_strlen(article, -1) > MAX_ARTICLE) {
		fprintf(stderr, "%s:%ld: article '%.*s…' is longer than %d characters; shorten it\n",
			L->path, line, 40, article, MAX_ARTICLE);
		L->bad++;
		return 0;
	}
	if (L->bad)
		return 0;
	L->st = sg_catalog_add(L->store, article, &L->err);
	if (L->st != SG_OK)
		return 1;
	L->added++;
	return 0;
}

static int row(void *vctx, long line, char **cells, size_t n)
{
	struct load *L = vctx;
	return L->column < n ? add_article(L, line, cells[L->column]) : 0;
}

/* Reads the file into the catalogue (inside the caller's transaction). */
static sg_status load_file(struct load *L)
{
	sg_csv_info info = { 0 };
	sg_csv_opts opts = { .header = header_named, .row = row, .ctx = L };
	sg_status st;

	L->column = 0;
	st = sg_csv_read(L->path, &opts, &info, &L->err);
	if (st == SG_EDATA && info.reason && strcmp(info.reason, "bad_header") == 0) {
		/* No header: every record is an article in the first column. */
		sg_csv_info_clear(&info);
		g_clear_pointer(&L->err, g_free);
		L->added = L->bad = 0;
		L->header_mode = false;
		opts.header = header_first;
		st = sg_csv_read(L->path, &opts, &info, &L->err);
		if (st == SG_OK && info.header_n > 0 && L->st == SG_OK)
			add_article(L, info.header_line, info.header[0]);
	} else if (st == SG_OK) {
		L->header_mode = true;
		for (size_t i = 0; i < info.header_n; i++)
			if (is_article_name(info.header[i])) {
				L->column = i;
				break;
			}
		/* The column was chosen after the rows were read: read again with it. */
		if (L->column != 0) {
			sg_csv_info_clear(&info);
			L->added = L->bad = 0;
			sg_catalog_clear(L->store, NULL);
			st = sg_csv_read(L->path, &opts, &info, &L->err);
		}
	}
	if (st == SG_EDATA && !L->err)
		sg_fail(&L->err, SG_EDATA, "%s: %s%s%s", L->path, info.reason ? info.reason : "bad file",
			info.detail ? ": " : "", info.detail ? info.detail : "");
	sg_csv_info_clear(&info);
	if (st != SG_OK)
		return st;
	if (L->st != SG_OK)
		return L->st;
	if (L->bad)
		return sg_fail(&L->err, SG_EDATA, "%s: %ld bad articles; nothing loaded", L->path,
			       L->bad);
	return SG_OK;
}

static void print_article(void *ctx, const char *article)
{
	printf("%s\n", article);
}

sg_status cmd_catalog(sg_ctx *ctx, int argc, char **argv)
{
	g_autofree char *err = NULL;
	sg_store *store = NULL;
	sg_status st;

	if (!sg_cmd_options(argc, argv, "", NULL, usage_text, &st))
		return st;
	int n = argc - optind;
	char **a = argv + optind;
	if (n < 1)
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	const char *sub = a[0];
	if (strcmp(sub, "load") == 0 ? n != 2
				     : (strcmp(sub, "list") != 0 && strcmp(sub, "clear") != 0) || n != 1)
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	if (strcmp(sub, "load") == 0 && access(a[1], R_OK) != 0)
		return sg_cmd_fail(SG_ENOINPUT,
				   err = g_strdup_printf("%s: %s", a[1], g_strerror(errno)));

	st = sg_ctx_store(ctx, &store);
	if (st != SG_OK)
		return st;
	if (strcmp(sub, "list") == 0) {
		st = sg_catalog_each(store, print_article, NULL, &err);
	} else if (strcmp(sub, "clear") == 0) {
		st = sg_catalog_clear(store, &err);
		if (st == SG_OK)
			log_info("catalogue cleared: every article is accepted now");
	} else {
		struct load L = { .path = a[1], .store = store };
		long before = 0, after = 0;
		sg_catalog_count(store, &before, NULL);
		st = sg_store_begin(store, &err);
		if (st == SG_OK)
			st = sg_catalog_clear(store, &err);
		if (st == SG_OK) {
			st = load_file(&L);
			err = g_steal_pointer(&L.err);
		}
		if (st == SG_OK)
			st = sg_store_commit(store, &err);
		if (st != SG_OK) {
			sg_store_rollback(store);
		} else {
			sg_catalog_count(store, &after, NULL);
			log_info("%s: catalogue loaded: %ld articles (%ld before)", a[1], after,
				 before);
		}
	}
	sg_store_close(store);
	if (st != SG_OK)
		return sg_cmd_fail(st, err);
	return SG_OK;
}
