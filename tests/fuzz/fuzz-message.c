/* fuzz-message.c: libFuzzer target for the message parser: pre-scan, gmime walk and manifest. */
#include <glib/gstdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *dir, *path;
	/* In process by default, so that sanitizers see the gmime walk; SG_FUZZ_FORK=1 runs the
	 * real child (crashes inside it then only show up as "unparseable"). */
	sg_message_limits lim = {
	    .max_message_size = 64 * 1024,
	    .max_header_size = 8 * 1024,
	    .max_mime_depth = 8,
	    .max_parts = 40,
	    .max_attachments = 10,
	    .cpu_seconds = 2,
	    .in_process = getenv("SG_FUZZ_FORK") == NULL,
	};
	sg_message *m = NULL;
	const char *reason = NULL;
	char *err = NULL;

	if (dir == NULL) {
		dir = g_dir_make_tmp("sg-fuzz-message-XXXXXX", NULL);
		if (dir == NULL)
			abort();
		path = g_build_filename(dir, "in.eml", NULL);
	}
	if (!g_file_set_contents(path, (const char *)data, (gssize)size, NULL))
		abort();
	sg_message_parse(path, &lim, &m, &reason, &err);
	if (m != NULL) {
		/* every attachment has a name that is no path, and its bytes (size is their length) */
		for (guint i = 0; i < m->attachments->len; i++) {
			sg_attachment *a = g_ptr_array_index(m->attachments, i);
			if (a->name == NULL || strchr(a->name, '/') != NULL || a->data == NULL ||
			    a->size != (gint64)g_bytes_get_size(a->data))
				abort();
		}
		if (m->from != NULL && m->from_count != 1)
			abort();
	}
	sg_message_free(m);
	g_free(err);
	return 0;
}
