/* replay.c: runs a fuzz target without libFuzzer over its saved inputs (tests/fuzz/regress/NAME,
 * then its seeds in tests/fuzz/corpus/NAME), one TAP line each, so `make check` keeps a fixed
 * finding fixed; under ASan each input is also checked for leaks on its own, naming the file. */

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

#ifndef SG_FUZZ_NAME
#error "SG_FUZZ_NAME names the target (the Makefile sets it)"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n, failed;
static bool leaked;

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of DIR, in name order (the TAP numbering stays stable). */
static void replay_dir(const char *dir)
{
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			g_ptr_array_add(names, g_strdup(e->d_name));
	closedir(d);
	if (names->len > 1)
		qsort(names->pdata, names->len, sizeof(char *), by_name);
	for (guint i = 0; i < names->len; i++) {
		g_autofree char *path = g_build_filename(dir, names->pdata[i], NULL);
		g_autofree char *data = NULL;
		gsize len = 0;

		if (!g_file_get_contents(path, &data, &len, NULL)) {
			printf("not ok %d - fuzz-%s %s: unreadable\n", ++n, SG_FUZZ_NAME, path);
			failed++;
			continue;
		}
		/* A copy of exactly len bytes, as libFuzzer passes it: an overread is caught. */
		uint8_t *copy = g_memdup2(data, len ? len : 1);
		LLVMFuzzerTestOneInput(copy, len);
		g_free(copy);
		/* A leak stays reported by every later check: only the first input that leaks
		 * is named, the later ones are checked for crashes alone. */
		if (!leaked && LEAK_CHECK()) {
			printf("not ok %d - fuzz-%s %s: leaks (LeakSanitizer report above)\n", ++n,
			       SG_FUZZ_NAME, path);
			failed++;
			leaked = true;
		} else {
			printf("ok %d - fuzz-%s %s runs clean\n", ++n, SG_FUZZ_NAME, path);
		}
		fflush(stdout);
	}
}

int main(void)
{
	const char *top = g_getenv("SG_TOP");
	g_autofree char *regress = g_build_filename(top ? top : ".", "tests/fuzz/regress", SG_FUZZ_NAME, NULL);
	g_autofree char *corpus = g_build_filename(top ? top : ".", "tests/fuzz/corpus", SG_FUZZ_NAME, NULL);

	replay_dir(regress);
	replay_dir(corpus);
	printf("1..%d\n", n);
	return failed ? 1 : 0;
}
