/* stub-mirror.c: a stand-in for the mirror in test-stock, answering what the test sets.
 * test-stock.deps leaves mirror out on purpose: these definitions replace it there. */
#include "mirror.h"

static sg_status stub_mirror_answer = SG_OK;
static int stub_mirror_calls;

sg_status sg_mirror_warehouses(sg_mirror *m, const char *key, sg_store *st, sg_file_result *fr,
			       char **err)
{
	stub_mirror_calls++;
	if (stub_mirror_answer == SG_EDATA)
		sg_file_reject(fr, "mirror_error", "the server said no");
	return stub_mirror_answer ? sg_fail(err, stub_mirror_answer, "stub mirror") : SG_OK;
}

sg_status sg_mirror_remains(sg_mirror *m, const char *key, const char *dealer, const char *code, sg_store *st,
			    sg_file_result *fr, char **err)
{
	return sg_mirror_warehouses(m, key, st, fr, err);
}
