/* metrics.h: the figures of `stockgate status`, in the Prometheus text format. */
#pragma once
#include <glib.h>

#include "store.h"

/*
 * Appends to out every metric family of the state db in st, each once, with # HELP and # TYPE
 * lines (text format 0.0.4, for node_exporter's textfile collector). A family whose table does
 * not exist in this db (a feature not built in, or not used yet) is left out. SG_OK, or SG_EIO
 * with *err when the db cannot be read.
 */
sg_status sg_metrics_prometheus(sg_store *st, GString *out, char **err);

/* s as a label value: backslash, double quote and line feed escaped; g_free. */
char *sg_metrics_label(const char *s);
