/* cmd.h: the interface of the subcommands (one file each, cmd-NAME.c) and what main() sets up. */
#pragma once
#include <unistd.h> /* optind, where sg_cmd_options leaves the first operand */

#include "config.h"
#include "store.h"

typedef struct {
	const char *config_path; /* -c, else $STOCKGATE_CONFIG, else /etc/stockgate/stockgate.conf */
	sg_config *cfg;          /* loaded by main() when the command's table row asks for it,
	                          * else NULL */
	const char *log_format;  /* "text" or "json" */
} sg_ctx;

/*
 * A command gets argv starting at its own name (argv[0] = "process"), parses its options with
 * getopt_long (optind reset by main), and returns a status that main() maps to the exit code.
 * `--help` prints the command's usage to stdout and returns SG_OK; a usage error prints it to
 * stderr and returns SG_EUSAGE.
 */
typedef sg_status (*sg_cmd_fn)(sg_ctx *ctx, int argc, char **argv);

sg_status cmd_poll(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_process(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_check(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_import(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_dealer(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_user(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_catalog(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_warehouses(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_remains(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_batch(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_status(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_mirror(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_config(sg_ctx *ctx, int argc, char **argv);
sg_status cmd_serve(sg_ctx *ctx, int argc, char **argv);

/* Opens the store of ctx->cfg ([store] path); logs and returns the failure. */
sg_status sg_ctx_store(sg_ctx *ctx, sg_store **out);
/* Opens the store and loads dealer id; logs and returns the failure ("no such dealer": 66),
 * with the store closed. On success the caller closes *store and frees *dealer. */
sg_status sg_ctx_dealer(sg_ctx *ctx, const char *id, sg_store **store, sg_dealer **dealer);
/* Logs err (when not NULL) as an error and returns st: `return sg_cmd_fail(st, err);`. */
sg_status sg_cmd_fail(sg_status st, const char *err);
/* Prints "FILE:LINE: column 'X': message" for every error of a file, its warnings, then the
 * verdict, to f (the output of `check` and `import`). */
void sg_cmd_print_verdict(FILE *f, const char *path, const sg_file_result *fr);
/* One file's verdict as the JSON object of a record's "files" element; g_free. */
char *sg_cmd_file_json(const sg_file_result *fr);
/* Prints usage to stdout (st == SG_OK) or stderr, returns st. */
sg_status sg_cmd_usage(const char *usage, sg_status st);

/*
 * One option of a command, a row of the table sg_cmd_options reads (the last row's name NULL).
 * With value set, `--NAME ARG` stores ARG there (a pointer into argv); without, `--NAME` takes
 * no argument and sets *flag. A repeated option: the last one counts.
 */
typedef struct {
	const char *name;
	char letter; /* the short form (-k), or 0 for none */
	const char **value;
	bool *flag;
} sg_opt;

/*
 * Parses a command's options with getopt_long: the rows of opts (may be NULL), and -h/--help
 * always. order is "" to take options among the operands (getopt permutes argv) or "+" to stop
 * at the first operand. Returns true with optind at the first operand, or false with *st set to
 * what the command returns: SG_OK after --help printed usage to stdout, SG_EUSAGE after a bad
 * option (getopt_long says which) printed it to stderr.
 */
bool sg_cmd_options(int argc, char **argv, const char *order, const sg_opt *opts,
		    const char *usage, sg_status *st);
/* Whether format is a or b; if not, logs "CMD: --format 'X': write A or B" and the caller
 * returns its usage with SG_EUSAGE. */
bool sg_cmd_format_ok(const char *cmd, const char *format, const char *a, const char *b);
