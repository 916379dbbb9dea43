/* test-mirror.c: the mirror's answer parsing and warehouse diff, then the client against the seed-004 emulator. */
#include <cjson/cJSON.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mirror.h"
#include "tap.h"

/* 100000 products, one with a quote in each article: ART"1 … ART"100000, quantity i % 7. */
static bool next_product(void *vi, const char **article, long long *qty)
{
	static char buf[32];
	int *i = vi;
	if (*i >= 100000)
		return false;
	++*i;
	g_snprintf(buf, sizeof buf, "ART\"%d", *i);
	*article = buf;
	*qty = *i % 7;
	return true;
}

static void test_answers(void)
{
	static const struct {
		long http;
		const char *body;
		sg_status want;
		const char *err_has; /* a part of *err, or NULL */
	} t[] = {
		{ 200, "{\"status\":{\"code\":\"ok\"}}", SG_OK, NULL },
		{ 200,
		  "{\"status\":{\"code\":\"ok\",\"messages\":[\"\\u0421\\u043a\\u043b\\u0430\\u0434 "
		  "`1` \\u0443\\u0436\\u0435 \\u0441\\u0443\\u0449\\u0435\\u0441\\u0442\\u0432\\u0443"
		  "\\u0435\\u0442!\"]}}",
		  SG_OK, NULL },
		{ 200, "{\"status\":{\"code\":\"error\",\"messages\":[\"Склад `X` не найден\"]}}",
		  SG_EDATA, "Склад `X` не найден" },
		{ 200, "{\"status\":{\"code\":\"error\",\"messages\":{\"0\":\"a\",\"1\":\"b\"}}}",
		  SG_EDATA, "a\nb" },
		{ 200, "{\"status\":{\"code\":\"error\",\"messages\":\"one\"}}", SG_EDATA, "one" },
		{ 200, "{\"status\":{\"code\":\"error\"}}", SG_EDATA, "status error" },
		{ 200, "{\"status\":{\"code\":\"fail\"}}", SG_EDATA, "status fail" },
		{ 200, "<html>maintenance</html>", SG_ETEMP, "not the API's JSON" },
		{ 200, "{\"status\":{\"code\":\"ok\"", SG_ETEMP, "unparseable" },
		{ 200, "{\"warehouses\":[]}", SG_ETEMP, "no status.code" },
		{ 200, "", SG_ETEMP, "unparseable" },
		{ 200, "[1,2]", SG_ETEMP, "no status.code" },
		{ 500, "{\"status\":{\"code\":\"ok\"}}", SG_ETEMP, "HTTP 500" },
		{ 502, "<html>bad gateway</html>", SG_ETEMP, "HTTP 502" },
		{ 429, "", SG_ETEMP, "HTTP 429" },
		{ 408, "", SG_ETEMP, "HTTP 408" },
		{ 401, "", SG_EDATA, "HTTP 401" },
		{ 403, "{\"status\":{\"code\":\"error\",\"messages\":[\"bad hash\"]}}", SG_EDATA,
		  "HTTP 403: bad hash" },
		{ 404, "<html>", SG_EDATA, "HTTP 404" },
		{ 302, "", SG_EDATA, "redirects are not followed" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		g_autofree char *err = NULL;
		cJSON *root = NULL;
		sg_status st = sg_mirror_parse_answer(t[i].http, t[i].body, strlen(t[i].body), &root,
						      &err);
		NUM(st, t[i].want, "answer %zu: HTTP %ld %.30s", i, t[i].http, t[i].body);
		OK((st == SG_OK) == (root != NULL), "answer %zu: a tree only when ok", i);
		if (t[i].err_has)
			OK(err && strstr(err, t[i].err_has), "answer %zu: err has the expected text", i);
		cJSON_Delete(root);
	}
}

static void test_list(void)
{
	static const struct {
		const char *body;
		sg_status want;
		int n;
		const char *first; /* code|address|contacts of the first */
	} t[] = {
		{ "{\"warehouses\":[{\"code\":\"3\",\"contacts\":\"3\",\"address\":\"\\u041a\\u0443"
		  "\\u0440\\u0441\\u043a\"},{\"code\":\"111111\",\"contacts\":\"test\",\"address\":"
		  "\"x\"}],\"status\":{\"code\":\"ok\"}}",
		  SG_OK, 2, "3|Курск|3" },
		{ "{\"warehouses\":[{\"code\":3,\"contacts\":null}],\"status\":{\"code\":\"ok\"}}",
		  SG_OK, 1, "3||" },
		{ "{\"status\":{\"code\":\"ok\"}}", SG_OK, 0, NULL },
		{ "{\"warehouses\":[],\"status\":{\"code\":\"ok\"}}", SG_OK, 0, NULL },
		{ "{\"warehouses\":{},\"status\":{\"code\":\"ok\"}}", SG_OK, 0, NULL },
		{ "{\"warehouses\":{\"0\":{\"code\":\"A\",\"address\":\"a\",\"contacts\":\"c\"}},"
		  "\"status\":{\"code\":\"ok\"}}",
		  SG_OK, 1, "A|a|c" },
		{ "{\"warehouses\":\"x\",\"status\":{\"code\":\"ok\"}}", SG_ETEMP, 0, NULL },
		{ "{\"warehouses\":[{\"address\":\"a\"}],\"status\":{\"code\":\"ok\"}}", SG_ETEMP, 0,
		  NULL },
		{ "{\"warehouses\":[5],\"status\":{\"code\":\"ok\"}}", SG_ETEMP, 0, NULL },
		/* A numeric code beyond gint64 (found by fuzz-mirror): text, not an undefined cast. */
		{ "{\"warehouses\":[{\"code\":1e300,\"address\":\"a\",\"contacts\":\"c\"}],"
		  "\"status\":{\"code\":\"ok\"}}",
		  SG_OK, 1, "1.0000000000000001e+300|a|c" },
		{ "{\"warehouses\":[{\"code\":-12,\"address\":\"a\",\"contacts\":\"c\"}],"
		  "\"status\":{\"code\":\"ok\"}}",
		  SG_OK, 1, "-12|a|c" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		g_autofree char *err = NULL;
		g_autoptr(GPtrArray) list = NULL;
		cJSON *root = cJSON_Parse(t[i].body);
		sg_status st = sg_mirror_parse_list(root, &list, &err);
		NUM(st, t[i].want, "list %zu", i);
		if (st == SG_OK) {
			NUM(list->len, t[i].n, "list %zu: count", i);
			if (t[i].first && list->len) {
				sg_mirror_wh *w = g_ptr_array_index(list, 0);
				g_autofree char *s =
					g_strdup_printf("%s|%s|%s", w->code, w->address, w->contacts);
				IS(s, t[i].first, "list %zu: first", i);
			}
		}
		cJSON_Delete(root);
	}
}

/* "A=addr/cont,B=…" → warehouses. */
static GPtrArray *whs(const char *spec)
{
	GPtrArray *a = g_ptr_array_new_with_free_func(sg_mirror_wh_free);
	g_auto(GStrv) items = g_strsplit(spec, ",", -1);
	for (char **p = items; *p; p++) {
		if (!**p)
			continue;
		g_auto(GStrv) kv = g_strsplit(*p, "=", 2);
		g_auto(GStrv) ac = g_strsplit(kv[1] ? kv[1] : "", "/", 2);
		g_ptr_array_add(a, sg_mirror_wh_new(kv[0], ac[0], ac[0] ? ac[1] : NULL));
	}
	return a;
}

static char *codes(GPtrArray *a)
{
	GString *s = g_string_new(NULL);
	for (guint i = 0; i < a->len; i++)
		g_string_append_printf(s, "%s%s", i ? "," : "",
				       ((sg_mirror_wh *)g_ptr_array_index(a, i))->code);
	return g_string_free(s, FALSE);
}

static void test_diff(void)
{
	static const struct {
		const char *server, *want, *add, *upd, *del;
	} t[] = {
		{ "", "A=a/c,B=b/c", "A,B", "", "" },
		{ "A=a/c,B=b/c", "A=a/c,B=b/c", "", "", "" },
		{ "A=a/c,B=b/c", "B=b/c,A=a/c", "", "", "" },
		{ "A=a/c,B=b/c", "A=a/x,B=y/c", "", "A,B", "" },
		{ "A=a/c,B=b/c,C=c/c", "B=b/c", "", "", "A,C" },
		{ "C=c/c,A=a/c", "B=b/c,A=z/c,D=d/", "B,D", "A", "C" },
		{ "A=/", "A", "", "", "" },     /* missing address/contacts equal "" */
		{ "A=a/c,A=a/c", "", "", "", "A" }, /* a code listed twice is deleted once */
		{ "a=x/y", "A=x/y", "A", "", "a" }, /* codes are compared exactly */
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		g_autoptr(GPtrArray) s = whs(t[i].server), w = whs(t[i].want);
		g_autoptr(GPtrArray) add = g_ptr_array_new(), upd = g_ptr_array_new(),
				     del = g_ptr_array_new();
		sg_mirror_diff(s, w, add, upd, del);
		g_autofree char *a = codes(add), *u = codes(upd), *d = codes(del);
		IS(a, t[i].add, "diff %zu: add", i);
		IS(u, t[i].upd, "diff %zu: update", i);
		IS(d, t[i].del, "diff %zu: delete", i);
	}
}

/* ---- the client against tests/servers/keaz_server.py ---- */

#define KEY "0123456789abcdef0123456789abcdef"
static char base[128];

static char *http(const char *method, const char *path, const char *body)
{
	g_autofree char *url = g_strdup_printf("%s%s", base, path);
	g_autofree char *out = NULL;
	char *argv[] = { (char *)"curl", (char *)"-s", (char *)"-X", (char *)method,
			 (char *)"--data-binary", (char *)(body ? body : ""), url, NULL };
	if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
			  NULL, &out, NULL, NULL, NULL))
		return g_strdup("");
	return g_steal_pointer(&out);
}

static void control(const char *json)
{
	g_free(http("POST", "/_control", json));
}

static void stage(sqlite3 *db, const char *wh_sql)
{
	sqlite3_exec(db, "DELETE FROM temp.stage_wh", NULL, NULL, NULL);
	sqlite3_exec(db, wh_sql, NULL, NULL, NULL);
}

static void test_client(void)
{
	const char *top = g_getenv("SG_TOP");
	g_autofree char *script =
		g_build_filename(top ? top : ".", "tests/servers/keaz_server.py", NULL);
	GPid pid;
	int port = 20000 + (int)(getpid() % 20000);
	g_autofree char *ports = g_strdup_printf("%d", port);
	char *argv[] = { (char *)"/usr/bin/python3", script, ports, (char *)"--dealer",
			 (char *)KEY "=D1", NULL };
	sg_store *store = NULL;
	sg_config cfg = { 0 };
	sg_mirror *m = NULL;
	g_autofree char *err = NULL;
	sg_status st;
	long n;

	if (!g_file_test(script, G_FILE_TEST_EXISTS) ||
	    !g_file_test("/usr/bin/python3", G_FILE_TEST_IS_EXECUTABLE)) {
		OK(1, "# SKIP no emulator");
		return;
	}
	if (!g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, NULL)) {
		OK(0, "emulator starts");
		return;
	}
	g_snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
	for (int i = 0; i < 100; i++) {
		g_autofree char *s = http("GET", "/_state", NULL);
		if (*s)
			break;
		g_usleep(100000);
	}

	/* A private scratch store; stock.c creates temp.stage_wh in the real flow. */
	NUM(sg_store_open("", &store, NULL), SG_OK, "scratch store");
	sg_store_exec(store,
		      "CREATE TEMP TABLE stage_wh (code TEXT PRIMARY KEY, address TEXT, contacts TEXT);"
		      "INSERT INTO dealers VALUES ('D1', 'One', '', 0, 0);"
		      "INSERT INTO warehouses VALUES ('D1', 'A', 'x', 'y')",
		      NULL);
	cfg.mirror.url = g_strdup_printf("%s/restapi/", base);
	cfg.mirror.timeout = 2;
	cfg.mirror.batch_size = 2;
	cfg.mirror.tls.off = true;
	cfg.mirror.tls.verify = true;
	NUM(sg_mirror_open(&cfg, &m, &err), SG_OK, "open");

	NUM(sg_mirror_ping(m, KEY, &n, &err), SG_OK, "ping with the key");
	NUM(n, 0, "ping: no warehouses yet");
	g_clear_pointer(&err, g_free);
	NUM(sg_mirror_ping(m, "ffffffffffffffffffffffffffffffff", &n, &err), SG_EDATA,
	    "ping with a wrong key: refused");
	OK(err && strstr(err, "key is refused"), "ping: says the key is refused");
	g_clear_pointer(&err, g_free);

	/* Five warehouses in batches of two: list + 3 adds. */
	{
		g_autoptr(sg_file_result) fr = sg_file_result_new("w.csv");
		fr->applied = true;
		stage(sg_store_db(store),
		      "INSERT INTO temp.stage_wh VALUES ('A','Курск','a@x'),('B','b',''),"
		      "('C','c','c'),('D','d','d'),('E','e','e')");
		control("{\"reset_log\":true}");
		st = sg_mirror_warehouses(m, KEY, store, fr, &err);
		NUM(st, SG_OK, "warehouses: five added");
		g_autofree char *log = http("GET", "/_log", NULL);
		cJSON *j = cJSON_Parse(log);
		NUM(cJSON_GetArraySize(j), 4, "warehouses: list + 3 batches of at most 2");
		cJSON_Delete(j);
	}
	/* Unchanged: one list only. Then: update A, delete D, E, add F. */
	{
		g_autoptr(sg_file_result) fr = sg_file_result_new("w.csv");
		fr->applied = true;
		control("{\"reset_log\":true}");
		NUM(sg_mirror_warehouses(m, KEY, store, fr, &err), SG_OK, "unchanged: ok");
		g_autofree char *log = http("GET", "/_log", NULL);
		cJSON *j = cJSON_Parse(log);
		NUM(cJSON_GetArraySize(j), 1, "unchanged: one list request and nothing else");
		cJSON_Delete(j);

		stage(sg_store_db(store),
		      "INSERT INTO temp.stage_wh VALUES ('A','Курск, ул. Ленина 1','a@x'),('B','b',''),"
		      "('C','c','c'),('F','f','f')");
		control("{\"reset_log\":true}");
		NUM(sg_mirror_warehouses(m, KEY, store, fr, &err), SG_OK, "changes: ok");
		g_autofree char *log2 = http("GET", "/_log", NULL);
		j = cJSON_Parse(log2);
		NUM(cJSON_GetArraySize(j), 4, "changes: list, add, update, delete");
		const char *order[] = { "warehouse.list", "warehouse.add", "warehouse.update",
					"warehouse.delete" };
		for (int i = 0; i < 4 && i < cJSON_GetArraySize(j); i++)
			IS(cJSON_GetObjectItem(cJSON_GetArrayItem(j, i), "action")->valuestring,
			   order[i], "changes: request %d", i + 1);
		cJSON_Delete(j);
	}
	/* A status error for one code: the file is rejected with the server's message. */
	{
		g_autoptr(sg_file_result) fr = sg_file_result_new("w.csv");
		fr->applied = true;
		stage(sg_store_db(store), "INSERT INTO temp.stage_wh VALUES ('A','x','y'),('G','g','g')");
		control("{\"error_code\":\"G\"}");
		NUM(sg_mirror_warehouses(m, KEY, store, fr, &err), SG_EDATA, "status error");
		IS(fr->reason, "mirror_error", "status error: reason");
		OK(fr->detail && strstr(fr->detail, "Склад `G`"), "status error: detail '%s'",
		   fr->detail ? fr->detail : "");
		control("{\"error_code\":null}");
	}
	/* Remains streamed: 100000 products in one request. */
	{
		g_autoptr(sg_file_result) fr = sg_file_result_new("r.csv");
		fr->applied = true;
		int i = 0;
		NUM(sg_remains_replace(store, "D1", "A", next_product, &i, NULL), SG_OK,
		    "remains: 100000 products stored");
		control("{\"reset_log\":true}");
		st = sg_mirror_remains(m, KEY, "D1", "A", store, fr, &err);
		NUM(st, SG_OK, "remains: 100000 products accepted (%s)", err ? err : "");
		g_clear_pointer(&err, g_free);
		g_autofree char *state = http("GET", "/_state", NULL);
		cJSON *j = cJSON_Parse(state);
		cJSON *rem = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "D1"),
								     "remains"),
						 "A");
		NUM(cJSON_GetArraySize(rem), 100000, "remains: the server holds them all");
		cJSON *q = cJSON_GetObjectItem(rem, "ART\"99999");
		NUM(q ? q->valueint : -1, 99999 % 7, "remains: an article with a quote");
		cJSON_Delete(j);
		g_autofree char *log = http("GET", "/_log", NULL);
		j = cJSON_Parse(log);
		NUM(cJSON_GetArraySize(j), 1, "remains: one request");
		cJSON_Delete(j);
	}
	/* Remains for a warehouse the server does not have: mirror_error. */
	{
		g_autoptr(sg_file_result) fr = sg_file_result_new("r.csv");
		fr->applied = true;
		NUM(sg_mirror_remains(m, KEY, "D1", "NOPE", store, fr, &err), SG_EDATA,
		    "remains: unknown warehouse refused");
		IS(fr->reason, "mirror_error", "unknown warehouse: mirror_error");
	}
	/* Faults: 500, 429, a dropped connection, a hang past the timeout: SG_ETEMP. */
	{
		static const struct {
			const char *control, *err_has;
		} f[] = {
			{ "{\"fail_at\":1}", "HTTP 500" },
			{ "{\"ratelimit_at\":1,\"retry_after\":0}", "HTTP 429" },
			{ "{\"drop_at\":1}", "dropped" },
			{ "{\"hang_at\":1,\"hang_seconds\":9}", "timeout" },
		};
		for (size_t i = 0; i < G_N_ELEMENTS(f); i++) {
			g_autoptr(sg_file_result) fr = sg_file_result_new("r.csv");
			sg_mirror *m2 = NULL;
			fr->applied = true;
			sg_mirror_open(&cfg, &m2, NULL);
			control(f[i].control);
			g_clear_pointer(&err, g_free);
			st = sg_mirror_remains(m2, KEY, "D1", "A", store, fr, &err);
			NUM(st, SG_ETEMP, "fault %s: deferred", f[i].control);
			OK(err && strstr(err, f[i].err_has), "fault %s: err '%s'", f[i].control,
			   err ? err : "");
			OK(!err || !strstr(err, KEY), "fault %s: err without the key", f[i].control);
			if (i == 0) {
				/* Later calls of the same run try again after a 500. */
				g_clear_pointer(&err, g_free);
				NUM(sg_mirror_remains(m2, KEY, "D1", "A", store, fr, &err), SG_OK,
				    "after a 500: the next call goes through");
			}
			if (i == 3) {
				/* After a timeout the run does not wait again for every file. */
				g_clear_pointer(&err, g_free);
				gint64 t0 = g_get_monotonic_time();
				NUM(sg_mirror_remains(m2, KEY, "D1", "A", store, fr, &err), SG_ETEMP,
				    "after a timeout: deferred at once");
				OK(g_get_monotonic_time() - t0 < 500000, "after a timeout: no wait");
			}
			sg_mirror_close(m2);
		}
	}
	/* A redirect is not followed (the key would go with it). */
	{
		g_autoptr(sg_file_result) fr = sg_file_result_new("w.csv");
		sg_mirror *m2 = NULL;
		fr->applied = true;
		g_autofree char *ctl =
			g_strdup_printf("{\"redirect_to\":\"%s/elsewhere\",\"reset_log\":true}", base);
		sg_mirror_open(&cfg, &m2, NULL);
		control(ctl);
		g_clear_pointer(&err, g_free);
		NUM(sg_mirror_warehouses(m2, KEY, store, fr, &err), SG_EDATA, "redirect: refused");
		OK(fr->detail && strstr(fr->detail, "redirect"), "redirect: says so");
		g_autofree char *log = http("GET", "/_log", NULL);
		cJSON *j = cJSON_Parse(log);
		NUM(cJSON_GetArraySize(j), 1, "redirect: not followed");
		cJSON_Delete(j);
		control("{\"redirect_to\":null}");
		sg_mirror_close(m2);
	}

	sg_mirror_close(m);
	sg_store_close(store);
	g_free(cfg.mirror.url);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

int main(void)
{
	test_answers();
	test_list();
	test_diff();
	test_client();
	return tap_done();
}
