/* cmd-batch.c: `stockgate batch` (placeholder until its module lands). */
#include "cmd.h"
#include "log.h"

sg_status cmd_batch(sg_ctx *ctx, int argc, char **argv)
{
	log_error("batch: not implemented yet");
	return SG_EUNAVAIL;
}
