/* log.h: the logging API (stderr, text or JSON lines); secrets must never be passed to it. */
#pragma once
#include <glib.h>
#include <stdbool.h>

enum sg_log_level { SG_LOG_ERROR = 0, SG_LOG_WARN = 1, SG_LOG_INFO = 2, SG_LOG_DEBUG = 3 };

/* level: SG_LOG_INFO by default, -v raises, -q lowers; json: one JSON object a line. */
void sg_log_init(int level, bool json);
int sg_log_level(void);
/* log_warn appends ": strerror(errno)"; log_warnx does not. */
void log_warn(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void log_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void log_info(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void log_debug(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
