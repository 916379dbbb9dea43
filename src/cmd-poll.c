/* cmd-poll.c: `stockgate poll` (placeholder until its module lands). */
#include "cmd.h"
#include "log.h"

sg_status cmd_poll(sg_ctx *ctx, int argc, char **argv)
{
	log_error("poll: not implemented yet");
	return SG_EUNAVAIL;
}
