/* cmd-config.c: `stockgate config check [--connect]`: the configuration as start-up sees it, and
 * with --connect whether every peer it names answers. */
#include <curl/curl.h>
#include <string.h>

#include "cmd.h"
#include "log.h"
#include "mirror.h"
#include "probe.h"
#include "transport.h"

static const char usage_text[] =
	"usage: stockgate config check [--connect]\n"
	"Loads the configuration with every check start-up makes (settings, secrets' modes, TLS,\n"
	"URLs, the report sender) and prints the effective settings, defaults included, secrets\n"
	"shown only as (set). With --connect it also logs in to the IMAP source (and lists the\n"
	"folders), greets and authenticates to the SMTP relay, asks the mirror for its warehouse\n"
	"list without a key, and asks each configured vendor API a free question (vin:\n"
	"get_balance; frame: checkqueue; price: get_price_info of oem 0, never get_price; rental:\n"
	"generate_token, no contract call), one line a peer: what works, or why not (DNS, refused,\n"
	"timeout, certificate, TLS, login, folder, HTTP). It never sends a message and never makes\n"
	"a charged call.\n"
	"Exit status: 0 all good, 78 the configuration is wrong (the line at fault on standard\n"
	"error), 69 a peer does not answer as it should.\n";

static void print_setting(void *ud, const char *section, const char *key, const char *value,
			  bool secret)
{
	const char **cur = ud;

	if (!*cur || strcmp(*cur, section) != 0) {
		printf("%s[%s]\n", *cur ? "\n" : "", section);
		*cur = section;
	}
	if (value)
		printf("%s = %s\n", key, value);
	else
		printf("#%s =\n", key);
}

/* What opening the IMAP source refuses before it connects: a login inside the URL. */
static sg_status source_url_check(const sg_config *cfg, char **err)
{
	const char *url = cfg->source.url;
	char *user = NULL;
	CURLU *h;
	bool has_user;

	if (!url || g_ascii_strncasecmp(url, "maildir:", 8) == 0)
		return SG_OK;
	h = curl_url();
	has_user = curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
		   curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_OK;
	curl_free(user);
	curl_url_cleanup(h);
	if (has_user)
		return sg_fail(err, SG_ECONFIG, "[source] url: put the user name in 'username' and "
			       "the password in 'password_file', not in the URL");
	return SG_OK;
}

/* The checks start-up makes after loading the file: what opening the source, the report
 * transport and the mirror refuse, without connecting to any. */
static sg_status open_checks(const sg_config *cfg, char **err)
{
	sg_transport *t = NULL;
	sg_mirror *m = NULL;
	sg_status st = source_url_check(cfg, err);

	if (st != SG_OK)
		return st;
	st = sg_transport_open(cfg, &t, err);

	sg_transport_close(t);
	if (st != SG_OK)
		return st;
	st = sg_mirror_open(cfg, &m, err);
	sg_mirror_close(m);
	return st;
}

static sg_status connect_peers(const sg_config *cfg)
{
	sg_status worst = SG_OK;

	for (const sg_peer *p = sg_peers; p->name; p++) {
		g_autofree char *said = NULL, *err = NULL;
		const char *off = p->off(cfg);
		sg_status st;

		if (off) {
			printf("%s: not checked: %s\n", p->name, off);
			continue;
		}
		st = p->check(cfg, &said, &err);
		if (st == SG_OK) {
			printf("%s: ok: %s\n", p->name, said);
		} else {
			printf("%s: failed: %s\n", p->name, err ? err : "unknown error");
			if (worst != SG_ECONFIG)
				worst = st == SG_ECONFIG ? SG_ECONFIG : SG_EUNAVAIL;
		}
		fflush(stdout);
	}
	return worst;
}

sg_status cmd_config(sg_ctx *ctx, int argc, char **argv)
{
	bool do_connect = false;
	const sg_opt opts[] = { { "connect", .flag = &do_connect }, { NULL } };
	g_autoptr(sg_config) cfg = NULL;
	g_autofree char *err = NULL;
	const char *section = NULL;
	sg_status st;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return sg_cmd_usage(usage_text, SG_OK);
	if (argc < 2 || strcmp(argv[1], "check") != 0)
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	if (!sg_cmd_options(argc - 1, argv + 1, "", opts, usage_text, &st))
		return st;
	if (optind < argc - 1)
		return sg_cmd_usage(usage_text, SG_EUSAGE);

	/* A missing file is a configuration error here too, as for every command needing one. */
	st = sg_config_load(ctx->config_path, &cfg, &err);
	if (st == SG_OK)
		st = open_checks(cfg, &err);
	if (st != SG_OK) {
		log_error("%s", err ? err : ctx->config_path);
		log_error("%s: the configuration is not valid", ctx->config_path);
		return SG_ECONFIG;
	}
	printf("# %s: the configuration is valid; the effective settings:\n", ctx->config_path);
	sg_config_each(cfg, print_setting, &section);
	if (!do_connect)
		return SG_OK;
	printf("\n# --connect: each peer (nothing is sent, nothing is charged)\n");
	return connect_peers(cfg);
}
