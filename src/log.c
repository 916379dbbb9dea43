/* log.c: the log on stderr, as "stockgate: level: message" lines or as JSON lines. */
/* log.h uses bool without including stdbool.h. */
#include <stdbool.h>

#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static int log_level = SG_LOG_INFO;
static bool log_json;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void sg_log_init(int level, bool json)
{
	if (level < SG_LOG_ERROR)
		level = SG_LOG_ERROR;
	if (level > SG_LOG_DEBUG)
		level = SG_LOG_DEBUG;
	log_level = level;
	log_json = json;
}

int sg_log_level(void)
{
	return log_level;
}

static void vlog(int level, int errnum, const char *fmt, va_list ap) G_GNUC_PRINTF(3, 0);

static void vlog(int level, int errnum, const char *fmt, va_list ap)
{
	g_autofree char *msg = NULL;
	g_autofree char *line = NULL;

	if (level > log_level)
		return;
	msg = g_strdup_vprintf(fmt, ap);
	if (errnum != 0) {
		char *m = g_strdup_printf("%s: %s", msg, g_strerror(errnum));
		g_free(msg);
		msg = m;
	}
	if (log_json) {
		g_autofree char *t = sg_iso_time(sg_now());
		g_autofree char *valid = g_utf8_make_valid(msg, -1);
		cJSON *o = cJSON_CreateObject();
		char *s;

		cJSON_AddStringToObject(o, "time", t);
		cJSON_AddStringToObject(o, "level", level_names[level]);
		cJSON_AddStringToObject(o, "msg", valid);
		s = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		line = g_strdup_printf("%s\n", s ? s : "{}");
		cJSON_free(s);
	} else {
		line = g_strdup_printf("stockgate: %s: %s\n", level_names[level], msg);
	}
	/* One write a line, so that lines of concurrent processes do not interleave. */
	fputs(line, stderr);
	fflush(stderr);
}

void log_warn(const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(SG_LOG_WARN, e ? e : EIO, fmt, ap);
	va_end(ap);
	errno = e;
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(SG_LOG_WARN, 0, fmt, ap);
	va_end(ap);
}

void log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(SG_LOG_ERROR, 0, fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(SG_LOG_INFO, 0, fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(SG_LOG_DEBUG, 0, fmt, ap);
	va_end(ap);
}
