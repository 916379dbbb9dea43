/* stockgate.c: the entry point: global options, the table of commands, the one exit-code mapping. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "log.h"

#define DEFAULT_CONFIG "/etc/stockgate/stockgate.conf"

/* NEEDS_CONFIG: main() loads the configuration; CONNECTS: the command talks to servers. */
enum { NEEDS_CONFIG = 1 << 0, CONNECTS = 1 << 1 };

/* One row a command: main() does the setup the flags ask for, once (as notmuch does). */
static const struct command {
	const char *name;
	sg_cmd_fn fn;
	unsigned flags;
	const char *summary;
} commands[] = {
	{ "poll", cmd_poll, NEEDS_CONFIG | CONNECTS, "handle the messages waiting in the configured source" },
	{ "process", cmd_process, NEEDS_CONFIG | CONNECTS, "handle message files (or standard input)" },
	{ "check", cmd_check, 0, "validate a warehouses or remains CSV offline" },
	{ "import", cmd_import, NEEDS_CONFIG, "apply a warehouses or remains CSV for a dealer" },
	{ "dealer", cmd_dealer, NEEDS_CONFIG, "add, list, show, remove dealers; keys, dev mode" },
	{ "user", cmd_user, NEEDS_CONFIG, "add, list, remove the users who may send files" },
	{ "catalog", cmd_catalog, NEEDS_CONFIG, "load, list, clear the allowed articles" },
	{ "warehouses", cmd_warehouses, NEEDS_CONFIG, "list a dealer's warehouses" },
	{ "remains", cmd_remains, NEEDS_CONFIG, "export a dealer's stock remains" },
	{ "batch", cmd_batch, NEEDS_CONFIG | CONNECTS, "run a vin or frame lookup over a CSV list" },
	{ "status", cmd_status, NEEDS_CONFIG, "last poll, messages by outcome, pending work" },
	{ "mirror", cmd_mirror, NEEDS_CONFIG | CONNECTS, "check the dealer REST API (mirror ping)" },
	/* config loads the file itself: its errors are its output. */
	{ "config", cmd_config, 0, "check the configuration and, with --connect, every peer" },
	{ "serve", cmd_serve, NEEDS_CONFIG, "receive the VIN service's report deliveries (HTTP)" },
};

static void usage(FILE *f)
{
	fputs("usage: stockgate [-c FILE] [-v|-q] [--log-format text|json] COMMAND [ARGS]\n"
	      "       stockgate --help | --version | COMMAND --help\n\n"
	      "Options:\n"
	      "  -c, --config FILE      configuration file (default: $STOCKGATE_CONFIG, else\n"
	      "                         " DEFAULT_CONFIG ")\n"
	      "  -v, --verbose          log more (repeat for debug)\n"
	      "  -q, --quiet            log errors only\n"
	      "      --log-format FMT   text (default) or json lines on standard error\n"
	      "  -h, --help             this help\n"
	      "  -V, --version          print the version\n\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fputs("\nSee stockgate(1) and stockgate.conf(5).\n", f);
}

/* SPEC 4: plaintext is for loopback tests, and says so in the log. */
static void warn_plaintext(const sg_config *cfg)
{
	const struct {
		const char *section;
		const sg_tls *tls;
	} sections[] = {
		{ "source", &cfg->source.tls }, { "report", &cfg->report.tls },
		{ "mirror", &cfg->mirror.tls }, { "vin", &cfg->vin.tls },
		{ "frame", &cfg->frame.tls },   { "price", &cfg->price.tls },
		{ "rental", &cfg->rental.tls },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(sections); i++)
		if (sections[i].tls->off)
			log_warnx("%s: [%s] tls = off: plaintext connections are allowed (meant for "
				  "tests on loopback only)",
				  cfg->path, sections[i].section);
}

/* `COMMAND --help` must work without a configuration. */
static bool asks_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "log-format", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	sg_ctx ctx = { .log_format = "text" };
	int level = SG_LOG_INFO, c;
	const struct command *cmd = NULL;
	sg_status st;

	/* '+': options end at the command's name; the rest is the command's. */
	while ((c = getopt_long(argc, argv, "+c:vqhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			ctx.config_path = optarg;
			break;
		case 'v':
			level++;
			break;
		case 'q':
			level = SG_LOG_ERROR;
			break;
		case 'L':
			if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0) {
				fprintf(stderr, "stockgate: --log-format '%s': write text or json\n",
					optarg);
				return sg_exit_code(SG_EUSAGE);
			}
			ctx.log_format = optarg;
			break;
		case 'h':
			usage(stdout);
			return sg_exit_code(SG_OK);
		case 'V':
			printf("stockgate %s\n", SG_VERSION);
			return sg_exit_code(SG_OK);
		default:
			usage(stderr);
			return sg_exit_code(SG_EUSAGE);
		}
	}
	sg_log_init(level, strcmp(ctx.log_format, "json") == 0);

	if (optind >= argc) {
		usage(stderr);
		return sg_exit_code(SG_EUSAGE);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd) {
		fprintf(stderr, "stockgate: unknown command '%s'\n\n", argv[optind]);
		usage(stderr);
		return sg_exit_code(SG_EUSAGE);
	}

	if (!ctx.config_path) {
		const char *env = getenv("STOCKGATE_CONFIG");
		ctx.config_path = env && *env ? env : DEFAULT_CONFIG;
	}
	int cargc = argc - optind;
	char **cargv = argv + optind;

	if ((cmd->flags & NEEDS_CONFIG) && !asks_help(cargc, cargv)) {
		g_autofree char *err = NULL;
		st = sg_config_load(ctx.config_path, &ctx.cfg, &err);
		if (st != SG_OK) {
			/* A missing configuration is a configuration error for a command that needs
			 * one (sysexits: 78), not a missing input. */
			log_error("%s", err ? err : ctx.config_path);
			return sg_exit_code(SG_ECONFIG);
		}
		if (cmd->flags & CONNECTS)
			warn_plaintext(ctx.cfg);
	}

	/* glibc: optind = 0 reinitialises getopt_long for the command's own argv. */
	optind = 0;
	st = cmd->fn(&ctx, cargc, cargv);
	sg_config_free(ctx.cfg);
	fflush(stdout);
	if (ferror(stdout) && st == SG_OK) {
		log_error("standard output: write failed");
		st = SG_EIO;
	}
	return sg_exit_code(st);
}
