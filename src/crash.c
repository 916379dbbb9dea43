/* crash.c: the crash-test hook: SG_CRASH=point makes the process die at that named point,
 * SG_CRASH=point:N the Nth time it comes there (a point inside a chunk of messages); and the
 * pause hook, SG_PAUSE=point with SG_PAUSE_FIFO, which holds it there until the test says. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

bool sg_crash_due(const char *name)
{
	/* SG_CRASH names one point: one count is enough (counted again when it changes) */
	static unsigned long hits;
	static char last[64];
	const char *want = getenv("SG_CRASH");
	size_t n = want ? strcspn(want, ":") : 0;

	if (!want || strlen(name) != n || strncmp(want, name, n) != 0)
		return false;
	if (strncmp(last, want, sizeof last - 1) != 0) {
		g_strlcpy(last, want, sizeof last);
		hits = 0;
	}
	return want[n] != ':' || ++hits == strtoul(want + n + 1, NULL, 10);
}

void sg_crash_point(const char *name)
{
	if (sg_crash_due(name))
		raise(SIGKILL);
}

void sg_pause_point(const char *name)
{
	/* Deliveries run in several threads: the passings are counted across them. */
	static gint hits;
	const char *want = getenv("SG_PAUSE"), *fifo = getenv("SG_PAUSE_FIFO");
	g_autofree char *path = NULL, *line = NULL;
	char buf[64];
	ssize_t r;
	int fd;

	if (!want || !fifo || strcmp(want, name) != 0)
		return;
	/* The Nth passing waits on its own FIFO, FIFO.N, when the test made one: two threads
	 * held at once never read each other's word. */
	path = g_strdup_printf("%s.%d", fifo, g_atomic_int_add(&hits, 1) + 1);
	if (!g_file_test(path, G_FILE_TEST_EXISTS))
		return;
	/* Each open waits for the test's end of the FIFO: its reader, then its writer. */
	line = g_strconcat(name, "\n", NULL);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0) {
		(void)sg_write_all(fd, line, strlen(line));
		close(fd);
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		while ((r = read(fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
			;
		close(fd);
	}
}
