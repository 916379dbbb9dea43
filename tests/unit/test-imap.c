/* test-imap.c: the IMAP response parser over canned server replies (no network). */
#include "imap.h"
#include "tap.h"

#include <string.h>

#define S(lit) lit, sizeof(lit) - 1

static void test_line_len(void)
{
	static const struct {
		const char *in;
		size_t max;
		int want;
		size_t want_len;
	} rows[] = {
		{"* OK ready\r\n", 100, 1, 12},
		{"* OK rea", 100, 0, 0},
		{"* 1 FETCH (UID 5 BODY[] {5}\r\nab\r\nc)\r\nA1 OK\r\n", 100, 1, 37},
		{"* 1 FETCH (UID 5 BODY[] {5}\r\nab", 100, 0, 0},
		{"* 1 FETCH (UID 5 BODY[] {5}\r\nab\r\nc", 100, 0, 0},
		{"* 1 FETCH (BODY[] {5+}\r\nA1 OK)\r\n", 100, 1, 32},
		{"* 1 FETCH (BODY[] {500}\r\n", 100, -1, 0},
		{"* 1 FETCH (BODY[] {99999999999999999999}\r\n", 100, -1, 0},
		{"* LIST () \"/\" {3}\r\nabc\r\n", 100, 1, 24},
		{"* OK text with } brace\r\n", 100, 1, 24},
		{"* OK lf only\n", 100, 1, 13},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		size_t n = 0;
		int r = sg_imap_line_len(rows[i].in, strlen(rows[i].in), rows[i].max, &n);
		NUM(r, rows[i].want, "line_len row %zu result", i);
		if (r == 1)
			NUM(n, rows[i].want_len, "line_len row %zu length", i);
	}
}

static void test_tagged(void)
{
	const char *t;
	size_t tl;
	NUM(sg_imap_tagged(S("A1 OK [READ-WRITE] Select completed\r\n"), "A1", &t, &tl), SG_IMAP_OK,
	    "tagged OK");
	OK(tl == strlen("[READ-WRITE] Select completed") && memcmp(t, "[READ", 5) == 0,
	   "tagged text");
	NUM(sg_imap_tagged(S("A1 NO [TRYCREATE] no such mailbox\r\n"), "A1", NULL, NULL), SG_IMAP_NO,
	    "tagged NO");
	NUM(sg_imap_tagged(S("A1 BAD parse\r\n"), "A1", NULL, NULL), SG_IMAP_BAD, "tagged BAD");
	NUM(sg_imap_tagged(S("A12 OK done\r\n"), "A1", NULL, NULL), SG_IMAP_NONE, "other tag");
	NUM(sg_imap_tagged(S("* OK [UIDVALIDITY 3] x\r\n"), "A1", NULL, NULL), SG_IMAP_NONE,
	    "untagged is not tagged");
	NUM(sg_imap_tagged(S("A1 OKAY\r\n"), "A1", NULL, NULL), SG_IMAP_NONE, "OKAY is not OK");
	OK(sg_imap_is_bye(S("* BYE shutting down\r\n")), "BYE");
}

static void test_codes(void)
{
	gint64 v = 0;
	OK(sg_imap_resp_code_num(S("* OK [UIDVALIDITY 1795351009] UIDs valid\r\n"), "UIDVALIDITY",
				 &v) &&
	       v == 1795351009,
	   "UIDVALIDITY from SELECT");
	OK(!sg_imap_resp_code_num(S("* OK [UIDNEXT 3] Predicted next UID\r\n"), "UIDVALIDITY", &v),
	   "UIDNEXT is not UIDVALIDITY");
	OK(sg_imap_resp_code_num(S("A3 OK [COPYUID 1795 42 7] Moved UIDs.\r\n"), "COPYUID", &v) &&
	       v == 1795,
	   "COPYUID in a tagged OK");
	OK(sg_imap_has_resp_code(S("* OK [COPYUID 1795 42:43 7:8] Moved UIDs.\r\n"), "COPYUID"),
	   "COPYUID untagged (MOVE)");
	OK(!sg_imap_has_resp_code(S("A3 OK Move completed\r\n"), "COPYUID"),
	   "no COPYUID when the UID was gone");
	OK(sg_imap_has_resp_code(S("A4 NO [ALREADYEXISTS] Mailbox already exists\r\n"),
				 "ALREADYEXISTS"),
	   "ALREADYEXISTS");
	OK(!sg_imap_has_resp_code(S("A4 OK [COPYUIDX 1] x\r\n"), "COPYUID"), "longer code name");
}

static void test_capability(void)
{
	bool mv = false, up = false;
	OK(sg_imap_capability(S("* CAPABILITY IMAP4rev1 UIDPLUS LIST-EXTENDED MOVE IDLE\r\n"), &mv,
			      &up) &&
	       mv && up,
	   "CAPABILITY with MOVE and UIDPLUS");
	OK(sg_imap_capability(S("* CAPABILITY IMAP4rev1 UIDPLUS MOVEX\r\n"), &mv, &up) && !mv && up,
	   "MOVEX is not MOVE");
	OK(sg_imap_capability(S("A2 OK [CAPABILITY IMAP4rev1 MOVE] Logged in\r\n"), &mv, &up) && mv &&
	       !up,
	   "CAPABILITY response code");
	OK(!sg_imap_capability(S("* OK ready\r\n"), &mv, &up), "not a capability line");
}

static void test_search(void)
{
	GArray *a = g_array_new(FALSE, FALSE, sizeof(guint64));
	NUM(sg_imap_search(S("* SEARCH 1 2 40 41\r\n"), a), 1, "SEARCH");
	OK(a->len == 4 && g_array_index(a, guint64, 3) == 41, "SEARCH numbers");
	g_array_set_size(a, 0);
	NUM(sg_imap_search(S("* SEARCH\r\n"), a), 1, "empty SEARCH");
	NUM(a->len, 0, "no numbers");
	NUM(sg_imap_search(S("* SEARCH 1 x2\r\n"), a), -1, "malformed SEARCH");
	NUM(sg_imap_search(S("* SEARCHES 1\r\n"), a), 0, "not SEARCH");
	NUM(sg_imap_search(S("* 3 EXISTS\r\n"), a), 0, "EXISTS is not SEARCH");
	g_array_free(a, TRUE);
}

static void test_fetch(void)
{
	sg_imap_fetch f;
	NUM(sg_imap_fetch_parse(S("* 1 FETCH (UID 42 RFC822.SIZE 1234 INTERNALDATE "
				  "\"22-Nov-2026 12:36:49 +0000\" FLAGS (\\Seen))\r\n"),
				&f),
	    1, "FETCH listing");
	NUM(f.seq, 1, "seq");
	NUM(f.uid, 42, "UID");
	NUM(f.size, 1234, "RFC822.SIZE");
	NUM(f.internaldate, 1795351009, "INTERNALDATE");
	OK(f.seen && !f.has_body, "FLAGS \\Seen, no body");

	static const char lit[] = "* 7 FETCH (UID 9 BODY[] {24}\r\nSubject: x\r\n\r\nA9 OK hi\r\n)\r\n";
	NUM(sg_imap_fetch_parse(S(lit), &f), 1, "FETCH with a literal");
	OK(f.has_body && f.body_len == 24 && memcmp(f.body, "Subject: x\r\n\r\nA9 OK hi\r\n", 24) == 0,
	   "the literal is the body, a tag inside it is data");
	NUM(f.uid, 9, "UID before the literal");

	NUM(sg_imap_fetch_parse(S("* 7 FETCH (BODY[] \"abc\" UID 3)\r\n"), &f), 1, "quoted body");
	OK(f.has_body && f.body_len == 3 && f.uid == 3, "quoted body and UID after it");
	NUM(sg_imap_fetch_parse(S("* 7 FETCH (BODY[] NIL UID 3)\r\n"), &f), 1, "NIL body");
	OK(!f.has_body, "NIL is no body");
	NUM(sg_imap_fetch_parse(S("* 7 FETCH (UID 3 MODSEQ (12) X-GM-LABELS (\"a b\" c))\r\n"), &f),
	    1, "unknown items skipped");
	NUM(sg_imap_fetch_parse(S("* 7 FETCH (UID 9 BODY[] {99}\r\nshort)\r\n"), &f), -1,
	    "a literal longer than the line is malformed");
	NUM(sg_imap_fetch_parse(S("* 7 FETCH (UID 9\r\n"), &f), -1, "unclosed list");
	NUM(sg_imap_fetch_parse(S("* 7 EXPUNGE\r\n"), &f), 0, "not FETCH");
	NUM(sg_imap_fetch_parse(S("* 7 FETCH (INTERNALDATE \"bad\" UID 1)\r\n"), &f), 1,
	    "bad date is not fatal");
	NUM(f.internaldate, -1, "bad date is -1");
}

static void test_list(void)
{
	char *n = NULL;
	OK(sg_imap_list(S("* LIST (\\HasNoChildren) \"/\" Processed\r\n"), &n), "LIST atom");
	IS(n, "Processed", "LIST atom name");
	g_free(n);
	OK(sg_imap_list(S("* LIST (\\HasNoChildren) \"/\" \"My \\\"box\\\"\"\r\n"), &n),
	   "LIST quoted");
	IS(n, "My \"box\"", "LIST quoted name unescaped");
	g_free(n);
	OK(sg_imap_list(S("* LIST () NIL {5}\r\nA b c\r\n"), &n), "LIST literal, NIL separator");
	IS(n, "A b c", "LIST literal name");
	g_free(n);
	OK(!sg_imap_list(S("* LSUB () \"/\" x\r\n"), &n), "LSUB is not LIST");
}

static void test_date_quote(void)
{
	NUM(sg_imap_parse_date("22-Nov-2026 12:36:49 +0000"), 1795351009, "date UTC");
	NUM(sg_imap_parse_date(" 2-Jan-2026 00:00:00 +0300"), 1767312000 - 3 * 3600, "date +0300");
	NUM(sg_imap_parse_date("02-Jan-2026 00:00:00 -0130"), 1767312000 + 5400, "date -0130");
	NUM(sg_imap_parse_date("02-Foo-2026 00:00:00 +0000"), -1, "bad month");
	NUM(sg_imap_parse_date("02-Jan-2026 00:00:00"), -1, "no zone");
	NUM(sg_imap_parse_date("31-Feb-2026 00:00:00 +0000"), -1, "no such day");
	char *q = sg_imap_quote("a\"b\\c");
	IS(q, "\"a\\\"b\\\\c\"", "quote escapes");
	g_free(q);
	OK(sg_imap_quote("a\r\nA1 LOGOUT") == NULL, "CRLF refused");
	OK(sg_imap_quote("") == NULL, "empty refused");
}

int main(void)
{
	test_line_len();
	test_tagged();
	test_codes();
	test_capability();
	test_search();
	test_fetch();
	test_list();
	test_date_quote();
	return tap_done();
}
