/* csvread.c: times stockgate's CSV reader alone (decode, sniff, rows) on a file: prints the row
 * count. */
#include <stdlib.h>

#include "csvin.h"

static bool is_header(void *ctx, char **cells, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		g_autofree char *k = sg_csv_header_key(cells[i]);

		if (strcmp(k, "код склада") == 0 || strcmp(k, "code") == 0)
			return true;
	}
	return false;
}

static int on_row(void *ctx, long line, char **cells, size_t n)
{
	(*(long *)ctx)++;
	return 0;
}

int main(int argc, char **argv)
{
	long rows = 0;
	sg_csv_opts opts = {NULL, 0, is_header, on_row, &rows};
	sg_csv_info info;
	char *err = NULL;
	sg_status st;

	if (argc != 2) {
		fprintf(stderr, "usage: csvread FILE\n");
		return 64;
	}
	st = sg_csv_read(argv[1], &opts, &info, &err);
	if (st != SG_OK) {
		fprintf(stderr, "csvread: %s\n", err ? err : "failed");
		return 65;
	}
	printf("%ld %s %c\n", rows, info.encoding, info.delimiter);
	sg_csv_info_clear(&info);
	return 0;
}
