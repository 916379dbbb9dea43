/* fuzz-mirror.c: libFuzzer target for the dealer REST API's answers (outside input): the
 * classification of an answer, its messages, the warehouse list, and a diff against it. */

#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mirror.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = {200, 200, 404, 429, 500, 302};
	cJSON *root = NULL;
	g_autofree char *err = NULL;
	long http = size ? statuses[data[0] % 6] : 200;
	g_autofree char *body = g_strndup((const char *)data, size);

	/* The answer as it arrives: not NUL-terminated, any length. */
	sg_mirror_parse_answer(http, (const char *)data, size, &root, &err);
	if (!root)
		root = cJSON_ParseWithLength(body, size);
	if (root) {
		g_autoptr(GPtrArray) server = NULL;
		g_autofree char *msgs = sg_mirror_messages(root);
		g_clear_pointer(&err, g_free);
		if (sg_mirror_parse_list(root, &server, &err) == SG_OK && server) {
			g_autoptr(GPtrArray) want = g_ptr_array_new_with_free_func(sg_mirror_wh_free);
			g_autoptr(GPtrArray) add = g_ptr_array_new();
			g_autoptr(GPtrArray) upd = g_ptr_array_new();
			g_autoptr(GPtrArray) del = g_ptr_array_new();
			g_ptr_array_add(want, sg_mirror_wh_new("3", "Курск", ""));
			g_ptr_array_add(want, sg_mirror_wh_new("D4R7WE", "Орёл", "x"));
			sg_mirror_diff(server, want, add, upd, del);
		}
		cJSON_Delete(root);
	}
	return 0;
}
