/* fuzz-csv.c: libFuzzer target for the CSV reader and writer (decoding, sniffing, libcsv caps). */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "csvin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_code(void *ctx, char **cells, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		g_autofree char *k = sg_csv_header_key(cells[i]);

		if (strstr(k, "code") != NULL)
			return true;
	}
	return false;
}

/* Every row is measured and written back out, so the writer sees the reader's output. */
static int row(void *ctx, long line, char **cells, size_t n)
{
	sg_csv_writer *w = ctx;

	for (size_t i = 0; i < n; i++)
		(void)sg_csv_cell_chars(cells[i]);
	sg_csv_write_row(w, (const char *const *)cells, n);
	return line > 100000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const labels[] = {NULL,	     "utf-8",  "koi8-r", "utf-16le",
					     "windows-1251", "utf-16", "cp866",	 "no-such"};
	static const char *const encs[] = {"utf-8", "windows-1251", "utf-16le"};
	int fd = memfd_create("fuzz-csv", MFD_CLOEXEC);
	char path[64];
	FILE *sink = fopen("/dev/null", "w");
	sg_csv_writer *w;
	sg_csv_opts opts = {0};
	sg_csv_info info, mem;
	char *err = NULL;
	sg_status st_file, st_mem;
	uint8_t sel = size ? data[size - 1] : 0;

	if (fd < 0 || sink == NULL)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	w = sg_csv_writer_new(sink, encs[sel % 3], ";,\t|"[(sel >> 2) & 3], sel & 16, sel & 32,
			      "\r\n");
	opts.charset_label = labels[(sel >> 5) & 7];
	opts.max_cell_bytes = (sel & 1) ? 64 : 0;
	opts.header = (sel & 2) ? NULL : has_code;
	opts.row = row;
	opts.ctx = w;
	st_file = sg_csv_read(path, &opts, &info, &err);
	g_clear_pointer(&err, g_free);
	/* The same bytes in memory (an attachment) must get the same verdict. */
	st_mem = sg_csv_read_mem("in.csv", data, size, &opts, &mem, &err);
	if (st_mem != st_file || g_strcmp0(mem.reason, info.reason) != 0 ||
	    mem.records != info.records || mem.delimiter != info.delimiter ||
	    mem.header_line != info.header_line)
		abort();
	sg_csv_info_clear(&info);
	sg_csv_info_clear(&mem);
	g_free(err);
	sg_csv_writer_close(w);
	fclose(sink);
	close(fd);
	return 0;
}
