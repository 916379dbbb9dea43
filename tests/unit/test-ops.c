/* test-ops.c: the pure parts of the operations commands: metric label escaping, the families of
 * an empty and of a partial state db, and the effective settings of `config check` (masking). */
#include <glib.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

#include "config.h"
#include "metrics.h"
#include "store.h"
#include "tap.h"

static void test_labels(void)
{
	static const struct {
		const char *in, *want;
	} rows[] = {
		{ "vin", "vin" },
		{ "", "" },
		{ "a\"b", "a\\\"b" },
		{ "a\\b", "a\\\\b" },
		{ "a\nb", "a\\nb" },
		{ "\\\"\n", "\\\\\\\"\\n" },
		{ "Склад \t1", "Склад \t1" }, /* UTF-8 and TAB go as they are */
	};
	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		g_autofree char *got = sg_metrics_label(rows[i].in);
		IS(got, rows[i].want, "label value %zu escaped", i);
	}
}

static int count(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void test_families(void)
{
	sg_store *st = NULL;
	g_autofree char *err = NULL;
	g_autoptr(GString) out = g_string_new(NULL);

	OK(sg_store_open("", &st, &err) == SG_OK, "a scratch store opens");
	OK(sg_metrics_prometheus(st, out, &err) == SG_OK, "metrics of an empty db");
	NUM(count(out->str, "# TYPE stockgate_reports_pending gauge\n"), 1,
	    "a family of two tables has one TYPE");
	OK(strstr(out->str, "stockgate_reports_pending{kind=\"batch\"} 0\n") != NULL,
	   "the second table's sample follows the first's");
	OK(strstr(out->str, "\nstockgate_receiver_unmatched_deliveries 0\n") != NULL,
	   "the receiver's family, empty");
	OK(sg_store_exec(st, "DROP TABLE deliveries", &err) == SG_OK, "drop deliveries");
	g_string_truncate(out, 0);
	OK(sg_metrics_prometheus(st, out, &err) == SG_OK, "metrics without deliveries");
	OK(strstr(out->str, "stockgate_receiver_unmatched_deliveries") == NULL,
	   "no deliveries table: no receiver family");
	OK(strstr(out->str, "\nstockgate_last_poll_success ") == NULL, "no poll: no last-poll sample");

	/* A db without a table of a family's second row keeps the first row's samples. */
	OK(sg_store_exec(st, "DROP TABLE batch_jobs", &err) == SG_OK, "drop batch_jobs");
	g_string_truncate(out, 0);
	OK(sg_metrics_prometheus(st, out, &err) == SG_OK, "metrics without batch_jobs");
	OK(strstr(out->str, "stockgate_reports_pending{kind=\"message\"} 0\n") != NULL &&
		   strstr(out->str, "kind=\"batch\"") == NULL,
	   "without batch_jobs: the message reports only");
	OK(sg_store_exec(st, "DROP TABLE journal", &err) == SG_OK, "drop journal");
	g_string_truncate(out, 0);
	OK(sg_metrics_prometheus(st, out, &err) == SG_OK, "metrics without journal");
	OK(strstr(out->str, "stockgate_batch_rows") == NULL, "without journal: no batch_rows family");
	sg_store_close(st);
}

struct seen {
	GString *all;
};

static void on_setting(void *ud, const char *section, const char *key, const char *value,
		       bool secret)
{
	struct seen *s = ud;
	g_string_append_printf(s->all, "[%s] %s=%s%s\n", section, key, value ? value : "(unset)",
			       secret ? " secret" : "");
}

static void test_each(void)
{
	g_autofree char *dir = g_dir_make_tmp("test-ops-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "c.conf", NULL);
	g_autofree char *err = NULL;
	sg_config *cfg = NULL;
	struct seen s = { g_string_new(NULL) };

	g_file_set_contents(path,
			    "[mirror]\nurl = https://user:SECRETPW@dealer.example/restapi\n"
			    "[vin]\nurl = https://vin.example/api\ntoken = SECRETTOKEN\n"
			    "[source]\nmax_defer = 2h\n",
			    -1, NULL);
	chmod(path, 0600);
	OK(sg_config_load(path, &cfg, &err) == SG_OK, "the config loads");
	sg_config_each(cfg, on_setting, &s);
	OK(strstr(s.all->str, "SECRET") == NULL, "no secret among the settings");
	OK(strstr(s.all->str, "[mirror] url=https://***@dealer.example/restapi\n") != NULL,
	   "a URL's user info is masked");
	OK(strstr(s.all->str, "[vin] token=(set) secret\n") != NULL, "a secret is only (set)");
	OK(strstr(s.all->str, "token_file") == NULL, "the *_file form is not listed apart");
	OK(strstr(s.all->str, "[source] max_defer=7200s\n") != NULL, "a duration, in seconds");
	OK(strstr(s.all->str, "[source] max_attempts=10\n") != NULL, "a default");
	OK(strstr(s.all->str, "[frame] key=(unset) secret\n") != NULL, "an unset secret");
	g_string_free(s.all, TRUE);
	sg_config_free(cfg);
	g_unlink(path);
	g_rmdir(dir);
}

int main(void)
{
	test_labels();
	test_families();
	test_each();
	return tap_done();
}
