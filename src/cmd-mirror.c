/* cmd-mirror.c: `stockgate mirror` (placeholder until its module lands). */
#include "cmd.h"
#include "log.h"

sg_status cmd_mirror(sg_ctx *ctx, int argc, char **argv)
{
	log_error("mirror: not implemented yet");
	return SG_EUNAVAIL;
}
