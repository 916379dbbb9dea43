/* fuzz-imap.c: libFuzzer target for the IMAP response parser (what a server sends is outside
 * input): line splitting with literals, then every classifier on each complete line. */

#include <stdint.h>
#include <string.h>

#include "imap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t pos = 0, len;

	/* The receive loop hands the parser whole lines (a literal included); a small literal
	 * cap makes the "literal too large" branch reachable too. */
	while (pos < size && sg_imap_line_len(buf + pos, size - pos, 4096, &len) > 0 && len > 0 &&
	       len <= size - pos) {
		const char *line = buf + pos, *text = NULL;
		g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint64));
		g_autofree char *name = NULL, *quoted = NULL;
		sg_imap_fetch f;
		gint64 v;
		bool move, uidplus;

		(void)sg_imap_tagged(line, len, "A001", &text, NULL);
		(void)sg_imap_is_bye(line, len);
		(void)sg_imap_resp_code_num(line, len, "UIDVALIDITY", &v);
		(void)sg_imap_has_resp_code(line, len, "ALREADYEXISTS");
		(void)sg_imap_capability(line, len, &move, &uidplus);
		(void)sg_imap_search(line, len, uids);
		if (sg_imap_fetch_parse(line, len, &f) == 1 && f.has_body && f.body_len > 0)
			(void)f.body[f.body_len - 1];
		(void)sg_imap_list(line, len, &name);
		if (len < 256) {
			g_autofree char *s = g_strndup(line, len);
			(void)sg_imap_parse_date(s);
			quoted = sg_imap_quote(s);
		}
		pos += len;
	}
	return 0;
}
