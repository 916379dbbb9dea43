/* stock.c: warehouses and remains files (SPEC 5.4–5.5): validate, sum, diff, apply, mirror. */
#include <errno.h>
#include <string.h>
#include <glib/gstdio.h>
#include <sys/mman.h>

#include "csvin.h"
#include "log.h"
#include "mirror.h"
#include "stock.h"
#include "util.h"

#define SAVEPOINT "stock_file"
#define QTY_MAX 999999999LL
#define ARTICLE_MAX 64
#define CODE_MAX 64
#define ARTICLE_BYTES (ARTICLE_MAX * 4) /* UTF-8 */
/* A value quoted inside an error message is cut to this many characters. */
#define QUOTE_MAX 100

enum field { F_CODE, F_ADDRESS, F_CONTACTS, F_ARTICLE, F_QUANTITY, F_N };

static const struct {
	const char *key; /* as sg_csv_header_key returns it */
	enum field f;
} header_names[] = {
    {"код склада", F_CODE},   {"code", F_CODE},		{"warehouse", F_CODE},
    {"адрес", F_ADDRESS},     {"address", F_ADDRESS},	{"контакты", F_CONTACTS},
    {"contacts", F_CONTACTS}, {"артикул", F_ARTICLE},	{"article", F_ARTICLE},
    {"остаток", F_QUANTITY},  {"quantity", F_QUANTITY},
};

static const enum field wh_fields[] = {F_ADDRESS, F_CONTACTS, F_CODE};
static const enum field rem_fields[] = {F_CODE, F_ARTICLE, F_QUANTITY};
static const char *const expected_wh = "Адрес (address), Контакты (contacts), Код склада (code)";
static const char *const expected_rem = "Код склада (code), Артикул (article), Остаток (quantity)";

/*
 * The articles of a remains file, each distinct one with its summed quantity, held in memory
 * while the file is read: repeats are summed and found here, and the list stored for the
 * warehouse is then diffed against it and written from it, in the order the file first named the
 * articles. Purpose-built rather than a GHashTable: an article costs 12 bytes (sum and
 * text offset), its slot 16 to 32 (8-byte slots, at most half full) and its text once in an
 * arena, about 45 MB for a million 11-byte articles, where a GHashTable with g_strdup'd keys and
 * boxed sums costs about 100 bytes an entry. Memory is bounded by max_rows: at most that many
 * articles, each at most 64 characters (257 bytes with its NUL), plus 16 bytes for each
 * repeated row (run.repeats). Open addressing with linear probing; a slot keeps its text's hash
 * so that a probe reads no entry and no text unless the hashes match (a million probes into
 * cold memory are what costs here); the hash is seeded per table so that a file cannot be built
 * to collide.
 */
typedef struct {
	guint32 hash;
	guint32 idx; /* entry index + 1; 0: empty */
} art_slot;

/* A row waiting for its slot's cache line (see art_push). */
typedef struct {
	gint64 line, qty;
	guint32 hash;
	guint16 len;
	char text[ARTICLE_BYTES + 1];
} art_pending;

#define ART_QUEUE 8 /* rows in flight: enough to cover a memory latency */

typedef struct {
	gint64 *sum;	/* by entry: summed quantity */
	guint32 *off;	/* by entry: of its NUL-terminated text in the arena */
	guint32 n, cap; /* entries used and allocated */
	art_slot *slot;
	guint32 mask; /* slots - 1; the slot count is a power of two */
	size_t slot_bytes;
	char *arena;
	size_t len, size;
	guint32 seed;
	bool full; /* the arena reached 4 GiB: nothing more is added */
	GArray *repeats; /* art_repeat: each row whose article an earlier row had, line order */
	GArray *first;	 /* gint64 by entry: its first line, or NULL when not wanted */
	art_pending queue[ART_QUEUE];
	guint qhead, qlen;
} art_table;

/* A row whose article an earlier row had. */
typedef struct {
	gint64 line;
	guint32 idx; /* its entry */
} art_repeat;

#define ART_ARENA_MAX ((size_t)G_MAXUINT32)

static guint32 art_hash(const art_table *t, const char *s, size_t len)
{
	guint32 h = 2166136261u ^ t->seed; /* FNV-1a, then murmur3's finaliser for the low bits */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/*
 * The table's arrays are large and the slots are read at random: a million-row file touches
 * about 50 MB of them, which in 4 KiB pages is some 12,000 page faults and a TLB miss a row,
 * together a quarter of `check` on a virtual machine. An array of 2 MiB or more is therefore a
 * mapping of its own, asked for in transparent huge pages before it is touched (where the
 * kernel offers them); it grows with mremap, which keeps the advice. Smaller ones come from
 * malloc. big_alloc0's memory is zeroed; what big_grow adds is not.
 */
#define HUGE_PAGE ((size_t)2 << 20)

static size_t big_round(size_t bytes) { return (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1); }

static void *big_alloc0(size_t bytes)
{
	void *p;
	if (bytes < HUGE_PAGE)
		return g_malloc0(bytes);
	p = mmap(NULL, big_round(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		 0);
	if (p == MAP_FAILED) /* as g_malloc does */
		g_error("stock: cannot map %zu bytes: %s", bytes, g_strerror(errno));
#ifdef MADV_HUGEPAGE
	madvise(p, big_round(bytes), MADV_HUGEPAGE);
#endif
	return p;
}

static void *big_grow(void *p, size_t old, size_t bytes)
{
	void *q;
	if (old >= HUGE_PAGE) {
		q = mremap(p, big_round(old), big_round(bytes), MREMAP_MAYMOVE);
		if (q == MAP_FAILED)
			g_error("stock: cannot map %zu bytes: %s", bytes, g_strerror(errno));
		return q;
	}
	if (bytes < HUGE_PAGE)
		return g_realloc(p, bytes);
	q = big_alloc0(bytes);
	if (old)
		memcpy(q, p, old);
	g_free(p);
	return q;
}

static void big_free(void *p, size_t bytes)
{
	if (bytes < HUGE_PAGE)
		g_free(p);
	else if (p)
		munmap(p, big_round(bytes));
}

/* Empties the table; first: whether to keep each article's first line. */
static void art_reset(art_table *t, bool first)
{
	big_free(t->sum, (size_t)t->cap * sizeof *t->sum);
	big_free(t->off, (size_t)t->cap * sizeof *t->off);
	big_free(t->slot, t->slot_bytes);
	big_free(t->arena, t->size);
	if (t->repeats)
		g_array_unref(t->repeats);
	if (t->first)
		g_array_unref(t->first);
	memset(t, 0, offsetof(art_table, queue));
	t->qhead = t->qlen = 0;
	t->repeats = g_array_new(FALSE, FALSE, sizeof(art_repeat));
	t->first = first ? g_array_new(FALSE, FALSE, sizeof(gint64)) : NULL;
}

static void art_clear(art_table *t)
{
	art_reset(t, false);
	g_array_unref(t->repeats);
	t->repeats = NULL;
}

static const char *art_text(const art_table *t, guint32 idx) { return t->arena + t->off[idx]; }

static void art_rehash(art_table *t, guint32 slots)
{
	art_slot *old = t->slot;
	guint32 nold = old ? t->mask + 1 : 0;
	size_t old_bytes = t->slot_bytes;

	t->slot_bytes = (size_t)slots * sizeof(art_slot);
	t->slot = big_alloc0(t->slot_bytes);
	t->mask = slots - 1;
	for (guint32 k = 0; k < nold; k++) {
		if (!old[k].idx)
			continue;
		guint32 i = old[k].hash & t->mask;
		while (t->slot[i].idx)
			i = (i + 1) & t->mask;
		t->slot[i] = old[k];
	}
	big_free(old, old_bytes);
}

/* The slot of text s with hash h: its entry's, or the empty one it would take. */
static guint32 art_probe(const art_table *t, const char *s, guint32 h)
{
	guint32 i = h & t->mask;
	for (const art_slot *sl; (sl = &t->slot[i])->idx; i = (i + 1) & t->mask)
		if (sl->hash == h && strcmp(art_text(t, sl->idx - 1), s) == 0)
			break;
	return i;
}

/*
 * Sizes an empty table for about rows articles, so that a large file skips the early doublings
 * and their rehashes (each a pass of cache misses). Only the slots are touched now; the rest is
 * faulted in as it fills.
 */
static void art_reserve(art_table *t, guint32 rows)
{
	guint32 slots = 1024;
	while (slots / 2 < rows && slots < G_MAXUINT32 / 4)
		slots *= 2;
	t->seed = g_random_int();
	art_rehash(t, slots);
	t->cap = MAX(rows, 1024u);
	t->sum = big_alloc0((size_t)t->cap * sizeof *t->sum);
	t->off = big_alloc0((size_t)t->cap * sizeof *t->off);
	t->size = MAX((size_t)rows * 16, (size_t)64 * 1024);
	t->arena = big_alloc0(t->size);
}

/* Grows the slots before they pass half full. */
static void art_room(art_table *t)
{
	if (t->slot == NULL) {
		t->seed = g_random_int();
		art_rehash(t, 1024);
	} else if (t->n >= (t->mask + 1) / 2 && t->mask < G_MAXUINT32 / 2) {
		art_rehash(t, (t->mask + 1) * 2);
	}
}

/* Adds a row's quantity to its article's sum, adding the article when new. */
static void art_insert(art_table *t, const art_pending *p)
{
	guint32 i, idx;

	art_room(t);
	i = art_probe(t, p->text, p->hash);
	if (t->slot[i].idx) {
		idx = t->slot[i].idx - 1;
		t->sum[idx] += p->qty;
		g_array_append_vals(t->repeats, &(art_repeat){.line = p->line, .idx = idx}, 1);
		return;
	}
	if (t->n >= G_MAXUINT32 / 2 || t->len + p->len + 1 > ART_ARENA_MAX) {
		t->full = true;
		return;
	}
	if (t->len + p->len + 1 > t->size) {
		size_t size = MAX(t->size * 2, MAX(t->len + p->len + 1, (size_t)64 * 1024));
		size = MIN(size, ART_ARENA_MAX);
		t->arena = big_grow(t->arena, t->size, size);
		t->size = size;
	}
	if (t->n == t->cap) {
		guint32 cap = t->cap ? t->cap * 2 : 1024;
		t->sum = big_grow(t->sum, (size_t)t->cap * sizeof *t->sum, (size_t)cap * sizeof *t->sum);
		t->off = big_grow(t->off, (size_t)t->cap * sizeof *t->off, (size_t)cap * sizeof *t->off);
		t->cap = cap;
	}
	memcpy(t->arena + t->len, p->text, p->len + 1);
	t->sum[t->n] = p->qty;
	t->off[t->n] = (guint32)t->len;
	t->len += p->len + 1;
	t->slot[i] = (art_slot){.hash = p->hash, .idx = ++t->n};
	if (t->first)
		g_array_append_vals(t->first, &p->line, 1);
}

/*
 * Adds a row (article s of len bytes, at most ARTICLE_BYTES). Rows wait in a short queue with
 * their slot's cache line prefetched, and are inserted in line order: the table is complete once
 * art_flush has run. Returns false when the table is full (4 GiB of text; the caller stops).
 */
static bool art_push(art_table *t, const char *s, size_t len, gint64 qty, gint64 line)
{
	art_pending *p;

	if (t->qlen == ART_QUEUE) {
		art_insert(t, &t->queue[t->qhead]);
		t->qhead = (t->qhead + 1) % ART_QUEUE;
		t->qlen--;
	}
	if (t->slot == NULL)
		art_room(t);
	p = &t->queue[(t->qhead + t->qlen++) % ART_QUEUE];
	p->line = line;
	p->qty = qty;
	p->len = (guint16)len;
	memcpy(p->text, s, len + 1);
	p->hash = art_hash(t, s, len);
	__builtin_prefetch(&t->slot[p->hash & t->mask]);
	return !t->full;
}

/* Inserts the rows still queued. Returns false when the table is full. */
static bool art_flush(art_table *t)
{
	for (; t->qlen; t->qlen--, t->qhead = (t->qhead + 1) % ART_QUEUE)
		art_insert(t, &t->queue[t->qhead]);
	return !t->full;
}

/* The entry of article s, or -1. */
static gint64 art_find(const art_table *t, const char *s)
{
	if (t->n == 0)
		return -1;
	guint32 i = art_probe(t, s, art_hash(t, s, strlen(s)));
	return t->slot[i].idx ? (gint64)t->slot[i].idx - 1 : -1;
}

/* The state of one file being read. */
typedef struct {
	const sg_stock_ctx *c;
	sg_store *st;
	sqlite3 *db;
	sg_file_result *fr;
	bool remains;

	/* The header: position of each field (-1 absent), the column count, the names as
	 * written. */
	bool have_header, header_bad;
	int pos[F_N];
	size_t ncols;
	char *name[F_N];

	sqlite3_stmt *ins_wh, *has_wh;
	art_table arts; /* remains: the distinct articles read so far, summed */
	guint8 *out;	/* by entry of arts: outside the catalogue (NULL: none is) */
	long distinct;	/* entries of arts in the catalogue */
	guint32 next;	/* the entry next_article gives next */
	bool catalog;  /* the catalogue is not empty: filter articles */
	char *warehouse;
	long rows;
	const char *reject; /* a file-level verdict reached while reading */
	sg_status fail;	    /* a store error while reading */
	char *fail_err;
} run;

bool sg_valid_code(const char *s)
{
	long n = 0;
	if (!s || !g_utf8_validate(s, -1, NULL))
		return false;
	for (const char *p = s; *p; p = g_utf8_next_char(p)) {
		gunichar ch = g_utf8_get_char(p);
		if (++n > CODE_MAX)
			return false;
		if ((ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.')
			continue;
		if (!g_unichar_isalpha(ch))
			return false;
		GUnicodeScript sc = g_unichar_get_script(ch);
		if (sc != G_UNICODE_SCRIPT_LATIN && sc != G_UNICODE_SCRIPT_CYRILLIC)
			return false;
	}
	return n > 0;
}

/* Length of a blank (space, TAB, NBSP, U+202F) at p, or 0. */
static int blank_len(const char *p)
{
	if (*p == ' ' || *p == '\t')
		return 1;
	if ((unsigned char)p[0] == 0xc2 && (unsigned char)p[1] == 0xa0)
		return 2;
	if ((unsigned char)p[0] == 0xe2 && (unsigned char)p[1] == 0x80 &&
	    (unsigned char)p[2] == 0xaf)
		return 3;
	return 0;
}

/* Length of a thousands separator (space, NBSP, U+202F) at p, or 0. */
static int group_sep_len(const char *p) { return *p == '\t' ? 0 : blank_len(p); }

bool sg_parse_quantity(const char *s, long long *out)
{
	long long v = 0;
	int group = 0, len;
	bool grouped = false, any = false;
	const char *p = s, *end;

	if (!s)
		return false;
	while ((len = blank_len(p)))
		p += len;
	end = p + strlen(p);
	while (end > p) {
		if (end - p >= 1 && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		else if (end - p >= 2 && blank_len(end - 2) == 2)
			end -= 2;
		else if (end - p >= 3 && blank_len(end - 3) == 3)
			end -= 3;
		else
			break;
	}
	/* Whole part: digits, optionally in groups of three after a first group of 1–3. */
	while (p < end) {
		if (*p >= '0' && *p <= '9') {
			v = v * 10 + (*p - '0');
			if (v > QTY_MAX)
				return false;
			group++;
			any = true;
			p++;
		} else if ((len = group_sep_len(p))) {
			if (group == 0 || (grouped ? group != 3 : group > 3))
				return false;
			grouped = true;
			group = 0;
			p += len;
		} else {
			break;
		}
	}
	if (!any || (grouped && group != 3))
		return false;
	/* A decimal part is accepted only when it is zero ("5,00", 1C's "10,000"). */
	if (p < end && (*p == ',' || *p == '.')) {
		p++;
		if (p == end)
			return false;
		for (; p < end; p++)
			if (*p != '0')
				return false;
	}
	if (p != end)
		return false;
	*out = v;
	return true;
}

static int field_of(const char *cell, bool remains)
{
	g_autofree char *key = sg_csv_header_key(cell);
	for (size_t i = 0; i < G_N_ELEMENTS(header_names); i++) {
		if (strcmp(key, header_names[i].key) != 0)
			continue;
		enum field f = header_names[i].f;
		bool wanted = remains ? (f == F_CODE || f == F_ARTICLE || f == F_QUANTITY)
				      : (f == F_CODE || f == F_ADDRESS || f == F_CONTACTS);
		return wanted ? (int)f : -1;
	}
	return -1;
}

/* Maps header cells to fields. Returns whether the record has every field of the kind; *bad
 * when it also has an unknown or a repeated column. */
static bool map_header(bool remains, char **cells, size_t n, int pos[F_N], size_t *ncols, bool *bad)
{
	const enum field *want = remains ? rem_fields : wh_fields;
	*bad = false;
	for (int f = 0; f < F_N; f++)
		pos[f] = -1;
	while (n > 0 && !*cells[n - 1])
		n--;
	*ncols = n;
	for (size_t i = 0; i < n; i++) {
		if (!*cells[i])
			continue;
		int f = field_of(cells[i], remains);
		if (f < 0 || pos[f] >= 0)
			*bad = true;
		else
			pos[f] = (int)i;
	}
	for (int i = 0; i < 3; i++)
		if (pos[want[i]] < 0)
			return false;
	return true;
}

static bool header_cb(void *vr, char **cells, size_t n)
{
	run *r = vr;
	int pos[F_N];
	size_t ncols;
	bool bad;

	if (!map_header(r->remains, cells, n, pos, &ncols, &bad))
		return false;
	/* The first match is kept; sg_stock_apply_file checks it against the header the reader
	 * settled on. */
	if (!r->have_header) {
		r->have_header = true;
		r->header_bad = bad;
		memcpy(r->pos, pos, sizeof pos);
		r->ncols = ncols;
		for (int f = 0; f < F_N; f++)
			r->name[f] = g_strdup(pos[f] >= 0 ? cells[pos[f]] : NULL);
	}
	return true;
}

static char *quote(const char *v) { return sg_truncate(v, QUOTE_MAX); }

static void store_error(run *r, int rc, const char *what)
{
	if (r->fail)
		return;
	r->fail = rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? SG_ETEMP : SG_EIO;
	r->fail_err = g_strdup_printf("state db: %s: %s", what, sqlite3_errmsg(r->db));
}

/* Steps a statement that returns at most one row and resets it; returns the sqlite code. */
static int step_reset(run *r, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		store_error(r, rc, what);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

static void file_reject_now(run *r, const char *reason)
{
	r->reject = reason;
	/* A file-level verdict stands alone: the row issues found so far would only confuse. */
	g_ptr_array_set_size(r->fr->errors, 0);
	g_ptr_array_set_size(r->fr->warnings, 0);
}

/* The first valid code of a remains file decides its warehouse. Returns false to stop. */
static bool set_warehouse(run *r, const char *code)
{
	const sg_stock_ctx *c = r->c;
	r->warehouse = g_strdup(code);
	g_free(r->fr->warehouse);
	r->fr->warehouse = g_strdup(code);
	if (c->seen && g_hash_table_contains(c->seen, code)) {
		file_reject_now(r, "duplicate_warehouse");
		sg_file_reject(r->fr, "duplicate_warehouse",
			       "warehouse %s already had a remains file in this message", code);
		return false;
	}
	if (c->dealer) {
		sqlite3_bind_text(r->has_wh, 1, c->dealer, -1, SQLITE_STATIC);
		sqlite3_bind_text(r->has_wh, 2, code, -1, SQLITE_STATIC);
		int rc = step_reset(r, r->has_wh, "looking up a warehouse");
		if (r->fail)
			return false;
		if (rc == SQLITE_DONE) {
			file_reject_now(r, "unknown_warehouse");
			sg_file_reject(
			    r->fr, "unknown_warehouse",
			    "dealer %s has no warehouse %s: send a warehouses file first",
			    c->dealer, code);
			return false;
		}
	}
	return true;
}

/* Checks a cell's length; false (with an error) when it is too long. */
static bool length_ok(run *r, long line, enum field f, const char *v)
{
	int max = r->c->max_field_length;
	if (max <= 0 || !*v)
		return true;
	/* A character is at least one byte: most cells are settled without counting. */
	if (strlen(v) <= (size_t)max)
		return true;
	size_t n = sg_csv_cell_chars(v);
	if (n <= (size_t)max)
		return true;
	sg_file_error(r->fr, line, r->name[f], "field_too_long", v,
		      "the value is %zu characters long, more than the limit of %d", n, max);
	return false;
}

static bool required(run *r, long line, enum field f, const char *v)
{
	if (*v)
		return true;
	sg_file_error(r->fr, line, r->name[f], "missing_value", NULL, "a value is required");
	return false;
}

/* Cells are valid UTF-8 (the reader decoded them): ASCII is checked inline, the rest by GLib. */
static bool article_ok(const char *v)
{
	long n = 0;
	for (const unsigned char *p = (const unsigned char *)v; *p;) {
		if (++n > ARTICLE_MAX)
			return false;
		if (*p < 0x80) {
			if (*p < 0x20 || *p == 0x7f)
				return false;
			p++;
			continue;
		}
		if (g_unichar_iscntrl(g_utf8_get_char((const char *)p)))
			return false;
		p = (const unsigned char *)g_utf8_next_char(p);
	}
	return n > 0;
}

static void quantity_error(run *r, long line, const char *v)
{
	g_autofree char *q = quote(v);
	const char *why = "is not a whole number";
	long long dummy;
	if (*v == '-' || g_str_has_prefix(v, "\xe2\x88\x92"))
		why = "is negative";
	else if (strspn(v, "0123456789") == strlen(v) && !sg_parse_quantity(v, &dummy))
		why = "is more than 999999999";
	sg_file_error(r->fr, line, r->name[F_QUANTITY], "bad_quantity", v, "'%s' %s", q, why);
}

static void row_warehouses(run *r, long line, const char *v[F_N])
{
	sg_file_result *fr = r->fr;
	bool code_ok = length_ok(r, line, F_CODE, v[F_CODE]);
	bool addr_ok = length_ok(r, line, F_ADDRESS, v[F_ADDRESS]);

	length_ok(r, line, F_CONTACTS, v[F_CONTACTS]);
	if (code_ok && (code_ok = required(r, line, F_CODE, v[F_CODE])) &&
	    !(code_ok = sg_valid_code(v[F_CODE]))) {
		g_autofree char *q = quote(v[F_CODE]);
		sg_file_error(
		    fr, line, r->name[F_CODE], "bad_code", v[F_CODE],
		    "'%s' is not a warehouse code (1 to 64 letters, digits, '-', '_', '.')", q);
	}
	if (addr_ok)
		addr_ok = required(r, line, F_ADDRESS, v[F_ADDRESS]);
	if (!code_ok)
		return;
	/* Staged even when another cell is bad, so that a repeated code is still found. */
	sqlite3_bind_text(r->ins_wh, 1, v[F_CODE], -1, SQLITE_STATIC);
	sqlite3_bind_text(r->ins_wh, 2, v[F_ADDRESS], -1, SQLITE_STATIC);
	sqlite3_bind_text(r->ins_wh, 3, v[F_CONTACTS], -1, SQLITE_STATIC);
	if (step_reset(r, r->ins_wh, "staging a warehouse") == SQLITE_DONE &&
	    sqlite3_changes(r->db) == 0) {
		g_autofree char *q = quote(v[F_CODE]);
		sg_file_error(fr, line, r->name[F_CODE], "duplicate_code", v[F_CODE],
			      "warehouse code '%s' appears more than once in the file", q);
	}
}

static bool arts_full(run *r)
{
	if (!r->fail) {
		r->fail = SG_EINTERNAL;
		r->fail_err = g_strdup("remains: the distinct articles pass 4 GiB of memory");
	}
	return false;
}

/* Returns false to stop reading. */
static bool row_remains(run *r, long line, const char *v[F_N])
{
	sg_file_result *fr = r->fr;
	long long qty = 0;
	bool code_ok = length_ok(r, line, F_CODE, v[F_CODE]);
	bool art_ok = length_ok(r, line, F_ARTICLE, v[F_ARTICLE]);
	bool qty_ok = length_ok(r, line, F_QUANTITY, v[F_QUANTITY]);

	if (code_ok && (code_ok = required(r, line, F_CODE, v[F_CODE]))) {
		if (r->warehouse && strcmp(r->warehouse, v[F_CODE]) == 0) {
			/* The usual row: the file's warehouse, valid when it was set. */
		} else if (!sg_valid_code(v[F_CODE])) {
			g_autofree char *q = quote(v[F_CODE]);
			sg_file_error(
			    fr, line, r->name[F_CODE], "bad_code", v[F_CODE],
			    "'%s' is not a warehouse code (1 to 64 letters, digits, '-', '_', '.')",
			    q);
		} else if (!r->warehouse) {
			if (!set_warehouse(r, v[F_CODE]))
				return false;
		} else if (strcmp(r->warehouse, v[F_CODE]) != 0) {
			g_autofree char *q = quote(v[F_CODE]);
			g_autofree char *w = quote(r->warehouse);
			sg_file_error(fr, line, r->name[F_CODE], "other_warehouse", v[F_CODE],
				      "the file is for warehouse '%s', this row names '%s'", w, q);
		}
	}
	if (art_ok && required(r, line, F_ARTICLE, v[F_ARTICLE]) && !article_ok(v[F_ARTICLE])) {
		g_autofree char *q = quote(v[F_ARTICLE]);
		sg_file_error(fr, line, r->name[F_ARTICLE], "bad_article", v[F_ARTICLE],
			      "'%s' is not an article (1 to 64 characters)", q);
	}
	if (qty_ok && required(r, line, F_QUANTITY, v[F_QUANTITY]) &&
	    !sg_parse_quantity(v[F_QUANTITY], &qty))
		quantity_error(r, line, v[F_QUANTITY]);
	/* A file with errors is rejected: staging more of it is wasted work. */
	if (fr->errors->len)
		return true;

	/* Summed in memory; the catalogue is applied once the file is read (settle_articles). */
	if (!art_push(&r->arts, v[F_ARTICLE], strlen(v[F_ARTICLE]), qty, line))
		return arts_full(r);
	return true;
}

static int row_cb(void *vr, long line, char **cells, size_t n)
{
	run *r = vr;
	const char *v[F_N];

	if (r->header_bad || r->reject || r->fail)
		return 1;
	r->rows++;
	if (r->c->max_rows > 0 && r->rows > r->c->max_rows) {
		file_reject_now(r, "too_many_rows");
		sg_file_reject(r->fr, "too_many_rows", "more than %ld data rows", r->c->max_rows);
		return 1;
	}
	/* Fewer cells than the header (as parsed: "W1;A;" has three), or more non-empty ones
	 * (Excel's trailing ";;" do not count), means the row does not line up with it. */
	size_t parsed = n;
	while (n > 0 && !*cells[n - 1])
		n--;
	if (n > r->ncols || parsed < r->ncols) {
		sg_file_error(r->fr, line, NULL, "wrong_column_count", NULL,
			      "the row has %zu cells, the header has %zu columns",
			      parsed < r->ncols ? parsed : n, r->ncols);
		return 0;
	}
	for (int f = 0; f < F_N; f++)
		v[f] = r->pos[f] >= 0 && (size_t)r->pos[f] < n ? cells[r->pos[f]] : "";
	if (!r->remains) {
		row_warehouses(r, line, v);
		return r->fail ? 1 : 0;
	}
	return row_remains(r, line, v) && !r->fail ? 0 : 1;
}

static const char *csv_reason(const char *reason)
{
	static const char *const known[] = {"bad_encoding", "malformed_csv", "bad_header",
					    "not_csv"};
	for (size_t i = 0; reason && i < G_N_ELEMENTS(known); i++)
		if (strcmp(reason, known[i]) == 0)
			return known[i];
	return "malformed_csv";
}

static const char *csv_encoding(const char *enc)
{
	static const char *const known[] = {"utf-8", "utf-16le", "utf-16be", "windows-1251"};
	for (size_t i = 0; enc && i < G_N_ELEMENTS(known); i++)
		if (g_ascii_strcasecmp(enc, known[i]) == 0)
			return known[i];
	return enc ? g_intern_string(enc) : NULL;
}

static void finalize_stmts(run *r)
{
	sqlite3_stmt **all[] = {&r->ins_wh, &r->has_wh};
	for (size_t i = 0; i < G_N_ELEMENTS(all); i++) {
		sg_store_done(r->st, *all[i]);
		*all[i] = NULL;
	}
}

static sg_status prepare(run *r, const char *sql, sqlite3_stmt **s, char **err)
{
	return sg_store_prepare(r->st, sql, s, err);
}

/* Runs a query returning up to four integers from its single row (NULL = 0). */
static sg_status query_ints(run *r, const char *sql, const char *a, const char *b, gint64 *out,
			    int n, char **err)
{
	sqlite3_stmt *s;
	sg_status ret;
	if ((ret = prepare(r, sql, &s, err)))
		return ret;
	if (a)
		sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
	if (b)
		sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	for (int i = 0; i < n; i++)
		out[i] = rc == SQLITE_ROW ? sqlite3_column_int64(s, i) : 0;
	sg_store_done(r->st, s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sg_fail(err, rc == SQLITE_BUSY ? SG_ETEMP : SG_EIO, "state db: %s",
			       sqlite3_errmsg(r->db));
	return SG_OK;
}

/* Diffs the staged warehouses against the dealer's, then applies them. */
static sg_status apply_warehouses(run *r, char **err)
{
	const char *d = r->c->dealer;
	sg_file_result *fr = r->fr;
	gint64 c[3];
	sg_status ret;

	if ((ret = query_ints(r,
			      "SELECT sum(w.code IS NULL),"
			      " sum(w.code IS NOT NULL AND w.address IS s.address"
			      "     AND w.contacts IS s.contacts),"
			      " sum(w.code IS NOT NULL AND NOT (w.address IS s.address"
			      "     AND w.contacts IS s.contacts))"
			      " FROM temp.stage_wh s LEFT JOIN warehouses w"
			      " ON w.dealer = ?1 AND w.code = s.code",
			      d, NULL, c, 3, err)))
		return ret;
	fr->added = c[0];
	fr->unchanged = c[1];
	fr->updated = c[2];
	if ((ret = query_ints(r,
			      "SELECT count(*) FROM warehouses WHERE dealer = ?1"
			      " AND code NOT IN (SELECT code FROM temp.stage_wh)",
			      d, NULL, c, 1, err)))
		return ret;
	fr->deleted = c[0];
	/* Deleting a warehouse deletes its remains (ON DELETE CASCADE). */
	if ((ret = query_ints(r,
			      "DELETE FROM warehouses WHERE dealer = ?1"
			      " AND code NOT IN (SELECT code FROM temp.stage_wh)",
			      d, NULL, c, 0, err)))
		return ret;
	return query_ints(
	    r,
	    "INSERT INTO warehouses(dealer, code, address, contacts)"
	    " SELECT ?1, code, address, contacts FROM temp.stage_wh WHERE true"
	    " ON CONFLICT(dealer, code) DO UPDATE"
	    " SET address = excluded.address, contacts = excluded.contacts"
	    " WHERE address IS NOT excluded.address OR contacts IS NOT excluded.contacts",
	    d, NULL, c, 0, err);
}

static bool next_article(void *vr, const char **article, long long *quantity)
{
	run *r = vr;
	const art_table *t = &r->arts;

	while (r->next < t->n && r->out && r->out[r->next])
		r->next++;
	if (r->next >= t->n)
		return false;
	*article = art_text(t, r->next);
	*quantity = t->sum[r->next++];
	return true;
}

/*
 * Diffs the file's articles against the warehouse's stored list, read once with each of its
 * articles looked up among the file's, then stores the file's list in its place (unless nothing
 * changed). A stored article is matched once: a list edited by hand to name one twice cannot
 * make the counts go wrong, and the rewrite drops the repeat.
 */
static sg_status apply_remains(run *r, char **err)
{
	const art_table *t = &r->arts;
	sg_file_result *fr = r->fr;
	g_autofree guint8 *hit = g_malloc0(MAX(t->n, 1u));
	sg_remains_reader *rd;
	const char *w, *a;
	long long q;
	sg_status ret;

	if ((ret = sg_remains_open(r->st, r->c->dealer, r->warehouse, &rd, err)))
		return ret;
	while (sg_remains_next(rd, &w, &a, &q)) {
		gint64 idx = art_find(t, a);
		if (idx < 0 || (r->out && r->out[idx]) || hit[idx]) {
			fr->deleted++;
			continue;
		}
		hit[idx] = 1;
		if (t->sum[idx] == q)
			fr->unchanged++;
		else
			fr->updated++;
	}
	ret = sg_remains_error(rd, err);
	sg_remains_close(rd);
	if (ret)
		return ret;
	fr->added = r->distinct - fr->unchanged - fr->updated;
	if (!fr->added && !fr->updated && !fr->deleted)
		return SG_OK;
	r->next = 0;
	return sg_remains_replace(r->st, r->c->dealer, r->warehouse, next_article, r, err);
}

/* The file to read: at path, or in memory (data, len) under the name path. */
typedef struct {
	const char *path;
	const void *data; /* NULL: read path */
	size_t len;
} input;

/* Its size in bytes, or 0 when it cannot be known. */
static gint64 input_size(const input *in)
{
	GStatBuf sb;

	if (in->data != NULL)
		return (gint64)in->len;
	return g_stat(in->path, &sb) == 0 ? (gint64)sb.st_size : 0;
}

static void run_reset(run *r, const input *in)
{
	sg_file_result *fr = r->fr;
	g_ptr_array_set_size(fr->errors, 0);
	g_ptr_array_set_size(fr->warnings, 0);
	fr->rows = fr->added = fr->updated = fr->deleted = fr->unchanged = fr->skipped = 0;
	fr->applied = true;
	fr->reason = NULL;
	g_clear_pointer(&fr->detail, g_free);
	g_clear_pointer(&fr->warehouse, g_free);
	g_clear_pointer(&r->warehouse, g_free);
	r->rows = 0;
	r->distinct = 0;
	g_clear_pointer(&r->out, g_free);
	art_reset(&r->arts, r->catalog);
	if (r->remains) {
		/* A remains row is rarely shorter than 32 bytes: a guess from the file's size,
		 * never above max_rows. */
		gint64 est = input_size(in) / 32;
		if (r->c->max_rows > 0)
			est = MIN(est, r->c->max_rows);
		art_reserve(&r->arts, (guint32)MIN(est, (gint64)G_MAXUINT32 / 8));
	}
	r->reject = NULL;
}

/* Reads the file once, staging its rows. */
static sg_status read_pass(run *r, const input *in, sg_csv_info *info, char **err)
{
	sg_csv_opts opts = {
	    .charset_label = r->c->charset_label,
	    .header = header_cb,
	    .row = row_cb,
	    .ctx = r,
	};
	sg_status ret;

	run_reset(r, in);
	if ((ret = sg_store_exec(r->st,
				 "DELETE FROM temp.stage_wh", err)))
		return ret;
	memset(info, 0, sizeof *info);
	if (in->data != NULL)
		return sg_csv_read_mem(in->path, in->data, in->len, &opts, info, err);
	return sg_csv_read(in->path, &opts, info, err);
}

static bool same_header(run *r, const sg_csv_info *info)
{
	int pos[F_N];
	size_t ncols;
	bool bad;
	if (!info->header)
		return true;
	map_header(r->remains, info->header, info->header_n, pos, &ncols, &bad);
	return ncols == r->ncols && memcmp(pos, r->pos, sizeof pos) == 0;
}

static char *found_columns(char **cells, size_t n)
{
	GString *s = g_string_new(NULL);
	for (size_t i = 0; i < n; i++)
		if (*cells[i])
			g_string_append_printf(s, "%s%s", s->len ? ", " : "", cells[i]);
	return g_string_free(s, FALSE);
}

static gint by_line(gconstpointer a, gconstpointer b)
{
	const sg_issue *x = *(sg_issue *const *)a, *y = *(sg_issue *const *)b;
	return (x->line > y->line) - (x->line < y->line);
}

/* Marks in r->out the articles outside the catalogue, which is read once with each of its
 * articles looked up among the file's, and returns their count in *n. */
static sg_status mark_uncatalogued(run *r, long *n, char **err)
{
	const art_table *t = &r->arts;
	sqlite3_stmt *s;
	sg_status ret;
	int rc;

	r->out = g_malloc(MAX(t->n, 1u));
	memset(r->out, 1, t->n);
	*n = t->n;
	if ((ret = prepare(r, "SELECT article FROM catalog", &s, err)))
		return ret;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		gint64 idx = art_find(t, (const char *)sqlite3_column_text(s, 0));
		if (idx >= 0 && r->out[idx]) {
			r->out[idx] = 0;
			(*n)--;
		}
	}
	sg_store_done(r->st, s);
	if (rc != SQLITE_DONE)
		return sg_fail(err, rc == SQLITE_BUSY ? SG_ETEMP : SG_EIO, "state db: %s",
			       sqlite3_errmsg(r->db));
	return SG_OK;
}

/*
 * Settles the articles summed while reading: with a non-empty catalogue those outside it are
 * dropped, each of their rows with a not_in_catalog warning; each repeat of a kept article gets a
 * duplicate_article warning. `check` (no dealer) never touches SQLite.
 */
static sg_status settle_articles(run *r, char **err)
{
	const art_table *t = &r->arts;
	sg_file_result *fr = r->fr;
	long nout = 0, skipped = 0;
	sg_status ret;

	if (!art_flush(&r->arts)) {
		arts_full(r);
		return sg_fail(err, r->fail, "%s", r->fail_err);
	}
	if (r->catalog && t->n) {
		if ((ret = mark_uncatalogued(r, &nout, err)))
			return ret;
		for (guint32 k = 0; nout && k < t->n; k++) {
			if (!r->out[k])
				continue;
			sg_file_warning(fr, g_array_index(t->first, gint64, k), r->name[F_ARTICLE],
					"not_in_catalog", art_text(t, k));
			skipped++;
		}
	}
	for (guint i = 0; i < t->repeats->len; i++) {
		const art_repeat *rp = &g_array_index(t->repeats, art_repeat, i);
		bool skip = r->out && r->out[rp->idx];
		sg_file_warning(fr, rp->line, r->name[F_ARTICLE],
				skip ? "not_in_catalog" : "duplicate_article", art_text(t, rp->idx));
		skipped += skip;
	}
	fr->skipped = skipped;
	r->distinct = (long)t->n - nout;
	/* One warning a row: ordered by line, they read as the file does. */
	g_ptr_array_sort(fr->warnings, by_line);
	return SG_OK;
}

/* Everything after a successful read: verdict, diff, apply, mirror. Returns SG_OK with the
 * verdict in fr and whether to keep the savepoint in *keep. */
static sg_status settle(run *r, bool *keep, char **err)
{
	const sg_stock_ctx *c = r->c;
	sg_file_result *fr = r->fr;
	sg_status ret;

	*keep = false;
	if (fr->errors->len) {
		sg_file_reject(fr, "row_errors", "%u row errors", fr->errors->len);
		return SG_OK;
	}
	if (r->rows == 0) {
		sg_file_reject(fr, "empty_file",
			       r->remains ? "no data rows: to clear stock, send the articles with 0"
					  : "no data rows: it would delete every warehouse");
		return SG_OK;
	}
	if (r->remains && (ret = settle_articles(r, err)))
		return ret;
	if (!c->dealer)
		return SG_OK;
	if (c->date) {
		gint64 mark;
		if ((ret = sg_mark_get(r->st, c->dealer, c->kind, r->remains ? r->warehouse : "",
				       &mark, err)))
			return ret;
		if (c->date < mark) {
			g_autofree char *t = sg_iso_time(mark);
			sg_file_reject(fr, "superseded", "a newer file (of %s) was applied already",
				       t);
			return SG_OK;
		}
	}
	if ((ret = r->remains ? apply_remains(r, err) : apply_warehouses(r, err)))
		return ret;
	if (c->dev_mode)
		return SG_OK;
	if (c->mirror) {
		ret = r->remains
			  ? sg_mirror_remains(c->mirror, c->key, c->dealer, r->warehouse, r->st, fr, err)
			  : sg_mirror_warehouses(c->mirror, c->key, r->st, fr, err);
		if (ret == SG_EDATA) {
			if (fr->applied || !fr->reason)
				sg_file_reject(fr, "mirror_error", NULL);
			return SG_OK;
		}
		if (ret)
			return ret;
	}
	if (c->date && (ret = sg_mark_set(r->st, c->dealer, c->kind, r->remains ? r->warehouse : "",
					  c->date, err)))
		return ret;
	*keep = true;
	return SG_OK;
}

static sg_status apply(sg_store *st, const sg_stock_ctx *ctx, const input *in,
		       sg_file_result *fr, char **err)
{
	run r = {.c = ctx, .st = st, .db = sg_store_db(st), .fr = fr};
	sg_csv_info info = {0};
	sg_status ret;
	bool keep = false;
	gint64 ncat = 0;

	r.remains = ctx->kind && strcmp(ctx->kind, "remains") == 0;
	if (!r.remains && (!ctx->kind || strcmp(ctx->kind, "warehouses") != 0))
		return sg_fail(err, SG_EINTERNAL, "stock: unknown kind '%s'",
			       ctx->kind ? ctx->kind : "");
	if ((ret = sg_store_savepoint(st, SAVEPOINT, err)))
		return ret;
	if ((ret = sg_store_exec(
		 st,
		 "CREATE TEMP TABLE IF NOT EXISTS stage_wh (code TEXT PRIMARY KEY,"
		 "  address TEXT, contacts TEXT) WITHOUT ROWID",
		 err)))
		goto out;
	if ((ret = prepare(&r,
			   "INSERT INTO temp.stage_wh(code, address, contacts) VALUES (?, ?, ?)"
			   " ON CONFLICT DO NOTHING",
			   &r.ins_wh, err)) ||
	    (ret = prepare(&r, "SELECT 1 FROM warehouses WHERE dealer = ? AND code = ?", &r.has_wh,
			   err)))
		goto out;
	if (ctx->dealer && r.remains &&
	    (ret = query_ints(&r, "SELECT EXISTS (SELECT 1 FROM catalog)", NULL, NULL, &ncat, 1,
			      err)))
		goto out;
	r.catalog = ncat != 0;

	ret = read_pass(&r, in, &info, err);
	if (ret == SG_OK && !r.fail && !r.reject && r.have_header && !same_header(&r, &info)) {
		/* The reader settled on another record than the first one that matched: read
		 * again with the header it chose. */
		bool bad;
		map_header(r.remains, info.header, info.header_n, r.pos, &r.ncols, &bad);
		r.header_bad = bad;
		for (int f = 0; f < F_N; f++) {
			g_free(r.name[f]);
			r.name[f] = g_strdup(r.pos[f] >= 0 ? info.header[r.pos[f]] : NULL);
		}
		sg_csv_info_clear(&info);
		ret = read_pass(&r, in, &info, err);
	}
	fr->encoding = csv_encoding(info.encoding);
	fr->delimiter = info.delimiter;
	fr->rows = r.rows;
	if (r.fail) {
		ret = sg_fail(err, r.fail, "%s", r.fail_err);
		goto out;
	}
	if (ret == SG_EDATA) {
		const char *reason = csv_reason(info.reason);
		if (strcmp(reason, "bad_header") == 0 && (!info.detail || !*info.detail))
			sg_file_reject(fr, "empty_file", "the file has no rows");
		else if (strcmp(reason, "bad_header") == 0)
			sg_file_reject(fr, reason, "columns found: %s; expected: %s",
				       info.detail ? info.detail : "(none)",
				       r.remains ? expected_rem : expected_wh);
		else if (info.error_line)
			sg_file_reject(fr, reason, "line %ld: %s", info.error_line,
				       info.detail ? info.detail : reason);
		else
			sg_file_reject(fr, reason, "%s", info.detail ? info.detail : reason);
		g_clear_pointer(err, g_free);
		ret = SG_OK;
		goto out;
	}
	if (ret)
		goto out;
	if (info.title_rows > 0) {
		sg_file_warning(fr, info.header_line, NULL, "title_rows_skipped", NULL);
		/* First among the warnings: it concerns the top of the file. */
		g_ptr_array_insert(fr->warnings, 0,
				   g_ptr_array_steal_index(fr->warnings, fr->warnings->len - 1));
	}
	if (r.header_bad) {
		g_autofree char *found = found_columns(info.header, info.header_n);
		g_ptr_array_set_size(fr->errors, 0);
		g_ptr_array_set_size(fr->warnings, 0);
		fr->rows = 0;
		sg_file_reject(fr, "bad_header",
			       "unknown or repeated column: columns found: %s; expected: %s", found,
			       r.remains ? expected_rem : expected_wh);
		goto out;
	}
	if (r.reject)
		goto out;
	ret = settle(&r, &keep, err);
out:
	finalize_stmts(&r);
	if (ret == SG_OK && keep) {
		ret = sg_store_release(st, SAVEPOINT, err);
		if (ret == SG_OK) {
			/* The staged copy is no longer needed by anyone: free the temp space. */
			sg_store_exec(st, "DELETE FROM temp.stage_wh", NULL);
		}
	} else {
		sg_store_rollback_to(st, SAVEPOINT);
	}
	if (ret == SG_OK && fr->applied && r.remains && ctx->seen && r.warehouse)
		g_hash_table_add(ctx->seen, g_strdup(r.warehouse));
	for (int f = 0; f < F_N; f++)
		g_free(r.name[f]);
	g_free(r.warehouse);
	g_free(r.fail_err);
	g_free(r.out);
	art_clear(&r.arts);
	sg_csv_info_clear(&info);
	if (ret == SG_OK)
		log_debug("%s: %s %s: %ld rows, %ld added, %ld updated, %ld deleted", fr->name,
			  ctx->kind, fr->applied ? "applied" : fr->reason, fr->rows, fr->added,
			  fr->updated, fr->deleted);
	return ret;
}

sg_status sg_stock_apply_file(sg_store *st, const sg_stock_ctx *ctx, const char *path,
			      sg_file_result *fr, char **err)
{
	input in = {.path = path};

	return apply(st, ctx, &in, fr, err);
}

sg_status sg_stock_apply_bytes(sg_store *st, const sg_stock_ctx *ctx, const char *name,
			       GBytes *data, sg_file_result *fr, char **err)
{
	gsize len = 0;
	const void *p = g_bytes_get_data(data, &len);
	input in = {.path = name, .data = p ? p : "", .len = len};

	return apply(st, ctx, &in, fr, err);
}
