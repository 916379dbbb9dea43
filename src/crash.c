/* crash.c: the crash-test hook: SG_CRASH=point makes the process die at that named point,
 * SG_CRASH=point:N the Nth time it comes there (a point inside a chunk of messages). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void sg_crash_point(const char *name)
{
	static unsigned long hits; /* SG_CRASH names one point: one count is enough */
	const char *want = getenv("SG_CRASH");
	size_t n = want ? strcspn(want, ":") : 0;

	if (!want || strlen(name) != n || strncmp(want, name, n) != 0)
		return;
	if (++hits >= (want[n] == ':' ? strtoul(want + n + 1, NULL, 10) : 1))
		raise(SIGKILL);
}
