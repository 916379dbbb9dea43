/* config.c: loads the configuration file (SPEC 4) with GKeyFile and checks every group and key. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

/* What kind of value a key holds; each kind has its own parser and error message. */
enum kind {
	K_STR,    /* free text; empty = unset */
	K_ADDR,   /* a mail address (from, bcc): no line breaks */
	K_PATH,   /* a path; empty = unset */
	K_INT,    /* a whole number within [min, max] */
	K_LONG,   /* the same, stored as long */
	K_SIZE,   /* 25M, 64K, 1G or bytes */
	K_DUR,    /* 90, 30s, 15m, 24h, 7d */
	K_BOOL,   /* true/false, yes/no, on/off, 1/0 */
	K_TLS,    /* tls = on|off */
	K_LANG,   /* ru | en */
	K_TYPES,  /* a list of MIME types */
	K_URL,    /* checked per section after all keys are read */
	K_SECRET, /* inline secret: the file itself must be private */
	K_SECRET_FILE, /* path of a file holding the secret; the secret goes to `off` */
};

/* Which URL schemes a section accepts. */
enum urls { U_NONE, U_SOURCE, U_REPORT, U_HTTP };

struct keydef {
	const char *key;
	enum kind kind;
	size_t off; /* offset of the field in sg_config */
	long long min, max;
};

struct groupdef {
	const char *name;
	enum urls urls;
	size_t tls_off; /* offset of the section's sg_tls, or 0 when none */
	const struct keydef *keys;
};

#define F(field) offsetof(sg_config, field)
#define TLS_KEYS(sec)                                                                              \
	{ "tls", K_TLS, F(sec.tls.off), 0, 0 }, { "tls_verify", K_BOOL, F(sec.tls.verify), 0, 0 },   \
	{                                                                                          \
		"ca_file", K_PATH, F(sec.tls.ca_file), 0, 0                                        \
	}

static const struct keydef source_keys[] = {
	{ "url", K_URL, F(source.url), 0, 0 },
	{ "username", K_STR, F(source.username), 0, 0 },
	{ "password", K_SECRET, F(source.password), 0, 0 },
	{ "password_file", K_SECRET_FILE, F(source.password), 0, 0 },
	{ "oauth2_token_command", K_STR, F(source.oauth2_token_command), 0, 0 },
	{ "processed_folder", K_STR, F(source.processed_folder), 0, 0 },
	{ "rejected_folder", K_STR, F(source.rejected_folder), 0, 0 },
	{ "failed_folder", K_STR, F(source.failed_folder), 0, 0 },
	{ "poll_interval", K_INT, F(source.poll_interval), 1, 86400 },
	{ "timeout", K_INT, F(source.timeout), 1, 3600 },
	{ "max_attempts", K_INT, F(source.max_attempts), 1, 1000000 },
	{ "max_defer", K_DUR, F(source.max_defer), 0, 0 },
	{ "retry_interval", K_DUR, F(source.retry_interval), 0, 0 },
	{ "max_messages_per_poll", K_INT, F(source.max_messages_per_poll), 1, 10000000 },
	{ "max_age", K_DUR, F(source.max_age), 0, 0 },
	TLS_KEYS(source),
	{ NULL, 0, 0, 0, 0 },
};
static const struct keydef report_keys[] = {
	{ "url", K_URL, F(report.url), 0, 0 },
	{ "username", K_STR, F(report.username), 0, 0 },
	{ "password", K_SECRET, F(report.password), 0, 0 },
	{ "password_file", K_SECRET_FILE, F(report.password), 0, 0 },
	{ "oauth2_token_command", K_STR, F(report.oauth2_token_command), 0, 0 },
	{ "from", K_ADDR, F(report.from), 0, 0 },
	{ "language", K_LANG, F(report.language), 0, 0 },
	{ "bcc", K_ADDR, F(report.bcc), 0, 0 },
	{ "timeout", K_INT, F(report.timeout), 1, 3600 },
	{ "max_attachment_size", K_SIZE, F(report.max_attachment_size), 0, 0 },
	TLS_KEYS(report),
	{ NULL, 0, 0, 0, 0 },
};
static const struct keydef store_keys[] = {
	{ "path", K_PATH, F(store.path), 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct keydef mirror_keys[] = {
	{ "url", K_URL, F(mirror.url), 0, 0 },
	{ "timeout", K_INT, F(mirror.timeout), 1, 3600 },
	{ "batch_size", K_INT, F(mirror.batch_size), 1, 100000 },
	TLS_KEYS(mirror),
	{ NULL, 0, 0, 0, 0 },
};
static const struct keydef limits_keys[] = {
	{ "max_message_size", K_SIZE, F(limits.max_message_size), 0, 0 },
	{ "max_attachments", K_INT, F(limits.max_attachments), 1, 100000 },
	{ "max_rows", K_LONG, F(limits.max_rows), 1, 1000000000 },
	{ "max_field_length", K_INT, F(limits.max_field_length), 1, 1048576 },
	{ "max_mime_depth", K_INT, F(limits.max_mime_depth), 1, 1000 },
	{ "max_parts", K_INT, F(limits.max_parts), 1, 100000 },
	{ "max_header_size", K_SIZE, F(limits.max_header_size), 0, 0 },
	{ "parse_cpu_seconds", K_INT, F(limits.parse_cpu_seconds), 1, 3600 },
	{ "allowed_types", K_TYPES, F(limits.allowed_types), 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct keydef security_keys[] = {
	{ "trusted_authserv_id", K_STR, F(security.trusted_authserv_id), 0, 0 },
	{ NULL, 0, 0, 0, 0 },
};
static const struct keydef vin_keys[] = {
	{ "url", K_URL, F(vin.url), 0, 0 },
	{ "token", K_SECRET, F(vin.token), 0, 0 },
	{ "token_file", K_SECRET_FILE, F(vin.token), 0, 0 },
	{ "callback_secret", K_SECRET, F(vin.callback_secret), 0, 0 },
	{ "callback_secret_file", K_SECRET_FILE, F(vin.callback_secret), 0, 0 },
	{ "report_wait", K_DUR, F(vin.report_wait), 0, 0 },
	TLS_KEYS(vin),
	{ NULL, 0, 0, 0, 0 },
};
static const struct keydef frame_keys[] = {
	{ "url", K_URL, F(frame.url), 0, 0 },
	{ "key", K_SECRET, F(frame.key), 0, 0 },
	{ "key_file", K_SECRET_FILE, F(frame.key), 0, 0 },
	TLS_KEYS(frame),
	{ NULL, 0, 0, 0, 0 },
};
static const struct keydef price_keys[] = {
	{ "url", K_URL, F(price.url), 0, 0 },
	{ "s_sn", K_SECRET, F(price.s_sn), 0, 0 },
	{ "s_sn_file", K_SECRET_FILE, F(price.s_sn), 0, 0 },
	{ "max_cost", K_LONG, F(price.max_cost), 0, 1000000000 },
	TLS_KEYS(price),
	{ NULL, 0, 0, 0, 0 },
};
static const struct keydef rental_keys[] = {
	{ "url", K_URL, F(rental.url), 0, 0 },
	{ "login", K_STR, F(rental.login), 0, 0 },
	{ "password", K_SECRET, F(rental.password), 0, 0 },
	{ "password_file", K_SECRET_FILE, F(rental.password), 0, 0 },
	{ "time_zone", K_STR, F(rental.time_zone), 0, 0 },
	TLS_KEYS(rental),
	{ NULL, 0, 0, 0, 0 },
};

static const struct keydef serve_keys[] = {
	{ "listen", K_STR, F(serve.listen), 0, 0 },
	{ "public_url", K_STR, F(serve.public_url), 0, 0 },
	{ "max_body", K_SIZE, F(serve.max_body), 0, 0 },
	{ "max_connections", K_INT, F(serve.max_connections), 1, 100000 },
	{ "timeout", K_INT, F(serve.timeout), 1, 3600 },
	{ NULL, 0, 0, 0, 0 },
};

static const struct groupdef groups[] = {
	{ "source", U_SOURCE, F(source.tls), source_keys },
	{ "report", U_REPORT, F(report.tls), report_keys },
	{ "store", U_NONE, 0, store_keys },
	{ "mirror", U_HTTP, F(mirror.tls), mirror_keys },
	{ "limits", U_NONE, 0, limits_keys },
	{ "security", U_NONE, 0, security_keys },
	{ "vin", U_HTTP, F(vin.tls), vin_keys },
	{ "frame", U_HTTP, F(frame.tls), frame_keys },
	{ "price", U_HTTP, F(price.tls), price_keys },
	{ "rental", U_HTTP, F(rental.tls), rental_keys },
	{ "serve", U_NONE, 0, serve_keys },
	{ NULL, U_NONE, 0, NULL },
};

/* The attachment types of the seed (SPEC 5.3). */
static const char *const default_types[] = {
	"text/comma-separated-values", "text/csv", "application/csv", "application/excel",
	"application/vnd.ms-excel", "application/vnd.msexcel", "text/anytext",
	"application/octet-stream", NULL,
};

#define FIELD(cfg, off, type) ((type *)((char *)(cfg) + (off)))

static void tls_defaults(sg_tls *t)
{
	t->verify = true;
	t->off = false;
	t->ca_file = NULL;
}

sg_config *sg_config_defaults(void)
{
	sg_config *c = g_new0(sg_config, 1);

	c->source.processed_folder = g_strdup("Processed");
	c->source.rejected_folder = g_strdup("Rejected");
	c->source.failed_folder = g_strdup("Failed");
	c->source.poll_interval = 60;
	c->source.timeout = 60;
	c->report.timeout = 60;
	c->source.max_attempts = 10;
	c->source.max_defer = 24 * 3600;
	c->source.retry_interval = 60;
	c->source.max_messages_per_poll = 500;
	c->source.max_age = 7 * 24 * 3600;
	c->report.url = g_strdup("dir:/var/spool/stockgate/outbox");
	c->report.from = g_strdup_printf("\"Stock API\" <stockgate@%s>", g_get_host_name());
	c->report.language = g_strdup("ru");
	c->store.path = g_strdup("/var/lib/stockgate/stockgate.db");
	c->mirror.timeout = 30;
	c->mirror.batch_size = 500;
	c->limits.max_message_size = 25 * 1024 * 1024;
	c->limits.max_attachments = 20;
	c->limits.max_rows = 1000000;
	c->limits.max_field_length = 1024;
	c->limits.max_mime_depth = 10;
	c->limits.max_parts = 100;
	c->limits.max_header_size = 64 * 1024;
	c->limits.parse_cpu_seconds = 10;
	c->vin.report_wait = 48 * 3600;
	c->report.max_attachment_size = 10 * 1024 * 1024;
	c->serve.listen = g_strdup("127.0.0.1:8025");
	c->serve.max_body = 25 * 1024 * 1024;
	c->serve.max_connections = 64;
	c->serve.timeout = 60;
	c->limits.allowed_types = g_strdupv((char **)default_types);
	for (const struct groupdef *g = groups; g->name; g++)
		if (g->tls_off)
			tls_defaults(FIELD(c, g->tls_off, sg_tls));
	return c;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		g_free(s);
	}
}

static void tls_free(sg_tls *t)
{
	g_free(t->ca_file);
}

void sg_config_free(sg_config *c)
{
	if (!c)
		return;
	g_free(c->path);
	g_free(c->source.url);
	g_free(c->source.username);
	free_secret(c->source.password);
	g_free(c->source.oauth2_token_command);
	g_free(c->source.processed_folder);
	g_free(c->source.rejected_folder);
	g_free(c->source.failed_folder);
	tls_free(&c->source.tls);
	g_free(c->report.url);
	g_free(c->report.username);
	free_secret(c->report.password);
	g_free(c->report.oauth2_token_command);
	g_free(c->report.from);
	g_free(c->report.language);
	g_free(c->report.bcc);
	tls_free(&c->report.tls);
	g_free(c->store.path);
	g_free(c->mirror.url);
	tls_free(&c->mirror.tls);
	g_strfreev(c->limits.allowed_types);
	g_free(c->security.trusted_authserv_id);
	g_free(c->vin.url);
	free_secret(c->vin.token);
	free_secret(c->vin.callback_secret);
	g_free(c->serve.listen);
	g_free(c->serve.public_url);
	tls_free(&c->vin.tls);
	g_free(c->frame.url);
	free_secret(c->frame.key);
	tls_free(&c->frame.tls);
	g_free(c->price.url);
	free_secret(c->price.s_sn);
	tls_free(&c->price.tls);
	g_free(c->rental.url);
	g_free(c->rental.login);
	free_secret(c->rental.password);
	g_free(c->rental.time_zone);
	tls_free(&c->rental.tls);
	g_free(c);
}

/* The state of one load: the file's text (for line numbers) and the errors found so far. */
struct loader {
	const char *path;
	char **lines;
	GString *errors;
	int nerrors;
	bool has_inline_secret;
	const char *inline_secret_group, *inline_secret_key;
};

static char *trimmed_copy(const char *s, size_t n)
{
	while (n > 0 && g_ascii_isspace(*s))
		s++, n--;
	while (n > 0 && g_ascii_isspace(s[n - 1]))
		n--;
	return g_strndup(s, n);
}

/*
 * The line (from 1) of "[group]" (key NULL) or of "key =" inside that group; GKeyFile keeps the
 * last value of a repeated key, so the last match is the one at fault. 0 when not found.
 */
static int find_line(const struct loader *L, const char *group, const char *key)
{
	g_autofree char *cur = NULL;
	int found = 0;

	for (int i = 0; L->lines[i]; i++) {
		const char *s = L->lines[i];
		while (g_ascii_isspace(*s))
			s++;
		if (*s == '#' || *s == '\0')
			continue;
		if (*s == '[') {
			const char *end = strchr(s, ']');
			g_free(cur);
			cur = end ? g_strndup(s + 1, (size_t)(end - s - 1)) : NULL;
			if (!key && cur && strcmp(cur, group) == 0)
				return i + 1;
			continue;
		}
		if (!key || !cur || strcmp(cur, group) != 0)
			continue;
		const char *eq = strchr(s, '=');
		if (!eq)
			continue;
		g_autofree char *k = trimmed_copy(s, (size_t)(eq - s));
		if (strcmp(k, key) == 0)
			found = i + 1;
	}
	return found;
}

static void add_error(struct loader *L, const char *group, const char *key, const char *fmt, ...)
	G_GNUC_PRINTF(4, 5);

/* Records "FILE:LINE: [group] key: message". */
static void add_error(struct loader *L, const char *group, const char *key, const char *fmt, ...)
{
	va_list ap;
	int line = group ? find_line(L, group, key) : 0;

	if (L->errors->len)
		g_string_append_c(L->errors, '\n');
	g_string_append(L->errors, L->path);
	if (line)
		g_string_append_printf(L->errors, ":%d", line);
	g_string_append(L->errors, ": ");
	if (group && key)
		g_string_append_printf(L->errors, "[%s] %s: ", group, key);
	else if (group)
		g_string_append_printf(L->errors, "[%s]: ", group);
	va_start(ap, fmt);
	g_string_append_vprintf(L->errors, fmt, ap);
	va_end(ap);
	L->nerrors++;
}

/* GKeyFile's own syntax errors carry no line: find the first line it cannot have accepted. */
static void syntax_error(struct loader *L, const GError *gerr)
{
	bool in_group = false;

	for (int i = 0; L->lines[i]; i++) {
		const char *s = L->lines[i];
		while (g_ascii_isspace(*s))
			s++;
		if (*s == '#' || *s == '\0')
			continue;
		if (*s == '[') {
			if (!strchr(s, ']')) {
				g_string_append_printf(L->errors,
						       "%s:%d: a section header lacks its ']': write "
						       "it as [name]",
						       L->path, i + 1);
				return;
			}
			in_group = true;
			continue;
		}
		if (!strchr(s, '=')) {
			g_string_append_printf(L->errors,
					       "%s:%d: not a setting: write 'key = value', or start "
					       "a comment with '#'",
					       L->path, i + 1);
			return;
		}
		if (!in_group) {
			g_string_append_printf(L->errors,
					       "%s:%d: a setting outside any section: put it under "
					       "its [section]",
					       L->path, i + 1);
			return;
		}
	}
	g_string_append_printf(L->errors, "%s: %s: fix the syntax (key = value under [section])",
			       L->path, gerr->message);
}

static bool parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1", NULL };
	static const char *const no[] = { "false", "no", "off", "0", NULL };

	for (int i = 0; yes[i]; i++)
		if (g_ascii_strcasecmp(v, yes[i]) == 0)
			return *out = true, true;
	for (int i = 0; no[i]; i++)
		if (g_ascii_strcasecmp(v, no[i]) == 0)
			return *out = false, true;
	return false;
}

/* A secret file: private to its owner, non-empty; the secret is its first line, trimmed. */
static char *read_secret_file(struct loader *L, const char *group, const char *key,
			      const char *file)
{
	struct stat sb;
	g_autofree char *path = NULL;
	g_autofree char *text = NULL;
	g_autoptr(GError) gerr = NULL;
	gsize len = 0;

	if (g_path_is_absolute(file)) {
		path = g_strdup(file);
	} else {
		/* Relative to the config file, so that a config and its secrets move together. */
		g_autofree char *dir = g_path_get_dirname(L->path);
		path = g_build_filename(dir, file, NULL);
	}
	if (stat(path, &sb) != 0) {
		add_error(L, group, key, "cannot read '%s': %s; create it (mode 600) or fix the path",
			  path, g_strerror(errno));
		return NULL;
	}
	if (sb.st_mode & 077) {
		add_error(L, group, key,
			  "'%s' can be read by group or others; run: chmod 600 '%s'", path, path);
		return NULL;
	}
	if (!g_file_get_contents(path, &text, &len, &gerr)) {
		add_error(L, group, key, "cannot read '%s': %s", path, gerr->message);
		return NULL;
	}
	char *nl = strpbrk(text, "\r\n");
	if (nl)
		*nl = '\0';
	char *secret = g_strdup(sg_trim(text));
	explicit_bzero(text, len);
	if (!*secret) {
		g_free(secret);
		add_error(L, group, key, "'%s' is empty; put the secret on its first line", path);
		return NULL;
	}
	return secret;
}

/* Parses one key's value into the config; errors never quote a secret. */
static void set_value(struct loader *L, sg_config *c, const struct groupdef *g,
		      const struct keydef *k, const char *v)
{
	switch (k->kind) {
	case K_STR:
	case K_PATH:
	case K_URL: {
		char **dst = FIELD(c, k->off, char *);
		g_free(*dst);
		*dst = *v ? g_strdup(v) : NULL;
		if (k->kind == K_STR && strpbrk(v, "\r\n"))
			add_error(L, g->name, k->key, "a line break is not allowed here");
		/* A CA bundle that cannot be read would only fail later, at the first connection. */
		if (k->kind == K_PATH && *v && strcmp(k->key, "ca_file") == 0 && access(v, R_OK) != 0)
			add_error(L, g->name, k->key, "cannot read '%s': %s; fix the path", v,
				  g_strerror(errno));
		return;
	}
	case K_ADDR: {
		char **dst = FIELD(c, k->off, char *);
		g_free(*dst);
		*dst = NULL;
		if (!*v)
			return;
		if (strpbrk(v, "\r\n") || !strchr(v, '@')) {
			add_error(L, g->name, k->key,
				  "'%s' is not a mail address; write e.g. \"Stock API\" "
				  "<api@example.com>",
				  v);
			return;
		}
		*dst = g_strdup(v);
		return;
	}
	case K_INT:
	case K_LONG: {
		gint64 n = 0;
		if (!g_ascii_string_to_signed(v, 10, k->min, k->max, &n, NULL)) {
			add_error(L, g->name, k->key,
				  "'%s' is not a whole number from %lld to %lld; write one", v,
				  k->min, k->max);
			return;
		}
		if (k->kind == K_INT)
			*FIELD(c, k->off, int) = (int)n;
		else
			*FIELD(c, k->off, long) = (long)n;
		return;
	}
	case K_SIZE: {
		gint64 n = sg_parse_size(v);
		if (n <= 0) {
			add_error(L, g->name, k->key,
				  "'%s' is not a size; write bytes or a number with K, M or G "
				  "(e.g. 25M)",
				  v);
			return;
		}
		*FIELD(c, k->off, gint64) = n;
		return;
	}
	case K_DUR: {
		gint64 n = sg_parse_duration(v);
		if (n < 0) {
			add_error(L, g->name, k->key,
				  "'%s' is not a duration; write seconds or a number with s, m, h "
				  "or d (e.g. 24h, 7d)",
				  v);
			return;
		}
		*FIELD(c, k->off, gint64) = n;
		return;
	}
	case K_BOOL:
	case K_TLS: {
		bool b;
		if (!parse_bool(v, &b)) {
			add_error(L, g->name, k->key, "'%s' is not %s", v,
				  k->kind == K_TLS ? "on or off" : "true or false");
			return;
		}
		/* Certificates are always verified (SPEC 4): the key exists for configs that say
		 * so explicitly, and a `false` is refused rather than silently ignored. */
		if (k->kind == K_BOOL && !b && strcmp(k->key, "tls_verify") == 0) {
			add_error(L, g->name, k->key,
				  "certificates are always verified; to trust a private CA, give "
				  "it with ca_file");
			return;
		}
		/* `tls = off` sets sg_tls.off, so the meaning is inverted. */
		*FIELD(c, k->off, bool) = k->kind == K_TLS ? !b : b;
		return;
	}
	case K_LANG: {
		if (strcmp(v, "ru") != 0 && strcmp(v, "en") != 0) {
			add_error(L, g->name, k->key, "'%s' is not a report language; write ru or en",
				  v);
			return;
		}
		char **dst = FIELD(c, k->off, char *);
		g_free(*dst);
		*dst = g_strdup(v);
		return;
	}
	case K_TYPES: {
		g_auto(GStrv) parts = g_strsplit_set(v, ",;", -1);
		GPtrArray *types = g_ptr_array_new();
		for (int i = 0; parts[i]; i++) {
			g_autofree char *t = g_ascii_strdown(g_strstrip(parts[i]), -1);
			if (!*t)
				continue;
			const char *slash = strchr(t, '/');
			if (!slash || slash == t || !slash[1] || strpbrk(t, " \t\"")) {
				add_error(L, g->name, k->key,
					  "'%s' is not a MIME type; write type/subtype, separated "
					  "by commas",
					  t);
				continue;
			}
			g_ptr_array_add(types, g_steal_pointer(&t));
		}
		g_ptr_array_add(types, NULL);
		char ***dst = FIELD(c, k->off, char **);
		g_strfreev(*dst);
		*dst = (char **)g_ptr_array_free(types, FALSE);
		return;
	}
	case K_SECRET: {
		char **dst = FIELD(c, k->off, char *);
		if (!*v) {
			add_error(L, g->name, k->key, "empty; give the secret, or remove the line");
			return;
		}
		free_secret(*dst);
		*dst = g_strdup(v);
		if (!L->has_inline_secret) {
			L->has_inline_secret = true;
			L->inline_secret_group = g->name;
			L->inline_secret_key = k->key;
		}
		return;
	}
	case K_SECRET_FILE: {
		char **dst = FIELD(c, k->off, char *);
		if (!*v) {
			add_error(L, g->name, k->key, "empty; give the path of the secret file");
			return;
		}
		char *s = read_secret_file(L, g->name, k->key, v);
		if (s) {
			free_secret(*dst);
			*dst = s;
		}
		return;
	}
	}
}

static bool url_has(const char *url, const char *prefix)
{
	return g_ascii_strncasecmp(url, prefix, strlen(prefix)) == 0;
}

/* Whether what follows "scheme://" names a host. */
static bool url_host(const char *url)
{
	const char *p = strstr(url, "://");
	return p && p[3] && p[3] != '/' && !strpbrk(url, " \t\r\n");
}

static void check_url(struct loader *L, sg_config *c, const struct groupdef *g)
{
	const struct keydef *k = g->keys; /* url is the first key of every section with one */
	char *url = *FIELD(c, k->off, char *);
	sg_tls *tls = FIELD(c, g->tls_off, sg_tls);

	if (!url)
		return;
	switch (g->urls) {
	case U_SOURCE:
		if (url_has(url, "maildir:") && !url_has(url, "maildir://")) {
			if (!url[8])
				add_error(L, g->name, "url",
					  "'maildir:' names no folder; write maildir:/path/to/Maildir");
			return;
		}
		if ((url_has(url, "imaps://") || url_has(url, "imap://")) && url_host(url))
			return;
		add_error(L, g->name, "url",
			  "'%s' is not a mail source; write imaps://host/INBOX, imap://host/INBOX "
			  "(STARTTLS) or maildir:/path",
			  url);
		return;
	case U_REPORT:
		if (url_has(url, "dir:") && !url_has(url, "dir://")) {
			if (!url[4])
				add_error(L, g->name, "url",
					  "'dir:' names no directory; write dir:/path/to/outbox");
			return;
		}
		if ((url_has(url, "smtps://") || url_has(url, "smtp://")) && url_host(url))
			return;
		add_error(L, g->name, "url",
			  "'%s' is not a report transport; write smtps://host:465, smtp://host:587 "
			  "(STARTTLS) or dir:/path",
			  url);
		return;
	case U_HTTP:
		if (url_has(url, "https://") && url_host(url))
			return;
		if (url_has(url, "http://") && url_host(url)) {
			if (!tls->off)
				add_error(L, g->name, "url",
					  "'%s' is plaintext HTTP; use https://, or set 'tls = off' "
					  "in [%s] (loopback tests only)",
					  url, g->name);
			return;
		}
		add_error(L, g->name, "url", "'%s' is not an HTTPS URL; write https://host/path",
			  url);
		return;
	case U_NONE:
		return;
	}
}

sg_status sg_config_load(const char *path, sg_config **out, char **err)
{
	g_autoptr(sg_config) c = NULL;
	g_autoptr(GKeyFile) kf = NULL;
	g_autoptr(GError) gerr = NULL;
	g_autofree char *text = NULL;
	g_auto(GStrv) group_names = NULL;
	struct loader L = { .path = path };
	struct stat sb;
	gsize len = 0;
	sg_status st = SG_OK;

	*out = NULL;
	if (stat(path, &sb) != 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return sg_fail(err, SG_ENOINPUT,
				       "%s: no such configuration file; create it (see "
				       "stockgate.conf(5)) or give another with -c or "
				       "$STOCKGATE_CONFIG",
				       path);
		return sg_fail(err, SG_ECONFIG, "%s: %s", path, g_strerror(errno));
	}
	if (!g_file_get_contents(path, &text, &len, &gerr))
		return sg_fail(err, SG_ECONFIG, "%s: cannot read: %s", path, gerr->message);
	if (!g_utf8_validate(text, (gssize)len, NULL))
		return sg_fail(err, SG_ECONFIG, "%s: not UTF-8 text; save it as UTF-8", path);

	L.lines = g_strsplit(text, "\n", -1);
	L.errors = g_string_new(NULL);
	kf = g_key_file_new();
	if (!g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &gerr)) {
		syntax_error(&L, gerr);
		st = SG_ECONFIG;
		goto out;
	}

	c = sg_config_defaults();
	c->path = g_strdup(path);
	group_names = g_key_file_get_groups(kf, NULL);
	for (int gi = 0; group_names[gi]; gi++) {
		const char *gname = group_names[gi];
		const struct groupdef *g = groups;
		while (g->name && strcmp(g->name, gname) != 0)
			g++;
		if (!g->name) {
			add_error(&L, gname, NULL,
				  "unknown section; the sections are [source], [report], [store], "
				  "[mirror], [limits], [security], [vin], [frame], [price], [rental], "
				  "[serve]");
			continue;
		}
		g_auto(GStrv) keys = g_key_file_get_keys(kf, gname, NULL, NULL);
		/* tls first: a url's check depends on it, and key order in the file is free. */
		for (int pass = 0; pass < 2; pass++) {
			for (int ki = 0; keys && keys[ki]; ki++) {
				const struct keydef *k = g->keys;
				while (k->key && strcmp(k->key, keys[ki]) != 0)
					k++;
				if (!k->key) {
					if (pass == 0) {
						GString *known = g_string_new(NULL);
						for (const struct keydef *kk = g->keys; kk->key; kk++)
							g_string_append_printf(known, "%s%s",
									       known->len ? ", " : "",
									       kk->key);
						add_error(&L, gname, keys[ki],
							  "unknown setting; [%s] knows: %s", gname,
							  known->str);
						g_string_free(known, TRUE);
					}
					continue;
				}
				if ((pass == 0) != (k->kind == K_TLS || k->kind == K_BOOL))
					continue;
				g_autofree char *v = g_key_file_get_string(kf, gname, keys[ki], NULL);
				if (!v) {
					add_error(&L, gname, keys[ki],
						  "the value has a bad escape sequence; write it plainly");
					continue;
				}
				g_strstrip(v);
				/* The plain and *_file forms of a secret exclude each other. */
				if (k->kind == K_SECRET_FILE) {
					g_autofree char *plain = g_strndup(k->key, strlen(k->key) - 5);
					if (g_key_file_has_key(kf, gname, plain, NULL)) {
						add_error(&L, gname, keys[ki],
							  "both '%s' and '%s' are set; keep one", plain,
							  k->key);
						continue;
					}
				}
				set_value(&L, c, g, k, v);
				if (k->kind == K_SECRET)
					explicit_bzero(v, strlen(v));
			}
		}
		if (g->urls != U_NONE)
			check_url(&L, c, g);
	}

	/* The path secret is the receiver's only authentication (the service signs nothing):
	 * short enough to guess is refused. */
	if (c && c->vin.callback_secret) {
		const char *key = g_key_file_has_key(kf, "vin", "callback_secret", NULL)
				      ? "callback_secret"
				      : "callback_secret_file";
		size_t n = strlen(c->vin.callback_secret);

		if (n < 32)
			add_error(&L, "vin", key,
				  "the secret has %zu characters; give at least 32 (e.g. openssl "
				  "rand -hex 24)",
				  n);
		/* It is a segment of the URL the service calls: what would need escaping there
		 * (or be taken apart by a proxy) is refused rather than guessed at. */
		else if (strspn(c->vin.callback_secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
							 "0123456789-._~") != n)
			add_error(&L, "vin", key,
				  "the secret may hold letters, digits and - . _ ~ only (it is a "
				  "path segment of the callback URL; e.g. openssl rand -hex 24)");
	}
	if (c && c->rental.time_zone) {
		GTimeZone *tz = g_time_zone_new_identifier(c->rental.time_zone);
		if (tz)
			g_time_zone_unref(tz);
		else
			add_error(&L, "rental", "time_zone",
				  "'%s' is not a time zone (Europe/Moscow, +03:00, UTC)",
				  c->rental.time_zone);
	}
	if (c && c->serve.public_url &&
	    !(url_has(c->serve.public_url, "https://") || url_has(c->serve.public_url, "http://")))
		add_error(&L, "serve", "public_url",
			  "'%s' is not an http(s) URL; write the base URL the service reaches, e.g. "
			  "https://gw.example.com", c->serve.public_url);

	/* A config that holds a secret must be as private as a secret file (as ssh demands). */
	if (L.has_inline_secret && (sb.st_mode & 077))
		add_error(&L, L.inline_secret_group, L.inline_secret_key,
			  "this file holds a secret but group or others can read it; run: chmod 600 "
			  "'%s' (or move the secret to a %s_file)",
			  path, L.inline_secret_key);

	if (L.nerrors)
		st = SG_ECONFIG;
out:
	if (st != SG_OK) {
		sg_fail(err, st, "%s", L.errors->str);
	} else {
		*out = g_steal_pointer(&c);
	}
	g_string_free(L.errors, TRUE);
	g_strfreev(L.lines);
	if (text)
		explicit_bzero(text, len);
	return st;
}

/* "scheme://user:pass@host/…" with the user info replaced: a password never reaches output. */
static char *masked_url(const char *url)
{
	const char *p = strstr(url, "://");
	const char *at, *end;

	if (!p)
		return g_strdup(url);
	p += 3;
	end = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(end - p));
	if (!at)
		return g_strdup(url);
	return g_strdup_printf("%.*s***@%s", (int)(p - url), url, at + 1);
}

void sg_config_each(const sg_config *c, sg_config_each_fn fn, void *ud)
{
	for (const struct groupdef *g = groups; g->name; g++) {
		for (const struct keydef *k = g->keys; k->key; k++) {
			g_autofree char *v = NULL;
			switch (k->kind) {
			case K_STR:
			case K_ADDR:
			case K_PATH:
			case K_LANG: {
				const char *s = *FIELD(c, k->off, char *);
				v = s ? g_strdup(s) : NULL;
				break;
			}
			case K_URL: {
				const char *s = *FIELD(c, k->off, char *);
				v = s ? masked_url(s) : NULL;
				break;
			}
			case K_INT:
				v = g_strdup_printf("%d", *FIELD(c, k->off, int));
				break;
			case K_LONG:
				v = g_strdup_printf("%ld", *FIELD(c, k->off, long));
				break;
			case K_SIZE:
			case K_DUR:
				v = g_strdup_printf("%" G_GINT64_FORMAT "%s", *FIELD(c, k->off, gint64),
						    k->kind == K_DUR ? "s" : "");
				break;
			case K_BOOL:
				v = g_strdup(*FIELD(c, k->off, bool) ? "true" : "false");
				break;
			case K_TLS:
				/* sg_tls.off: "tls = off" */
				v = g_strdup(*FIELD(c, k->off, bool) ? "off" : "on");
				break;
			case K_TYPES: {
				char **t = *FIELD(c, k->off, char **);
				v = t ? g_strjoinv(", ", t) : NULL;
				break;
			}
			case K_SECRET:
				fn(ud, g->name, k->key, *FIELD(c, k->off, char *) ? "(set)" : NULL, true);
				continue;
			case K_SECRET_FILE:
				continue; /* the same field as its plain form, listed there */
			}
			fn(ud, g->name, k->key, v, false);
		}
	}
}
