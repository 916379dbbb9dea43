/* crash.c: the crash-test hook: SG_CRASH=point makes the process die at that named point. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void sg_crash_point(const char *name)
{
	const char *want = getenv("SG_CRASH");

	if (want && strcmp(want, name) == 0)
		raise(SIGKILL);
}
