/* config.h: the configuration file (SPEC 4), loaded once with GKeyFile and checked whole. */
#pragma once
#include "sg.h"

/* TLS settings of one connection section. */
typedef struct {
	bool verify;   /* tls_verify; always true unless the section says otherwise */
	bool off;      /* tls = off: plaintext allowed (loopback tests); logged as a warning */
	char *ca_file; /* an extra CA bundle, or NULL */
} sg_tls;

typedef struct {
	char *path; /* the file it came from, or NULL for the built-in defaults */

	struct {
		char *url; /* imaps://host/INBOX, imap://…, maildir:/path; NULL when absent */
		char *username;
		char *password; /* inline or read from password_file; never logged */
		char *oauth2_token_command;
		char *processed_folder, *rejected_folder, *failed_folder;
		int poll_interval;         /* seconds, default 60 */
		int timeout;               /* seconds, default 60: connect and the longest stall;
		                            * a command may take 2x, a message fetch 10x */
		int max_attempts;          /* default 10 */
		gint64 max_defer;          /* seconds, default 24h */
		gint64 retry_interval;     /* seconds before a deferred message's second try,
		                            * doubling after each; default 60; 0: every poll */
		int max_messages_per_poll; /* default 500 */
		gint64 max_age;            /* seconds, default 7d; 0 = off */
		sg_tls tls;
	} source;

	struct {
		char *url; /* smtps://…, smtp://…, dir:/path; default dir:/var/spool/stockgate/outbox */
		char *username, *password, *oauth2_token_command;
		char *from;     /* "Stock API" <api@example.com> */
		char *language; /* "ru" (default) or "en" */
		char *bcc;      /* NULL when none */
		int timeout;    /* seconds, default 60: connect and the longest stall; a whole
		                 * delivery may take 5x */
		gint64 max_attachment_size; /* bytes of VIN reports attached to a results mail in
		                             * all, default 10M; beyond, the CSV names them */
		sg_tls tls;
	} report;

	struct {
		char *path; /* default /var/lib/stockgate/stockgate.db */
	} store;

	struct {
		char *url;   /* NULL or "": local store only */
		int timeout; /* seconds, default 30 */
		int batch_size; /* default 500 */
		sg_tls tls;
	} mirror;

	struct {
		gint64 max_message_size; /* 25M */
		int max_attachments;     /* 20 */
		long max_rows;           /* 1000000 */
		int max_field_length;    /* 1024 characters */
		int max_mime_depth;      /* 10 */
		int max_parts;           /* 100 */
		gint64 max_header_size;  /* 64K */
		int parse_cpu_seconds;   /* CPU-time limit of the message parser, default 10 */
		char **allowed_types;    /* NULL-terminated, lower case */
	} limits;

	struct {
		char *trusted_authserv_id; /* NULL: off */
	} security;

	/* Vendor APIs for the batch jobs (SPEC 9). Secrets inline or from *_file. */
	struct {
		char *url, *token;
		char *callback_secret; /* the path secret of `serve` (/vin/SECRET), >= 32 chars, or
		                        * NULL: no receiver, a row ends ok once queued */
		gint64 report_wait;    /* seconds a queued row waits for its report, default 48h */
		sg_tls tls;
	} vin;
	struct { char *url, *key; sg_tls tls; } frame;
	struct {
		char *url, *s_sn;
		long max_cost; /* e-mailed price jobs: the cap of what stage 2 may spend; 0 = none */
		sg_tls tls;
	} price;
	struct { char *url, *login, *password, *time_zone; sg_tls tls; } rental;

	/* The receiver of the VIN service's deliveries (`stockgate serve`). */
	struct {
		char *listen;        /* host:port, default 127.0.0.1:8025 */
		char *public_url;    /* the base URL the vendor reaches (the reverse proxy), or NULL */
		gint64 max_body;     /* bytes, default 25M: 413 beyond */
		int max_connections; /* default 64 */
		int timeout;         /* seconds a connection may take in all, default 60 */
	} serve;
} sg_config;

/*
 * Loads and checks a config file: unknown groups or keys, bad values, and secrets readable by
 * group or others (the file itself when it holds a secret, or a *_file) are errors naming the
 * file, the line and the key. Returns SG_OK, SG_ENOINPUT (no such file), SG_ECONFIG.
 */
sg_status sg_config_load(const char *path, sg_config **out, char **err);
/* The built-in defaults (used by commands that need no config file). */
sg_config *sg_config_defaults(void);
void sg_config_free(sg_config *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sg_config, sg_config_free)

/*
 * The effective settings, for `stockgate config check`: fn is called once a key of every
 * section, in the order of stockgate.conf(5), with its value as text (defaults included; NULL
 * when unset). A secret is never passed: for it value is "(set)" or NULL, and secret is true;
 * the *_file form of a secret is not listed apart (its path is not kept). User info in a URL is
 * masked.
 */
typedef void (*sg_config_each_fn)(void *ud, const char *section, const char *key,
				  const char *value, bool secret);
void sg_config_each(const sg_config *cfg, sg_config_each_fn fn, void *ud);
