/* csvcount.c: the benchmark's floor: counts a windows-1251 ';' file's rows with libcsv, nothing
 * else. */
#include <csv.h>
#include <fcntl.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char tab[128][4]; /* [0] = length, then the UTF-8 bytes */

static void build_table(void)
{
	iconv_t cd = iconv_open("UTF-8", "WINDOWS-1251");

	if (cd == (iconv_t)-1) {
		perror("iconv_open");
		exit(1);
	}
	for (int i = 0; i < 128; i++) {
		char in = (char)(0x80 + i), out[4], *ip = &in, *op = out;
		size_t il = 1, ol = sizeof(out);

		if (iconv(cd, &ip, &il, &op, &ol) != (size_t)-1) {
			tab[i][0] = (unsigned char)(op - out);
			memcpy(tab[i] + 1, out, (size_t)(op - out));
		}
		iconv(cd, NULL, NULL, NULL, NULL);
	}
	iconv_close(cd);
}

static void on_field(void *s, size_t len, void *data) { (void)s, (void)len, (void)data; }

static void on_row(int c, void *data)
{
	(*(long *)data)++;
	(void)c;
}

int main(int argc, char **argv)
{
	static unsigned char in[65536], out[65536 * 3];
	struct csv_parser p;
	long rows = 0;
	ssize_t n;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: csvcount FILE\n");
		return 64;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 66;
	}
	build_table();
	csv_init(&p, CSV_STRICT | CSV_STRICT_FINI);
	csv_set_delim(&p, ';');
	while ((n = read(fd, in, sizeof(in))) > 0) {
		unsigned char *o = out;

		for (ssize_t i = 0; i < n; i++) {
			if (in[i] < 0x80) {
				*o++ = in[i];
			} else {
				memcpy(o, tab[in[i] - 0x80] + 1, 3);
				o += tab[in[i] - 0x80][0];
			}
		}
		if (csv_parse(&p, out, (size_t)(o - out), on_field, on_row, &rows) !=
		    (size_t)(o - out)) {
			fprintf(stderr, "csvcount: %s\n", csv_strerror(csv_error(&p)));
			return 65;
		}
	}
	csv_fini(&p, on_field, on_row, &rows);
	csv_free(&p);
	close(fd);
	printf("%ld\n", rows);
	return 0;
}
