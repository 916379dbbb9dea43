/* cmd-user.c: `stockgate user add|list|remove`: who may send files, for which dealer, with which roles. */
#include <getopt.h>
#include <string.h>

#include "cmd.h"
#include "log.h"

static const char usage_text[] =
	"usage: stockgate user add EMAIL --dealer ID [--role ROLE]...\n"
	"       stockgate user list [--dealer ID]\n"
	"       stockgate user remove EMAIL\n"
	"Roles: remains_upload (the default), batch_vin, batch_frame, batch_price, batch_rental.\n"
	"Adding a user that exists sets its dealer and roles.\n";

static const char valid_roles[] =
	"remains_upload, batch_vin, batch_frame, batch_price, batch_rental";

/* An address as it will be compared with From: one addr-spec, no display name, no blanks. */
static bool valid_email(const char *s)
{
	const char *at = strchr(s, '@');

	if (!at || at == s || !at[1] || strchr(at + 1, '@') || strlen(s) > 254)
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || strchr("<>()[],;:\"\\", *p) || *p == 0x7f)
			return false;
	return true;
}

sg_status cmd_user(sg_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dealer", required_argument, NULL, 'd' },
		{ "role", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dealer = NULL;
	unsigned roles = 0;
	bool role_given = false;
	g_autofree char *err = NULL;
	sg_store *store = NULL;
	sg_status st = SG_OK;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dealer = optarg;
			break;
		case 'r': {
			unsigned r = sg_role_from_name(optarg);
			if (!r) {
				log_error("user: unknown role '%s'; the roles are %s", optarg,
					  valid_roles);
				return sg_cmd_usage(usage_text, SG_EUSAGE);
			}
			roles |= r;
			role_given = true;
			break;
		}
		case 'h':
			return sg_cmd_usage(usage_text, SG_OK);
		default:
			return sg_cmd_usage(usage_text, SG_EUSAGE);
		}
	}
	int n = argc - optind;
	char **a = argv + optind;
	if (n < 1)
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	const char *sub = a[0];
	g_autofree char *email = n >= 2 ? g_utf8_strdown(a[1], -1) : NULL;

	if (strcmp(sub, "add") == 0) {
		if (n != 2 || !dealer)
			return sg_cmd_usage(usage_text, SG_EUSAGE);
		if (!valid_email(email)) {
			log_error("user add: '%s' is not a mail address; give the bare address, "
				  "e.g. orders@dealer.example",
				  a[1]);
			return SG_EUSAGE;
		}
		if (!role_given)
			roles = SG_ROLE_REMAINS_UPLOAD;
	} else if (strcmp(sub, "list") == 0) {
		if (n != 1 || role_given)
			return sg_cmd_usage(usage_text, SG_EUSAGE);
	} else if (strcmp(sub, "remove") == 0) {
		if (n != 2 || dealer || role_given)
			return sg_cmd_usage(usage_text, SG_EUSAGE);
	} else {
		log_error("user: unknown subcommand '%s'", sub);
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	}

	st = sg_ctx_store(ctx, &store);
	if (st != SG_OK)
		return st;

	if (strcmp(sub, "add") == 0) {
		g_autoptr(sg_dealer) d = NULL;
		st = sg_dealer_get(store, dealer, &d, &err);
		if (st == SG_ENOINPUT) {
			g_clear_pointer(&err, g_free);
			st = sg_fail(&err, SG_ENOINPUT,
				     "user add: dealer '%s': no such dealer; add it first with "
				     "`stockgate dealer add`",
				     dealer);
		}
		if (st == SG_OK)
			st = sg_user_add(store, email, dealer, roles, &err);
		if (st == SG_OK) {
			g_autofree char *names = sg_roles_to_string(roles);
			log_info("user %s: dealer %s, roles %s", email, dealer, names);
		}
	} else if (strcmp(sub, "list") == 0) {
		g_autoptr(GPtrArray) list = NULL;
		st = sg_user_list(store, dealer, &list, &err);
		for (guint i = 0; st == SG_OK && i < list->len; i++) {
			const sg_user *u = g_ptr_array_index(list, i);
			g_autofree char *names = sg_roles_to_string(u->roles);
			printf("%s\t%s\t%s\n", u->email, u->dealer, names);
		}
	} else {
		g_autoptr(sg_user) u = NULL;
		st = sg_user_get(store, email, &u, &err);
		if (st == SG_ENOINPUT) {
			g_clear_pointer(&err, g_free);
			st = sg_fail(&err, SG_ENOINPUT,
				     "user remove: '%s': no such user; see `stockgate user list`",
				     email);
		}
		if (st == SG_OK)
			st = sg_user_remove(store, email, &err);
		if (st == SG_OK)
			log_info("user %s removed", email);
	}
	sg_store_close(store);
	if (st != SG_OK)
		return sg_cmd_fail(st, err);
	return SG_OK;
}
