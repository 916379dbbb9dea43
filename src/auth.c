/* auth.c: who sent a message and whether it may have effects or a reply (SPEC 5.1, 5.2). */
#include "auth.h"

#include <string.h>

#include "util.h"

/* ---- Authentication-Results (RFC 8601) ---- */

/* The value with comments removed (nested parentheses, quoted strings kept as they are). */
static char *strip_comments(const char *s)
{
	GString *out = g_string_new(NULL);
	int depth = 0;
	bool quoted = false;

	for (; *s != '\0'; s++) {
		if (depth == 0 && *s == '"') {
			quoted = !quoted;
		} else if (quoted && *s == '\\' && s[1] != '\0') {
			g_string_append_c(out, *s++);
		} else if (!quoted && *s == '(') {
			depth++;
			continue;
		} else if (!quoted && depth > 0 && *s == '\\' && s[1] != '\0') {
			s++;
			continue;
		} else if (!quoted && depth > 0 && *s == ')') {
			depth--;
			g_string_append_c(out, ' ');
			continue;
		}
		if (depth == 0)
			g_string_append_c(out, *s);
	}
	return g_string_free(out, FALSE);
}

/* Splits a resinfo into tokens at blanks outside quotes, joining "a = b" into "a=b"; quotes are
 * removed from values. */
static GPtrArray *tokens(const char *s)
{
	GPtrArray *t = g_ptr_array_new_with_free_func(g_free);
	GString *cur = g_string_new(NULL);
	bool quoted = false;

	for (;; s++) {
		char c = *s;
		if (c == '\0' || (!quoted && g_ascii_isspace(c))) {
			if (cur->len > 0) {
				/* "a =" + "b" or "a" + "=b" become one token */
				const char *last = t->len ? g_ptr_array_index(t, t->len - 1) : NULL;
				size_t ll = last ? strlen(last) : 0;
				if (last &&
				    ((ll > 0 && last[ll - 1] == '=') || cur->str[0] == '=')) {
					char *j = g_strconcat(last, cur->str, NULL);
					g_ptr_array_remove_index(t, t->len - 1);
					g_ptr_array_add(t, j);
				} else {
					g_ptr_array_add(t, g_strdup(cur->str));
				}
				g_string_truncate(cur, 0);
			}
			if (c == '\0')
				break;
			continue;
		}
		if (c == '"') {
			quoted = !quoted;
			continue;
		}
		if (quoted && c == '\\' && s[1] != '\0')
			c = *++s;
		g_string_append_c(cur, c);
	}
	g_string_free(cur, TRUE);
	return t;
}

/* Whether one resinfo ("dkim=pass header.d=x") shows a pass that counts for from_domain. */
static bool resinfo_pass(const char *ri, const char *from_domain)
{
	g_autoptr(GPtrArray) t = tokens(ri);
	const char *mr;
	guint i;

	if (t->len == 0)
		return false;
	mr = g_ptr_array_index(t, 0);
	if (g_ascii_strcasecmp(mr, "dmarc=pass") == 0)
		return true;
	if (g_ascii_strcasecmp(mr, "dkim=pass") != 0 || from_domain == NULL || *from_domain == '\0')
		return false;
	for (i = 1; i < t->len; i++) {
		const char *p = g_ptr_array_index(t, i), *d = NULL;
		if (g_ascii_strncasecmp(p, "header.d=", 9) == 0) {
			d = p + 9;
		} else if (g_ascii_strncasecmp(p, "header.i=", 9) == 0) {
			const char *at = strrchr(p + 9, '@');
			d = at ? at + 1 : p + 9;
		}
		if (d != NULL && g_ascii_strcasecmp(d, from_domain) == 0)
			return true;
	}
	return false;
}

bool sg_auth_results_pass(char *const *auth_results, const char *authserv_id,
			  const char *from_domain)
{
	size_t i;

	if (auth_results == NULL || authserv_id == NULL)
		return false;
	for (i = 0; auth_results[i] != NULL; i++) {
		g_autofree char *v = strip_comments(auth_results[i]);
		g_auto(GStrv) parts = g_strsplit(v, ";", -1);
		g_auto(GStrv) id = NULL;
		size_t k;
		bool pass = false;

		if (parts[0] == NULL)
			continue;
		/* authserv-id, optionally followed by a version */
		id = g_strsplit_set(g_strstrip(parts[0]), " \t", 2);
		if (id[0] == NULL || g_ascii_strcasecmp(id[0], authserv_id) != 0)
			continue;
		/* the topmost header of our server is the only one that counts (RFC 8601 §5) */
		for (k = 1; parts[k] != NULL && !pass; k++)
			pass = resinfo_pass(parts[k], from_domain);
		return pass;
	}
	return false;
}

/* ---- the verdict ---- */

static bool is_automatic(const sg_message *m)
{
	if (m->auto_submitted != NULL) {
		g_autofree char *v = g_strdup(m->auto_submitted);
		char *semi = strchr(v, ';');
		if (semi != NULL)
			*semi = '\0';
		g_strstrip(v);
		if (g_ascii_strcasecmp(v, "no") != 0)
			return true;
	}
	if (m->precedence != NULL) {
		g_autofree char *v = g_strstrip(g_strdup(m->precedence));
		if (g_ascii_strcasecmp(v, "bulk") == 0 || g_ascii_strcasecmp(v, "junk") == 0 ||
		    g_ascii_strcasecmp(v, "list") == 0)
			return true;
	}
	return false;
}

static bool is_mailer_daemon(const char *addr)
{
	const char *at;

	if (addr == NULL)
		return false;
	at = strrchr(addr, '@');
	return at != NULL && (size_t)(at - addr) == strlen("mailer-daemon") &&
	       g_ascii_strncasecmp(addr, "mailer-daemon", (size_t)(at - addr)) == 0;
}

sg_status sg_auth_sender(sg_store *st, const char *from, const char *method, sg_auth *a, char **err)
{
	g_autoptr(sg_user) u = NULL;
	g_autoptr(sg_dealer) d = NULL;
	unsigned need;
	sg_status s;

	a->reason = NULL;
	if (from == NULL || *from == '\0') {
		a->reason = "unknown_sender";
		return SG_OK;
	}
	s = sg_user_get(st, from, &u, NULL);
	if (s == SG_ENOINPUT || (s == SG_OK && u == NULL)) {
		a->reason = "unknown_sender";
		return SG_OK;
	}
	if (s != SG_OK)
		return sg_fail(err, s, "looking up the sender failed");
	s = sg_dealer_get(st, u->dealer, &d, NULL);
	if (s == SG_ENOINPUT || (s == SG_OK && d == NULL)) {
		a->reason = "unknown_sender";
		return SG_OK;
	}
	if (s != SG_OK)
		return sg_fail(err, s, "looking up dealer %s failed", u->dealer);
	g_free(a->dealer);
	a->dealer = g_strdup(u->dealer);
	g_free(a->reply_to);
	a->reply_to = g_strdup(u->email);
	a->dev_mode = d->dev_mode;
	need = method != NULL ? sg_role_for_method(method) : 0;
	if (need != 0 ? (u->roles & need) == 0 : u->roles == 0)
		a->reason = "no_role";
	return SG_OK;
}

/*
 * The dealer of from when it is a registered user's address, for the record of a message
 * rejected before its sender is checked (a bounce from the dealer's address, a Sender that
 * differs): SPEC 5.7 names the dealer whenever the sender is a registered user. Nothing else is
 * set: such a message is never answered.
 */
static sg_status note_dealer(sg_store *st, const char *from, sg_auth *a, char **err)
{
	g_autoptr(sg_user) u = NULL;
	sg_status s;

	if (from == NULL || *from == '\0')
		return SG_OK;
	s = sg_user_get(st, from, &u, NULL);
	if (s == SG_ENOINPUT || (s == SG_OK && u == NULL))
		return SG_OK;
	if (s != SG_OK)
		return sg_fail(err, s, "looking up the sender failed");
	g_free(a->dealer);
	a->dealer = g_strdup(u->dealer);
	return SG_OK;
}

sg_status sg_auth_check_unkeyed(sg_store *st, const sg_message *m, const char *method,
				const char *trusted_authserv_id, sg_auth *a, char **err)
{
	const char *domain;
	sg_status s;

	a->reason = NULL;
	a->automatic = is_automatic(m);
	if (m->return_path_null || is_mailer_daemon(m->from) || m->is_report)
		a->reason = "bounce";
	else if (m->own_report)
		a->reason = "own_report";
	else if (m->from_count == 0)
		a->reason = "unknown_sender";
	else if (m->from_count != 1 || m->from == NULL ||
		 (m->sender != NULL && g_ascii_strcasecmp(m->sender, m->from) != 0))
		a->reason = "several_senders";
	/* m->from is the one From address, or NULL when From has none or several (then there
	 * is no single sender to name). */
	if (a->reason != NULL)
		return note_dealer(st, m->from, a, err);
	s = sg_auth_sender(st, m->from, method, a, err);
	if (s != SG_OK || a->reason != NULL)
		return s;
	if (trusted_authserv_id != NULL && *trusted_authserv_id != '\0') {
		domain = strrchr(m->from, '@');
		if (!sg_auth_results_pass(m->auth_results, trusted_authserv_id,
					  domain ? domain + 1 : NULL))
			a->reason = "unauthenticated";
	}
	return SG_OK;
}

sg_status sg_auth_check(sg_store *st, const sg_message *m, const char *method,
			const char *trusted_authserv_id, sg_auth *a, char **err)
{
	g_autoptr(sg_dealer) d = NULL;
	sg_status s;

	s = sg_auth_check_unkeyed(st, m, method, trusted_authserv_id, a, err);
	if (s != SG_OK || a->reason != NULL)
		return s;
	if (m->key == NULL || *m->key == '\0') {
		a->reason = "bad_key";
		return SG_OK;
	}
	s = sg_dealer_get(st, a->dealer, &d, NULL);
	if (s == SG_ENOINPUT || (s == SG_OK && d == NULL)) {
		a->reason = "unknown_sender";
		return SG_OK;
	}
	if (s != SG_OK)
		return sg_fail(err, s, "looking up dealer %s failed", a->dealer);
	if (!sg_dealer_key_matches(d, m->key))
		a->reason = "bad_key";
	return SG_OK;
}

void sg_auth_clear(sg_auth *a)
{
	if (a == NULL)
		return;
	g_clear_pointer(&a->dealer, g_free);
	g_clear_pointer(&a->reply_to, g_free);
	a->reason = NULL;
	a->dev_mode = false;
	a->automatic = false;
}
