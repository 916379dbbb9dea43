/* imap.c: IMAP4rev1 response parsing over buffers, kept apart from the network code so that
 * every server reply the source relies on can be tested (and fuzzed) without a server. */
#include "imap.h"

#include <stdio.h>
#include <string.h>

/* Reads a run of digits (at most 18) at s[*i]; false when none or too long. */
static bool read_num(const char *s, size_t len, size_t *i, gint64 *out)
{
	size_t j = *i;
	gint64 v = 0;
	while (j < len && g_ascii_isdigit(s[j])) {
		if (j - *i >= 18)
			return false;
		v = v * 10 + (s[j] - '0');
		j++;
	}
	if (j == *i)
		return false;
	*i = j;
	*out = v;
	return true;
}

int sg_imap_line_len(const char *buf, size_t len, size_t max_literal, size_t *line_len)
{
	size_t pos = 0;
	if (buf == NULL || len == 0)
		return 0;
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		if (!nl)
			return 0;
		size_t e = (size_t)(nl - buf); /* index of LF */
		size_t end = e;                /* end of text, before CR */
		if (end > pos && buf[end - 1] == '\r')
			end--;
		/* A literal announcement: "{digits}" or "{digits+}" right before the line end. */
		size_t k = end;
		if (k > pos && buf[k - 1] == '}') {
			k--;
			if (k > pos && buf[k - 1] == '+')
				k--;
			size_t d = k;
			while (d > pos && g_ascii_isdigit(buf[d - 1]))
				d--;
			if (d < k && d > pos && buf[d - 1] == '{') {
				gint64 n;
				size_t i = d;
				if (!read_num(buf, k, &i, &n) || i != k)
					return -1;
				if ((guint64)n > max_literal)
					return -1;
				if (len - (e + 1) < (size_t)n)
					return 0;
				pos = e + 1 + (size_t)n;
				continue;
			}
		}
		*line_len = e + 1;
		return 1;
	}
}

/* The text of line without its final CRLF. */
static size_t text_len(const char *line, size_t len)
{
	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	return len;
}

static bool starts_ci(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && g_ascii_strncasecmp(s, prefix, n) == 0;
}

sg_imap_cond sg_imap_tagged(const char *line, size_t len, const char *tag, const char **text,
			    size_t *tlen)
{
	size_t n = strlen(tag);
	len = text_len(line, len);
	if (len <= n || memcmp(line, tag, n) != 0 || line[n] != ' ')
		return SG_IMAP_NONE;
	const char *p = line + n + 1;
	size_t rest = len - n - 1;
	sg_imap_cond c;
	size_t w;
	if (starts_ci(p, rest, "OK"))
		c = SG_IMAP_OK, w = 2;
	else if (starts_ci(p, rest, "NO"))
		c = SG_IMAP_NO, w = 2;
	else if (starts_ci(p, rest, "BAD"))
		c = SG_IMAP_BAD, w = 3;
	else
		return SG_IMAP_NONE;
	if (rest > w && p[w] != ' ')
		return SG_IMAP_NONE;
	if (text) {
		size_t skip = rest > w ? w + 1 : w;
		*text = p + skip;
		if (tlen)
			*tlen = rest - skip;
	}
	return c;
}

bool sg_imap_is_bye(const char *line, size_t len)
{
	return starts_ci(line, text_len(line, len), "* BYE");
}

/* Finds "[NAME" followed by a space or ']' in the text of line; returns the index after NAME. */
static bool find_code(const char *line, size_t len, const char *name, size_t *after)
{
	size_t n = strlen(name);
	len = text_len(line, len);
	for (size_t i = 0; i + 1 + n <= len; i++) {
		if (line[i] != '[' || g_ascii_strncasecmp(line + i + 1, name, n) != 0)
			continue;
		size_t j = i + 1 + n;
		if (j < len && line[j] != ' ' && line[j] != ']')
			continue;
		*after = j;
		return true;
	}
	return false;
}

bool sg_imap_has_resp_code(const char *line, size_t len, const char *name)
{
	size_t after;
	return find_code(line, len, name, &after);
}

bool sg_imap_resp_code_num(const char *line, size_t len, const char *name, gint64 *value)
{
	size_t i;
	len = text_len(line, len);
	if (!find_code(line, len, name, &i) || i >= len || line[i] != ' ')
		return false;
	i++;
	return read_num(line, len, &i, value);
}

/* Walks the space-separated atoms from s[i] up to stop (']' or the end). */
static void caps_scan(const char *s, size_t i, size_t len, char stop, bool *move, bool *uidplus)
{
	*move = *uidplus = false;
	while (i < len && s[i] != stop) {
		while (i < len && s[i] == ' ')
			i++;
		size_t b = i;
		while (i < len && s[i] != ' ' && s[i] != stop)
			i++;
		size_t w = i - b;
		if (w == 4 && g_ascii_strncasecmp(s + b, "MOVE", 4) == 0)
			*move = true;
		else if (w == 7 && g_ascii_strncasecmp(s + b, "UIDPLUS", 7) == 0)
			*uidplus = true;
	}
}

bool sg_imap_capability(const char *line, size_t len, bool *move, bool *uidplus)
{
	size_t i;
	len = text_len(line, len);
	if (starts_ci(line, len, "* CAPABILITY ")) {
		caps_scan(line, strlen("* CAPABILITY "), len, '\0', move, uidplus);
		return true;
	}
	if (find_code(line, len, "CAPABILITY", &i)) {
		caps_scan(line, i, len, ']', move, uidplus);
		return true;
	}
	return false;
}

int sg_imap_search(const char *line, size_t len, GArray *uids)
{
	len = text_len(line, len);
	if (!starts_ci(line, len, "* SEARCH"))
		return 0;
	size_t i = strlen("* SEARCH");
	if (i < len && line[i] != ' ')
		return 0;
	while (i < len) {
		while (i < len && line[i] == ' ')
			i++;
		if (i >= len)
			break;
		/* A MODSEQ suffix "(MODSEQ n)" ends the list of numbers. */
		if (line[i] == '(')
			break;
		gint64 v;
		if (!read_num(line, len, &i, &v) || (i < len && line[i] != ' '))
			return -1;
		guint64 u = (guint64)v;
		g_array_append_val(uids, u);
	}
	return 1;
}

/* A tiny cursor over a response line, for FETCH and LIST. */
typedef struct {
	const char *s;
	size_t len, i;
} cur;

static void skip_sp(cur *c)
{
	while (c->i < c->len && c->s[c->i] == ' ')
		c->i++;
}

/* An atom (with a bracketed section such as BODY[HEADER.FIELDS (A B)] kept whole). */
static bool atom(cur *c, const char **a, size_t *alen)
{
	size_t b = c->i;
	while (c->i < c->len) {
		char ch = c->s[c->i];
		if (ch == '[') {
			const char *e = memchr(c->s + c->i, ']', c->len - c->i);
			if (!e)
				return false;
			c->i = (size_t)(e - c->s) + 1;
			continue;
		}
		if (ch == ' ' || ch == '(' || ch == ')' || ch == '"' || ch == '{' || ch == '\r' ||
		    ch == '\n')
			break;
		c->i++;
	}
	*a = c->s + b;
	*alen = c->i - b;
	return c->i > b;
}

/* A string: quoted (escapes kept raw in *out unless unq) or a literal {n}CRLF bytes. For NIL,
 * *out = NULL. With unq, a quoted string is unescaped into *owned (g_free). */
static bool string(cur *c, const char **out, size_t *olen, char **owned)
{
	if (owned)
		*owned = NULL;
	if (c->i >= c->len)
		return false;
	char ch = c->s[c->i];
	if (ch == '"') {
		GString *g = owned ? g_string_new(NULL) : NULL;
		size_t b = ++c->i;
		while (c->i < c->len && c->s[c->i] != '"') {
			if (c->s[c->i] == '\\' && c->i + 1 < c->len)
				c->i++;
			if (c->s[c->i] == '\r' || c->s[c->i] == '\n') {
				if (g)
					g_string_free(g, TRUE);
				return false;
			}
			if (g)
				g_string_append_c(g, c->s[c->i]);
			c->i++;
		}
		if (c->i >= c->len) {
			if (g)
				g_string_free(g, TRUE);
			return false;
		}
		*out = c->s + b;
		*olen = c->i - b;
		c->i++;
		if (g) {
			*olen = g->len;
			*owned = g_string_free(g, FALSE);
			*out = *owned;
		}
		return true;
	}
	if (ch == '{') {
		gint64 n;
		c->i++;
		if (!read_num(c->s, c->len, &c->i, &n))
			return false;
		if (c->i < c->len && c->s[c->i] == '+')
			c->i++;
		if (c->i + 3 > c->len || c->s[c->i] != '}' || c->s[c->i + 1] != '\r' ||
		    c->s[c->i + 2] != '\n')
			return false;
		c->i += 3;
		if ((guint64)n > c->len - c->i)
			return false;
		*out = c->s + c->i;
		*olen = (size_t)n;
		c->i += (size_t)n;
		if (owned)
			*owned = g_strndup(*out, *olen);
		return true;
	}
	const char *a;
	size_t alen;
	if (atom(c, &a, &alen) && alen == 3 && g_ascii_strncasecmp(a, "NIL", 3) == 0) {
		*out = NULL;
		*olen = 0;
		return true;
	}
	return false;
}

/* Skips one value: a number/atom, a string, or a parenthesised list (nested). */
static bool skip_value(cur *c, int depth)
{
	if (depth > 20 || c->i >= c->len)
		return false;
	char ch = c->s[c->i];
	if (ch == '(') {
		c->i++;
		for (;;) {
			skip_sp(c);
			if (c->i >= c->len)
				return false;
			if (c->s[c->i] == ')') {
				c->i++;
				return true;
			}
			if (!skip_value(c, depth + 1))
				return false;
		}
	}
	if (ch == '"' || ch == '{') {
		const char *o;
		size_t ol;
		return string(c, &o, &ol, NULL);
	}
	const char *a;
	size_t alen;
	return atom(c, &a, &alen);
}

static bool is_name(const char *a, size_t alen, const char *name)
{
	return alen == strlen(name) && g_ascii_strncasecmp(a, name, alen) == 0;
}

int sg_imap_fetch_parse(const char *line, size_t len, sg_imap_fetch *f)
{
	memset(f, 0, sizeof *f);
	f->seq = f->uid = f->size = f->internaldate = -1;
	cur c = {line, text_len(line, len), 0};
	if (!starts_ci(line, c.len, "* "))
		return 0;
	c.i = 2;
	gint64 seq;
	if (!read_num(c.s, c.len, &c.i, &seq) || !starts_ci(c.s + c.i, c.len - c.i, " FETCH "))
		return 0;
	f->seq = seq;
	c.i += strlen(" FETCH ");
	if (c.i >= c.len || c.s[c.i] != '(')
		return -1;
	c.i++;
	for (;;) {
		skip_sp(&c);
		if (c.i >= c.len)
			return -1;
		if (c.s[c.i] == ')') {
			c.i++;
			break;
		}
		const char *a;
		size_t alen;
		if (!atom(&c, &a, &alen))
			return -1;
		skip_sp(&c);
		if (is_name(a, alen, "UID") || is_name(a, alen, "RFC822.SIZE")) {
			gint64 v;
			if (!read_num(c.s, c.len, &c.i, &v))
				return -1;
			if (is_name(a, alen, "UID"))
				f->uid = v;
			else
				f->size = v;
		} else if (is_name(a, alen, "INTERNALDATE")) {
			const char *d;
			size_t dl;
			if (!string(&c, &d, &dl, NULL))
				return -1;
			if (d) {
				char *tmp = g_strndup(d, dl);
				f->internaldate = sg_imap_parse_date(tmp);
				g_free(tmp);
			}
		} else if (is_name(a, alen, "FLAGS")) {
			size_t b = c.i;
			if (c.i >= c.len || c.s[c.i] != '(' || !skip_value(&c, 0))
				return -1;
			for (size_t k = b; k + 5 <= c.i; k++)
				if (g_ascii_strncasecmp(c.s + k, "\\Seen", 5) == 0 &&
				    (c.s[k + 5] == ' ' || c.s[k + 5] == ')'))
					f->seen = true;
		} else if (is_name(a, alen, "BODY[]") || is_name(a, alen, "BODY[HEADER]")) {
			if (!string(&c, &f->body, &f->body_len, NULL))
				return -1;
			f->has_body = f->body != NULL;
		} else if (!skip_value(&c, 0)) {
			return -1;
		}
	}
	skip_sp(&c);
	return c.i == c.len ? 1 : -1;
}

bool sg_imap_list(const char *line, size_t len, char **name)
{
	cur c = {line, text_len(line, len), 0};
	if (!starts_ci(line, c.len, "* LIST "))
		return false;
	c.i = strlen("* LIST ");
	if (c.i >= c.len || c.s[c.i] != '(' || !skip_value(&c, 0))
		return false;
	skip_sp(&c);
	const char *s;
	size_t sl;
	char *own = NULL;
	if (!string(&c, &s, &sl, NULL)) /* the hierarchy separator, or NIL */
		return false;
	skip_sp(&c);
	if (c.i < c.len && (c.s[c.i] == '"' || c.s[c.i] == '{')) {
		if (!string(&c, &s, &sl, &own) || !s)
			return false;
		*name = own;
		return true;
	}
	const char *a;
	size_t alen;
	if (!atom(&c, &a, &alen))
		return false;
	*name = g_strndup(a, alen);
	return true;
}

gint64 sg_imap_parse_date(const char *s)
{
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	int d, y, hh, mm, ss, n = 0;
	char m[4], sign;
	int zone;
	while (*s == ' ')
		s++;
	if (sscanf(s, "%2d-%3c-%4d %2d:%2d:%2d %c%4d%n", &d, m, &y, &hh, &mm, &ss, &sign, &zone,
		   &n) != 8 ||
	    s[n] != '\0' || (sign != '+' && sign != '-'))
		return -1;
	m[3] = '\0';
	int mi = -1;
	for (int i = 0; i < 12; i++)
		if (g_ascii_strcasecmp(m, mon[i]) == 0)
			mi = i;
	if (mi < 0 || zone > 1459 || zone % 100 > 59)
		return -1;
	GDateTime *dt = g_date_time_new_utc(y, mi + 1, d, hh, mm, ss);
	if (!dt)
		return -1;
	gint64 t = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	gint64 off = (zone / 100) * 3600 + (zone % 100) * 60;
	return sign == '+' ? t - off : t + off;
}

char *sg_imap_quote(const char *s)
{
	if (!s || !*s || strpbrk(s, "\r\n"))
		return NULL;
	GString *g = g_string_new("\"");
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_c(g, '\\');
		g_string_append_c(g, *p);
	}
	g_string_append_c(g, '"');
	return g_string_free(g, FALSE);
}
