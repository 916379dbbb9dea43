/* cmd-dealer.c: `stockgate dealer add|list|show|remove|rotate-key|dev-mode`: the dealer registry. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "cmd.h"
#include "log.h"
#include "util.h"

static const char usage_text[] =
	"usage: stockgate dealer add ID --name NAME [--key KEY | --key-file FILE]\n"
	"       stockgate dealer list\n"
	"       stockgate dealer show ID\n"
	"       stockgate dealer remove ID\n"
	"       stockgate dealer rotate-key ID [--key KEY | --key-file FILE]\n"
	"       stockgate dealer dev-mode ID on|off\n"
	"Without a key, add and rotate-key generate 32 random hex digits and print them once:\n"
	"only their SHA-256 is stored.\n";

/* A fresh API key from the kernel's generator (GLib's g_random is not cryptographic). */
static char *generate_key(char **err)
{
	unsigned char buf[16];
	size_t got = 0;

	while (got < sizeof buf) {
		ssize_t n = getrandom(buf + got, sizeof buf - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sg_fail(err, SG_EIO, "getrandom: %s", g_strerror(errno));
			return NULL;
		}
		got += (size_t)n;
	}
	char *hex = g_malloc(2 * sizeof buf + 1);
	for (size_t i = 0; i < sizeof buf; i++)
		g_snprintf(hex + 2 * i, 3, "%02x", buf[i]);
	explicit_bzero(buf, sizeof buf);
	return hex;
}

/* A key as a dealer will send it: the first line of a body, so one line of visible text. */
static bool valid_key(const char *key)
{
	size_t n = strlen(key);

	if (n == 0 || n > 256 || !g_utf8_validate(key, -1, NULL))
		return false;
	for (const char *p = key; *p; p++)
		if ((unsigned char)*p < 0x21 || *p == 0x7f)
			return false;
	return true;
}

static sg_status read_key_file(const char *path, char **out, char **err)
{
	g_autofree char *text = NULL;
	g_autoptr(GError) gerr = NULL;
	gsize len = 0;

	if (!g_file_get_contents(path, &text, &len, &gerr))
		return sg_fail(err, gerr->code == G_FILE_ERROR_NOENT ? SG_ENOINPUT : SG_EIO,
			       "--key-file %s: %s", path, gerr->message);
	char *nl = strpbrk(text, "\r\n");
	if (nl)
		*nl = '\0';
	*out = g_strdup(sg_trim(text));
	explicit_bzero(text, len);
	return SG_OK;
}

/* The key for add/rotate-key: given, read, or generated (then *generated is set). */
static sg_status obtain_key(const char *key, const char *key_file, char **out, bool *generated,
			    char **err)
{
	sg_status st;

	*generated = false;
	if (key && key_file)
		return sg_fail(err, SG_EUSAGE, "give --key or --key-file, not both");
	if (key_file) {
		st = read_key_file(key_file, out, err);
		if (st != SG_OK)
			return st;
	} else if (key) {
		*out = g_strdup(key);
	} else {
		*out = generate_key(err);
		if (!*out)
			return SG_EIO;
		*generated = true;
		return SG_OK;
	}
	if (!valid_key(*out)) {
		g_clear_pointer(out, g_free);
		return sg_fail(err, SG_EUSAGE,
			       "the key must be 1 to 256 visible characters without spaces (it is "
			       "the first line of the dealer's messages)");
	}
	return SG_OK;
}

static sg_status no_dealer(const char *id, char **err)
{
	g_clear_pointer(err, g_free);
	return sg_fail(err, SG_ENOINPUT,
		       "dealer '%s': no such dealer; see `stockgate dealer list`", id);
}

sg_status cmd_dealer(sg_ctx *ctx, int argc, char **argv)
{
	const char *name = NULL, *key_arg = NULL, *key_file = NULL;
	const sg_opt opts[] = {
		{ "name", .value = &name },
		{ "key", .value = &key_arg },
		{ "key-file", .value = &key_file },
		{ NULL },
	};
	g_autofree char *err = NULL;
	char *key = NULL;
	bool generated = false;
	sg_store *store = NULL;
	sg_status st = SG_OK;

	if (!sg_cmd_options(argc, argv, "", opts, usage_text, &st))
		return st;
	int n = argc - optind;
	char **a = argv + optind;
	if (n < 1)
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	const char *sub = a[0];

	/* Check the shape of the command line before touching the store. */
	if (strcmp(sub, "add") == 0) {
		if (n != 2 || !name || !*name)
			return sg_cmd_usage(usage_text, SG_EUSAGE);
	} else if (strcmp(sub, "list") == 0) {
		if (n != 1)
			return sg_cmd_usage(usage_text, SG_EUSAGE);
	} else if (strcmp(sub, "show") == 0 || strcmp(sub, "remove") == 0 ||
		   strcmp(sub, "rotate-key") == 0) {
		if (n != 2)
			return sg_cmd_usage(usage_text, SG_EUSAGE);
	} else if (strcmp(sub, "dev-mode") == 0) {
		if (n != 3 || (strcmp(a[2], "on") != 0 && strcmp(a[2], "off") != 0))
			return sg_cmd_usage(usage_text, SG_EUSAGE);
	} else {
		log_error("dealer: unknown subcommand '%s'", sub);
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	}
	if ((key_arg || key_file) && strcmp(sub, "add") != 0 && strcmp(sub, "rotate-key") != 0)
		return sg_cmd_usage(usage_text, SG_EUSAGE);
	if (name && strcmp(sub, "add") != 0)
		return sg_cmd_usage(usage_text, SG_EUSAGE);

	if (strcmp(sub, "add") == 0 || strcmp(sub, "rotate-key") == 0) {
		st = obtain_key(key_arg, key_file, &key, &generated, &err);
		if (st == SG_EUSAGE) {
			log_error("dealer %s: %s", sub, err);
			return sg_cmd_usage(usage_text, SG_EUSAGE);
		}
		if (st != SG_OK)
			return sg_cmd_fail(st, err);
	}

	st = sg_ctx_store(ctx, &store);
	if (st != SG_OK)
		goto out;

	if (strcmp(sub, "add") == 0) {
		st = sg_dealer_add(store, a[1], name, key, &err);
		if (st != SG_OK)
			goto out;
		if (generated)
			printf("%s\n", key);
		log_info("dealer %s added%s", a[1],
			 generated ? "; its key is printed above, once: give it to the dealer" : "");
	} else if (strcmp(sub, "list") == 0) {
		g_autoptr(GPtrArray) list = NULL;
		st = sg_dealer_list(store, &list, &err);
		if (st != SG_OK)
			goto out;
		for (guint i = 0; i < list->len; i++) {
			const sg_dealer *d = g_ptr_array_index(list, i);
			printf("%s\t%s\t%s\n", d->id, d->name ? d->name : "",
			       d->dev_mode ? "dev-mode" : "live");
		}
	} else if (strcmp(sub, "show") == 0) {
		g_autoptr(sg_dealer) d = NULL;
		g_autoptr(GPtrArray) users = NULL;
		st = sg_dealer_get(store, a[1], &d, &err);
		if (st == SG_ENOINPUT)
			st = no_dealer(a[1], &err);
		if (st != SG_OK)
			goto out;
		g_autofree char *created = sg_iso_time(d->created);
		printf("id: %s\nname: %s\ndev-mode: %s\ncreated: %s\n", d->id, d->name ? d->name : "",
		       d->dev_mode ? "on" : "off", created ? created : "");
		st = sg_user_list(store, d->id, &users, &err);
		if (st != SG_OK)
			goto out;
		for (guint i = 0; i < users->len; i++) {
			const sg_user *u = g_ptr_array_index(users, i);
			g_autofree char *roles = sg_roles_to_string(u->roles);
			printf("user: %s (%s)\n", u->email, roles);
		}
	} else if (strcmp(sub, "remove") == 0) {
		g_autoptr(sg_dealer) d = NULL;
		st = sg_dealer_get(store, a[1], &d, &err);
		if (st == SG_ENOINPUT)
			st = no_dealer(a[1], &err);
		if (st == SG_OK)
			st = sg_dealer_remove(store, a[1], &err);
		if (st == SG_OK)
			log_info("dealer %s removed with its users, warehouses and remains", a[1]);
	} else if (strcmp(sub, "rotate-key") == 0) {
		g_autoptr(sg_dealer) d = NULL;
		st = sg_dealer_get(store, a[1], &d, &err);
		if (st == SG_ENOINPUT)
			st = no_dealer(a[1], &err);
		if (st == SG_OK)
			st = sg_dealer_set_key(store, a[1], key, &err);
		if (st != SG_OK)
			goto out;
		if (generated)
			printf("%s\n", key);
		log_info("dealer %s: new key set; the old one no longer works", a[1]);
	} else if (strcmp(sub, "dev-mode") == 0) {
		g_autoptr(sg_dealer) d = NULL;
		st = sg_dealer_get(store, a[1], &d, &err);
		if (st == SG_ENOINPUT)
			st = no_dealer(a[1], &err);
		if (st == SG_OK)
			st = sg_dealer_set_dev_mode(store, a[1], strcmp(a[2], "on") == 0, &err);
		if (st == SG_OK)
			log_info("dealer %s: development mode %s", a[1], a[2]);
	}
out:
	if (store)
		sg_store_close(store);
	if (key) {
		explicit_bzero(key, strlen(key));
		g_free(key);
	}
	if (st != SG_OK)
		return sg_cmd_fail(st, err);
	return SG_OK;
}
