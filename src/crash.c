/* crash.c: the crash-test hook: SG_CRASH=point makes the process die at that named point,
 * SG_CRASH=point:N the Nth time it comes there (a point inside a chunk of messages). */
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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
