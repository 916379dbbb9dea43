/* test-auth.c: Authentication-Results evaluation and the sender verdicts against a scratch store.
 */
#include <string.h>

#include "auth.h"
#include "tap.h"

typedef struct {
	const char *name;
	const char *ar[4];
	const char *domain;
	bool pass;
} ar_case;

static const ar_case ar_cases[] = {
    {"dmarc pass", {"mx.sg; dmarc=pass header.from=example.com"}, "example.com", true},
    {"id case-insensitive", {"MX.SG; dmarc=pass"}, "example.com", true},
    {"version token", {"mx.sg 1; dmarc=pass"}, "example.com", true},
    {"dmarc fail", {"mx.sg; dmarc=fail"}, "example.com", false},
    {"no results", {"mx.sg; none"}, "example.com", false},
    {"no header", {NULL}, "example.com", false},
    {"other authserv-id ignored", {"evil.example; dmarc=pass"}, "example.com", false},
    {"forged lower header ignored",
     {"mx.sg; dmarc=fail; dkim=none", "mx.sg; dmarc=pass"},
     "example.com",
     false},
    {"topmost of ours counts after foreign ones",
     {"relay.other; dmarc=fail", "mx.sg; dmarc=pass", "mx.sg; dmarc=fail"},
     "example.com",
     true},
    {"dkim pass for the From domain",
     {"mx.sg; dkim=pass header.d=Example.COM"},
     "example.com",
     true},
    {"dkim pass header.i", {"mx.sg; dkim=pass header.i=@example.com"}, "example.com", true},
    {"dkim pass for another domain", {"mx.sg; dkim=pass header.d=evil.com"}, "example.com", false},
    {"dkim pass, subdomain is not the domain",
     {"mx.sg; dkim=pass header.d=x.example.com"},
     "example.com",
     false},
    {"dkim fail for the domain", {"mx.sg; dkim=fail header.d=example.com"}, "example.com", false},
    {"comments ignored",
     {"mx.sg (our mx); dkim=pass (good sig) header.d=example.com (dmarc=pass)"},
     "example.com",
     true},
    {"dmarc=pass in a comment does not count",
     {"mx.sg; dkim=fail (dmarc=pass)"},
     "example.com",
     false},
    {"dmarc=pass in a quoted reason does not count",
     {"mx.sg; spf=fail reason=\"dmarc=pass\""},
     "example.com",
     false},
    {"spaces around =", {"mx.sg; dmarc = pass"}, "example.com", true},
    {"several resinfos",
     {"mx.sg; spf=pass smtp.mailfrom=x; dkim=pass header.d=example.com"},
     "example.com",
     true},
    {"quoted header.d", {"mx.sg; dkim=pass header.d=\"example.com\""}, "example.com", true},
    {"id must match whole", {"mx.sg.evil; dmarc=pass"}, "example.com", false},
};

static void test_ar(void)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(ar_cases); i++) {
		const ar_case *c = &ar_cases[i];
		OK(sg_auth_results_pass((char *const *)c->ar, "mx.sg", c->domain) == c->pass, "%s",
		   c->name);
	}
	OK(!sg_auth_results_pass(NULL, "mx.sg", "example.com"), "NULL list");
}

/* ---- verdicts ---- */

#define KEY "SGKEY-0123456789"

static sg_message base(void)
{
	static char *none[] = {NULL};
	sg_message m = {0};

	m.from = (char *)"ivan@d1.example";
	m.from_count = 1;
	m.date = -1;
	m.key = (char *)KEY;
	m.auth_results = none;
	return m;
}

typedef struct {
	const char *name;
	void (*edit)(sg_message *m);
	const char *method;
	const char *authserv;
	const char *reason;
	bool automatic;
} verdict_case;

static char *ar_pass[] = {(char *)"mx.sg; dmarc=pass", NULL};
static char *ar_forged[] = {(char *)"mx.sg; dmarc=fail", (char *)"mx.sg; dmarc=pass", NULL};

static void e_none(sg_message *m) { (void)m; }
static void e_rp_null(sg_message *m) { m->return_path_null = true; }
static void e_daemon(sg_message *m) { m->from = (char *)"MAILER-DAEMON@d1.example"; }
static void e_report(sg_message *m) { m->is_report = true; }
static void e_own(sg_message *m) { m->own_report = true; }
static void e_two(sg_message *m)
{
	m->from_count = 2;
	m->from = NULL;
}
static void e_sender(sg_message *m) { m->sender = (char *)"boss@d1.example"; }
static void e_same_sender(sg_message *m) { m->sender = (char *)"ivan@d1.example"; }
static void e_unknown(sg_message *m) { m->from = (char *)"stranger@d1.example"; }
static void e_no_key(sg_message *m) { m->key = NULL; }
static void e_bad_key(sg_message *m) { m->key = (char *)"SGKEY-wrong"; }
static void e_other_dealer_key(sg_message *m) { m->key = (char *)"OTHER-KEY"; }
static void e_ar(sg_message *m) { m->auth_results = ar_pass; }
static void e_forged(sg_message *m) { m->auth_results = ar_forged; }
static void e_auto(sg_message *m) { m->auto_submitted = (char *)"Auto-Generated; x=1"; }
static void e_auto_no(sg_message *m) { m->auto_submitted = (char *)" No "; }
static void e_bulk(sg_message *m) { m->precedence = (char *)"BULK"; }
static void e_first_class(sg_message *m) { m->precedence = (char *)"first-class"; }
static void e_batch_user(sg_message *m) { m->from = (char *)"robot@d1.example"; }

static const verdict_case verdicts[] = {
    {"authenticated", e_none, "remains", NULL, NULL},
    {"unknown method: any role", e_none, NULL, NULL, NULL},
    {"null return path", e_rp_null, "remains", NULL, "bounce"},
    {"mailer-daemon", e_daemon, "remains", NULL, "bounce"},
    {"delivery report", e_report, "remains", NULL, "bounce"},
    {"own report", e_own, "remains", NULL, "own_report"},
    {"two From", e_two, "remains", NULL, "several_senders"},
    {"Sender differs", e_sender, "remains", NULL, "several_senders"},
    {"Sender same", e_same_sender, "remains", NULL, NULL},
    {"unknown sender", e_unknown, "remains", NULL, "unknown_sender"},
    {"no role", e_none, "vin", NULL, "no_role"},
    {"batch user has no remains role", e_batch_user, "warehouses", NULL, "no_role"},
    {"batch user, vin", e_batch_user, "vin", NULL, NULL},
    {"key missing", e_no_key, "remains", NULL, "bad_key"},
    {"key wrong", e_bad_key, "remains", NULL, "bad_key"},
    {"another dealer's key", e_other_dealer_key, "remains", NULL, "bad_key"},
    {"trusted id, no A-R", e_none, "remains", "mx.sg", "unauthenticated"},
    {"trusted id, pass", e_ar, "remains", "mx.sg", NULL},
    {"trusted id, forged lower pass", e_forged, "remains", "mx.sg", "unauthenticated"},
    {"no_role before unauthenticated", e_none, "vin", "mx.sg", "no_role"},
    {"Auto-Submitted", e_auto, "remains", NULL, NULL, true},
    {"Auto-Submitted: no", e_auto_no, "remains", NULL, NULL, false},
    {"Precedence bulk", e_bulk, "remains", NULL, NULL, true},
    {"Precedence first-class", e_first_class, "remains", NULL, NULL, false},
};

static void test_verdicts(sg_store *st)
{
	size_t i;

	for (i = 0; i < G_N_ELEMENTS(verdicts); i++) {
		const verdict_case *c = &verdicts[i];
		sg_message m = base();
		sg_auth a = {0};
		g_autofree char *err = NULL;
		sg_status s;

		c->edit(&m);
		s = sg_auth_check(st, &m, c->method, c->authserv, &a, &err);
		NUM(s, SG_OK, "%s: status (%s)", c->name, err ? err : "");
		IS(a.reason, c->reason, "%s: reason", c->name);
		OK(a.automatic == c->automatic, "%s: automatic", c->name);
		if (c->reason == NULL || strcmp(c->reason, "no_role") == 0 ||
		    strcmp(c->reason, "bad_key") == 0) {
			IS(a.dealer, "D1", "%s: dealer set", c->name);
			IS(a.reply_to, m.from, "%s: reply_to is the registry address", c->name);
		} else if (strcmp(c->reason, "unauthenticated") != 0) {
			/* A silent rejection still names the dealer when From is one registered
			 * user's address (SPEC 5.7), and gives no address to reply to. */
			bool user = m.from != NULL && m.from_count == 1 &&
				    strcmp(m.from, "ivan@d1.example") == 0;
			IS(a.dealer, user ? "D1" : NULL, "%s: dealer %s", c->name,
			   user ? "named" : "null");
			OK(a.reply_to == NULL, "%s: no reply address", c->name);
		}
		sg_auth_clear(&a);
	}
}

static void test_sender_only(sg_store *st)
{
	sg_auth a = {0};

	NUM(sg_auth_sender(st, "ivan@d1.example", "remains", &a, NULL), SG_OK, "sender: status");
	IS(a.reason, NULL, "sender: registered with the role");
	IS(a.dealer, "D1", "sender: dealer");
	OK(a.dev_mode, "sender: dev mode from the dealer");
	sg_auth_clear(&a);
	sg_auth_sender(st, "ivan@d1.example", "rental", &a, NULL);
	IS(a.reason, "no_role", "sender: no role for rental");
	sg_auth_clear(&a);
	sg_auth_sender(st, "nobody@d1.example", "remains", &a, NULL);
	IS(a.reason, "unknown_sender", "sender: unknown");
	OK(a.dealer == NULL, "sender: unknown has no dealer");
	sg_auth_clear(&a);
	sg_auth_sender(st, NULL, "remains", &a, NULL);
	IS(a.reason, "unknown_sender", "sender: NULL From");
	sg_auth_clear(&a);
}

int main(void)
{
	sg_store *st = NULL;
	g_autofree char *err = NULL;

	test_ar();
	if (sg_store_open("", &st, &err) != SG_OK) {
		OK(0, "scratch store: %s", err ? err : "");
		return tap_done();
	}
	OK(sg_dealer_add(st, "D1", "Dealer One", KEY, NULL) == SG_OK &&
	       sg_dealer_add(st, "D2", "Dealer Two", "OTHER-KEY", NULL) == SG_OK &&
	       sg_dealer_set_dev_mode(st, "D1", true, NULL) == SG_OK &&
	       sg_user_add(st, "Ivan@D1.example", "D1", SG_ROLE_REMAINS_UPLOAD, NULL) == SG_OK &&
	       sg_user_add(st, "robot@d1.example", "D1", SG_ROLE_BATCH_VIN, NULL) == SG_OK &&
	       sg_user_add(st, "boss@d1.example", "D2", SG_ROLE_REMAINS_UPLOAD, NULL) == SG_OK,
	   "registry set up");
	test_verdicts(st);
	test_sender_only(st);
	sg_store_close(st);
	return tap_done();
}
