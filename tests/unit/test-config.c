/* test-config.c: the configuration loader: values, defaults, and every kind of error with its line. */
#include <glib/gstdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

static char *dir;

/* Writes name in the test directory with the given mode; returns its path (g_free). */
static char *write_file(const char *name, const char *text, int mode)
{
	char *path = g_build_filename(dir, name, NULL);
	g_file_set_contents(path, text, -1, NULL);
	chmod(path, (mode_t)mode);
	return path;
}

/* Loads text as a config; returns the status and sets *err (g_free). */
static sg_status load(const char *text, int mode, sg_config **cfg, char **err)
{
	g_autofree char *path = write_file("stockgate.conf", text, mode);
	*err = NULL;
	*cfg = NULL;
	return sg_config_load(path, cfg, err);
}

/* One error case: the config, its mode, and pieces the message must hold. */
struct bad {
	const char *name;
	const char *text;
	int mode;
	const char *want[3];
};

static const struct bad bad_cases[] = {
	{ "unknown key, with its line", "[store]\npath = /x\n\n[source]\nurl = maildir:/m\nfoo = 1\n",
	  0600, { ":6: [source] foo: unknown setting", "poll_interval" } },
	{ "unknown section", "[store]\npath = /x\n[sorce]\nurl = x\n", 0600,
	  { ":3: [sorce]: unknown section" } },
	{ "bad size", "[limits]\nmax_attachments = 3\nmax_message_size = 25Q\n", 0600,
	  { ":3: [limits] max_message_size: '25Q' is not a size", "25M" } },
	{ "bad duration", "[source]\n# comment\nmax_defer = tomorrow\n", 0600,
	  { ":3: [source] max_defer: 'tomorrow' is not a duration", "24h" } },
	{ "bad number", "[mirror]\ntimeout = -5\n", 0600, { ":2: [mirror] timeout:" } },
	{ "bad boolean", "[source]\ntls_verify = maybe\n", 0600, { ":2: [source] tls_verify:" } },
	{ "negative price budget", "[price]\nmax_cost = -1\n", 0600, { ":2: [price] max_cost:" } },
	{ "unknown time zone", "[rental]\n# a desk's zone\ntime_zone = Mars/Olympus\n", 0600,
	  { ":3: [rental] time_zone: 'Mars/Olympus' is not a time zone" } },
	{ "verification off", "[mirror]\nurl = https://x.example/restapi\ntls_verify = false\n", 0600,
	  { ":3: [mirror] tls_verify:", "always verified", "ca_file" } },
	{ "bad language", "[report]\nlanguage = de\n", 0600,
	  { ":2: [report] language: 'de'", "ru or en" } },
	{ "http mirror without tls = off", "[mirror]\nurl = http://127.0.0.1:8080/restapi\n", 0600,
	  { ":2: [mirror] url:", "tls = off" } },
	{ "http vendor without tls = off", "[vin]\nurl = http://127.0.0.1:1/\n", 0600,
	  { ":2: [vin] url:", "https://" } },
	{ "ftp source", "[source]\nurl = ftp://mail.example.com/\n", 0600,
	  { ":2: [source] url:", "imaps://" } },
	{ "mailto report", "[report]\nurl = mailto:x@y\n", 0600, { ":2: [report] url:", "smtps://" } },
	{ "group-readable file with an inline password",
	  "[source]\nurl = imaps://mail.example.com/INBOX\npassword = hunter2\n", 0640,
	  { ":3: [source] password:", "chmod 600" } },
	{ "both password and password_file",
	  "[source]\npassword = hunter2\npassword_file = /nonexistent\n", 0600,
	  { "[source] password_file: both" } },
	{ "missing password_file", "[report]\npassword_file = /nonexistent/pw\n", 0600,
	  { ":2: [report] password_file:", "/nonexistent/pw" } },
	{ "syntax error", "[store]\npath = /x\njust words\n", 0600, { ":3: not a setting" } },
	{ "setting outside a section", "path = /x\n[store]\n", 0600, { ":1:" } },
	{ "unreadable ca_file", "[mirror]\nca_file = /nonexistent/ca.pem\n", 0600,
	  { ":2: [mirror] ca_file: cannot read '/nonexistent/ca.pem'" } },
	{ "bad mime type", "[limits]\nallowed_types = text/csv, csv\n", 0600,
	  { ":2: [limits] allowed_types: 'csv'" } },
};

static void test_bad(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
		const struct bad *b = &bad_cases[i];
		sg_config *cfg;
		g_autofree char *err = NULL;
		sg_status st = load(b->text, b->mode, &cfg, &err);
		NUM(st, SG_ECONFIG, "%s: SG_ECONFIG", b->name);
		OK(cfg == NULL, "%s: no config", b->name);
		for (int k = 0; k < 3 && b->want[k]; k++) {
			bool has = err && strstr(err, b->want[k]);
			OK(has, "%s: message has \"%s\"", b->name, b->want[k]);
			if (!has)
				printf("#   got: %s\n", err ? err : "(null)");
		}
		OK(!err || !strstr(err, "hunter2"), "%s: no secret in the message", b->name);
		sg_config_free(cfg);
	}
}

static void test_good(void)
{
	g_autofree char *pw = write_file("imap.pw", "s3cret \n", 0600);
	g_autofree char *tok = write_file("vin.token", "tok123\nignored\n", 0600);
	g_autofree char *text = g_strdup_printf(
		"# a production-shaped file\n"
		"[source]\nurl = imaps://mail.example.com/INBOX\nusername = api@example.com\n"
		"password_file = %s\nmax_defer = 2h\nmax_age = 0\npoll_interval = 30\n"
		"tls_verify = true\nca_file = /etc/hostname\n\n"
		"[report]\nurl = smtps://mail.example.com:465\nfrom = \"Stock API\" <api@example.com>\n"
		"language = en\nbcc = archive@example.com\n\n"
		"[store]\npath = /var/lib/x.db\n\n"
		"[mirror]\nurl = http://127.0.0.1:9000/restapi\ntls = off\ntimeout = 5\n\n"
		"[limits]\nmax_message_size = 10M\nmax_header_size = 32K\nmax_rows = 500\n"
		"allowed_types = text/CSV; application/octet-stream\n\n"
		"[security]\ntrusted_authserv_id = mx.example.com\n\n"
		"[vin]\nurl = https://vin.example/api\ntoken_file = vin.token\n\n"
		"[price]\nurl = https://price.example/api\nmax_cost = 500\n",
		pw);
	sg_config *cfg;
	g_autofree char *err = NULL;
	sg_status st = load(text, 0644, &cfg, &err);
	NUM(st, SG_OK, "good file loads");
	if (st != SG_OK) {
		printf("#   %s\n", err);
		return;
	}
	IS(cfg->source.url, "imaps://mail.example.com/INBOX", "source url");
	IS(cfg->source.password, "s3cret", "password_file read and trimmed");
	NUM(cfg->source.max_defer, 7200, "max_defer 2h");
	NUM(cfg->source.max_age, 0, "max_age 0 = off");
	NUM(cfg->source.poll_interval, 30, "poll_interval");
	IS(cfg->source.tls.ca_file, "/etc/hostname", "ca_file");
	OK(cfg->source.tls.verify, "tls_verify");
	IS(cfg->report.language, "en", "language");
	IS(cfg->report.from, "\"Stock API\" <api@example.com>", "from keeps its quotes");
	IS(cfg->report.bcc, "archive@example.com", "bcc");
	IS(cfg->store.path, "/var/lib/x.db", "store path");
	OK(cfg->mirror.tls.off, "mirror tls = off");
	NUM(cfg->mirror.timeout, 5, "mirror timeout");
	NUM(cfg->mirror.batch_size, 500, "mirror batch_size default");
	NUM(cfg->limits.max_message_size, 10 * 1024 * 1024, "max_message_size 10M");
	NUM(cfg->limits.max_header_size, 32 * 1024, "max_header_size 32K");
	NUM(cfg->limits.max_rows, 500, "max_rows");
	NUM(cfg->price.max_cost, 500, "[price] max_cost");
	IS(cfg->limits.allowed_types[0], "text/csv", "allowed_types lower-cased");
	IS(cfg->limits.allowed_types[1], "application/octet-stream", "allowed_types second");
	OK(cfg->limits.allowed_types[2] == NULL, "allowed_types ends");
	IS(cfg->security.trusted_authserv_id, "mx.example.com", "trusted_authserv_id");
	IS(cfg->vin.token, "tok123", "token_file relative to the config, first line");
	OK(!cfg->source.tls.off, "source tls on");
	sg_config_free(cfg);

	/* imap:// and smtp:// are allowed: STARTTLS is required when connecting. */
	st = load("[source]\nurl = imap://127.0.0.1:1143/INBOX\n[report]\nurl = smtp://127.0.0.1:25\n",
		  0600, &cfg, &err);
	NUM(st, SG_OK, "imap:// and smtp:// accepted");
	sg_config_free(cfg);
	g_clear_pointer(&err, g_free);
	st = load("[source]\nurl = maildir:/var/mail/api\n[report]\nurl = dir:/tmp/outbox\n", 0644,
		  &cfg, &err);
	NUM(st, SG_OK, "maildir: and dir: accepted, file readable when it holds no secret");
	sg_config_free(cfg);
	g_clear_pointer(&err, g_free);
	/* A private config may hold an inline secret. */
	st = load("[rental]\nurl = https://r.example/\nlogin = l\npassword = hunter2\n", 0600, &cfg,
		  &err);
	NUM(st, SG_OK, "inline secret in a mode-600 file");
	if (cfg)
		IS(cfg->rental.password, "hunter2", "inline password kept");
	sg_config_free(cfg);
	g_clear_pointer(&err, g_free);
}

static void test_secret_file_mode(void)
{
	g_autofree char *pw = write_file("open.pw", "hunter2\n", 0604);
	g_autofree char *text = g_strdup_printf("[report]\nurl = smtps://m.example:465\n"
						"password_file = %s\n",
						pw);
	sg_config *cfg;
	g_autofree char *err = NULL;
	sg_status st = load(text, 0600, &cfg, &err);
	NUM(st, SG_ECONFIG, "password_file readable by others: SG_ECONFIG");
	OK(err && strstr(err, "chmod 600") && strstr(err, "open.pw") && strstr(err, ":3:"),
	   "message names the secret file, the line and chmod 600");
	OK(err && !strstr(err, "hunter2"), "no secret in the message");
	sg_config_free(cfg);
}

static void test_defaults(void)
{
	sg_config *cfg;
	g_autofree char *err = NULL;
	sg_status st = load("# empty\n", 0600, &cfg, &err);
	NUM(st, SG_OK, "an empty file is the defaults");
	if (st != SG_OK)
		return;
	OK(cfg->source.url == NULL, "no source by default");
	IS(cfg->source.processed_folder, "Processed", "processed_folder");
	IS(cfg->source.rejected_folder, "Rejected", "rejected_folder");
	IS(cfg->source.failed_folder, "Failed", "failed_folder");
	NUM(cfg->source.poll_interval, 60, "poll_interval 60");
	NUM(cfg->source.timeout, 60, "[source] timeout 60");
	NUM(cfg->report.timeout, 60, "[report] timeout 60");
	NUM(cfg->source.max_attempts, 10, "max_attempts 10");
	NUM(cfg->source.max_defer, 24 * 3600, "max_defer 24h");
	NUM(cfg->source.max_messages_per_poll, 500, "max_messages_per_poll 500");
	NUM(cfg->source.max_age, 7 * 24 * 3600, "max_age 7d");
	OK(cfg->source.tls.verify && !cfg->source.tls.off, "tls verified");
	IS(cfg->report.url, "dir:/var/spool/stockgate/outbox", "report url");
	IS(cfg->report.language, "ru", "language ru");
	IS(cfg->store.path, "/var/lib/stockgate/stockgate.db", "store path");
	OK(cfg->mirror.url == NULL, "no mirror");
	NUM(cfg->mirror.timeout, 30, "mirror timeout 30");
	NUM(cfg->limits.max_message_size, 25 * 1024 * 1024, "max_message_size 25M");
	NUM(cfg->limits.max_attachments, 20, "max_attachments 20");
	NUM(cfg->limits.max_rows, 1000000, "max_rows");
	NUM(cfg->limits.max_field_length, 1024, "max_field_length");
	NUM(cfg->limits.max_mime_depth, 10, "max_mime_depth");
	NUM(cfg->limits.max_parts, 100, "max_parts");
	NUM(cfg->limits.max_header_size, 64 * 1024, "max_header_size 64K");
	NUM(cfg->limits.parse_cpu_seconds, 10, "parse_cpu_seconds");
	NUM(g_strv_length(cfg->limits.allowed_types), 8, "the seed's eight types");
	OK(g_strv_contains((const char *const *)cfg->limits.allowed_types, "application/vnd.ms-excel"),
	   "application/vnd.ms-excel allowed");
	OK(cfg->security.trusted_authserv_id == NULL, "trusted_authserv_id off");
	sg_config_free(cfg);

	g_autofree char *missing = g_build_filename(dir, "nope.conf", NULL);
	g_clear_pointer(&err, g_free);
	st = sg_config_load(missing, &cfg, &err);
	NUM(st, SG_ENOINPUT, "missing file: SG_ENOINPUT");
	OK(err && strstr(err, "nope.conf"), "message names the file");
}

int main(void)
{
	dir = g_dir_make_tmp("sg-config-XXXXXX", NULL);
	test_bad();
	test_good();
	test_secret_file_mode();
	test_defaults();
	g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		perror("rm");
	g_free(dir);
	return tap_done();
}
