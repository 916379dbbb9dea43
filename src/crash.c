/* crash.c: the crash-test hook: SG_CRASH=point makes the process die at that named point
 * (SG_CRASH=point:N at its N-th passing, for points a run passes many times). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void sg_crash_point(const char *name)
{
	static long passed;
	const char *want = getenv("SG_CRASH");
	size_t n = strlen(name);

	if (want == NULL || strncmp(want, name, n) != 0)
		return;
	if (want[n] == 0 || (want[n] == ':' && ++passed >= strtol(want + n + 1, NULL, 10)))
		raise(SIGKILL);
}
