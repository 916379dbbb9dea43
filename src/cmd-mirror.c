/* cmd-mirror.c: `stockgate mirror ping`: whether the REST mirror answers and accepts a dealer's key. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd.h"
#include "log.h"
#include "mirror.h"
#include "util.h"

static const char usage_text[] =
	"usage: stockgate mirror ping [--key-file FILE]\n"
	"ping sends one warehouse.list to [mirror] url and says in plain words what is wrong:\n"
	"DNS, connection, TLS, timeout, an HTTP status, a refused key, an answer that is not the\n"
	"API's. With --key-file (a dealer's key on its first line; the file readable by its owner\n"
	"only, or - for standard input) the key is checked too; without it only the server is.\n"
	"Exit status: 0 ok, 65 the key is refused, 69 the server is unavailable, 78 no [mirror] url.\n";

/* Reads the key: the first line of path ("-": standard input), trimmed. */
static sg_status read_key(const char *path, char **out, char **err)
{
	g_autofree char *data = NULL;
	g_autoptr(GError) ge = NULL;
	struct stat sb;
	char *nl;

	*out = NULL;
	if (strcmp(path, "-") == 0) {
		char buf[512];
		if (!fgets(buf, sizeof buf, stdin))
			return sg_fail(err, SG_EDATA, "--key-file -: no key on standard input");
		data = g_strdup(buf);
		explicit_bzero(buf, sizeof buf);
	} else {
		if (stat(path, &sb) != 0)
			return sg_fail(err, SG_ENOINPUT, "%s: %s", path, g_strerror(errno));
		if (sb.st_mode & 077)
			return sg_fail(err, SG_ECONFIG,
				       "%s: the key file is readable by group or others: chmod 600 %s",
				       path, path);
		if (!g_file_get_contents(path, &data, NULL, &ge))
			return sg_fail(err, SG_ENOINPUT, "%s: %s", path, ge->message);
	}
	if ((nl = strpbrk(data, "\r\n")))
		*nl = '\0';
	sg_trim(data);
	if (!*data)
		return sg_fail(err, SG_EDATA, "%s: the key file is empty", path);
	*out = g_strdup(data);
	explicit_bzero(data, strlen(data));
	return SG_OK;
}

static sg_status ping(sg_ctx *ctx, const char *key_file)
{
	g_autofree char *err = NULL;
	char *key = NULL;
	sg_mirror *m = NULL;
	sg_status st;
	long n = -1;

	if (!ctx->cfg->mirror.url || !*ctx->cfg->mirror.url)
		return sg_cmd_fail(SG_ECONFIG, "[mirror] url is not set: the mirror is off; set it "
					       "in the [mirror] section of the config to ping it");
	if (key_file && (st = read_key(key_file, &key, &err)) != SG_OK)
		return sg_cmd_fail(st, err);
	st = sg_mirror_open(ctx->cfg, &m, &err);
	if (st == SG_OK)
		st = sg_mirror_ping(m, key, &n, &err);
	if (st == SG_OK) {
		if (key)
			printf("ok: %s answers and accepts the key; %ld warehouse%s on the server\n",
			       ctx->cfg->mirror.url, n, n == 1 ? "" : "s");
		else
			printf("ok: %s answers as the dealer API (no key checked: give --key-file)\n",
			       ctx->cfg->mirror.url);
	} else if (st == SG_EDATA) {
		g_autofree char *e = g_strdup_printf("%s; check the key against the dealer's "
						     "company page, then `stockgate dealer "
						     "rotate-key`",
						     err ? err : "the key is refused");
		g_clear_pointer(&err, g_free);
		err = g_steal_pointer(&e);
	}
	sg_mirror_close(m);
	if (key) {
		explicit_bzero(key, strlen(key));
		g_free(key);
	}
	if (st != SG_OK)
		return sg_cmd_fail(st == SG_ETEMP ? SG_EUNAVAIL : st, err);
	return SG_OK;
}

sg_status cmd_mirror(sg_ctx *ctx, int argc, char **argv)
{
	const char *key_file = NULL;
	const sg_opt opts[] = { { "key-file", 'k', .value = &key_file }, { NULL } };
	sg_status st;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return sg_cmd_usage(usage_text, SG_OK);
	if (argc < 2 || strcmp(argv[1], "ping") != 0)
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	/* Options follow the subcommand: parse from "ping" on (optind already reset by main). */
	if (!sg_cmd_options(argc - 1, argv + 1, "+", opts, usage_text, &st))
		return st;
	if (optind < argc - 1)
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	return ping(ctx, key_file);
}
