/* sg.c: statuses and their exit codes, the per-message result record and its JSON line. */
#include "sg.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "util.h"

/* Longest offending value kept in a record (SPEC 5.5: "truncated"). */
#define SG_VALUE_MAX 100

int sg_exit_code(sg_status st)
{
	switch (st) {
	case SG_OK: return 0;
	case SG_EUSAGE: return 64;
	case SG_EDATA: return 65;
	case SG_ENOINPUT: return 66;
	case SG_EUNAVAIL: return 69;
	case SG_EINTERNAL: return 70;
	case SG_EIO: return 74;
	case SG_ETEMP: return 75;
	case SG_ECONFIG: return 78;
	}
	/* A status outside the enum is a bug of the caller. */
	return 70;
}

sg_status sg_fail(char **err, sg_status st, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || *err != NULL || fmt == NULL)
		return st;
	va_start(ap, fmt);
	*err = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return st;
}

static void issue_free(gpointer p)
{
	sg_issue *is = p;

	if (is == NULL)
		return;
	g_free(is->column);
	g_free(is->message);
	g_free(is->value);
	g_free(is);
}

sg_file_result *sg_file_result_new(const char *name)
{
	sg_file_result *fr = g_new0(sg_file_result, 1);

	fr->name = g_strdup(name ? name : "attachment");
	fr->errors = g_ptr_array_new_with_free_func(issue_free);
	fr->warnings = g_ptr_array_new_with_free_func(issue_free);
	return fr;
}

void sg_file_result_free(sg_file_result *fr)
{
	if (fr == NULL)
		return;
	g_free(fr->name);
	g_free(fr->detail);
	g_free(fr->warehouse);
	g_ptr_array_unref(fr->errors);
	g_ptr_array_unref(fr->warnings);
	g_free(fr);
}

static sg_issue *issue_new(long line, const char *column, const char *code, const char *value)
{
	sg_issue *is = g_new0(sg_issue, 1);

	is->line = line;
	is->column = g_strdup(column);
	is->code = code;
	is->value = value ? sg_truncate(value, SG_VALUE_MAX) : NULL;
	return is;
}

void sg_file_error(sg_file_result *fr, long line, const char *column, const char *code,
		   const char *value, const char *fmt, ...)
{
	sg_issue *is = issue_new(line, column, code, value);
	va_list ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		is->message = g_strdup_vprintf(fmt, ap);
		va_end(ap);
	}
	g_ptr_array_add(fr->errors, is);
}

void sg_file_warning(sg_file_result *fr, long line, const char *column, const char *code,
		     const char *value)
{
	g_ptr_array_add(fr->warnings, issue_new(line, column, code, value));
}

void sg_file_reject(sg_file_result *fr, const char *reason, const char *fmt, ...)
{
	va_list ap;

	fr->applied = false;
	fr->reason = reason;
	if (fmt != NULL) {
		g_free(fr->detail);
		va_start(ap, fmt);
		fr->detail = g_strdup_vprintf(fmt, ap);
		va_end(ap);
	}
}

sg_result *sg_result_new(const char *source)
{
	sg_result *r = g_new0(sg_result, 1);

	r->source = g_strdup(source);
	r->files = g_ptr_array_new_with_free_func((GDestroyNotify)sg_file_result_free);
	r->report = "none";
	return r;
}

void sg_result_free(sg_result *r)
{
	if (r == NULL)
		return;
	g_free(r->source);
	g_free(r->message_id);
	g_free(r->from);
	g_free(r->dealer);
	g_free(r->method);
	g_free(r->detail);
	g_ptr_array_unref(r->files);
	g_free(r);
}

/*
 * Outcomes decided before the files (silent rejection, a repeat, a deferral) stand; a
 * message-level reason means nothing could be applied; otherwise the files decide.
 */
void sg_result_settle(sg_result *r)
{
	guint applied = 0;

	if (r->outcome != NULL &&
	    (strcmp(r->outcome, "rejected") == 0 || strcmp(r->outcome, "duplicate") == 0 ||
	     strcmp(r->outcome, "deferred") == 0))
		return;
	if (r->reason != NULL) {
		r->outcome = "failed";
		return;
	}
	for (guint i = 0; i < r->files->len; i++) {
		const sg_file_result *fr = g_ptr_array_index(r->files, i);
		if (fr->applied)
			applied++;
	}
	if (r->files->len > 0 && applied == r->files->len)
		r->outcome = "applied";
	else if (applied > 0)
		r->outcome = "partial";
	else
		r->outcome = "failed";
}

/* A string member, or null; text that is not valid UTF-8 would make the line invalid JSON. */
static void add_str(cJSON *obj, const char *key, const char *s)
{
	if (s == NULL) {
		cJSON_AddNullToObject(obj, key);
	} else if (g_utf8_validate(s, -1, NULL)) {
		cJSON_AddStringToObject(obj, key, s);
	} else {
		g_autofree char *v = g_utf8_make_valid(s, -1);
		cJSON_AddStringToObject(obj, key, v);
	}
}

static cJSON *issues_json(const GPtrArray *a, bool is_error)
{
	cJSON *arr = cJSON_CreateArray();

	for (guint i = 0; i < a->len; i++) {
		const sg_issue *is = g_ptr_array_index(a, i);
		cJSON *o = cJSON_CreateObject();

		/* An issue of the whole file (the mirror's refusal) has no line. */
		if (is->line > 0)
			cJSON_AddNumberToObject(o, "line", (double)is->line);
		else
			cJSON_AddNullToObject(o, "line");
		if (is_error)
			add_str(o, "column", is->column);
		add_str(o, "code", is->code);
		if (is_error)
			add_str(o, "message", is->message);
		add_str(o, "value", is->value);
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static cJSON *file_json(const sg_file_result *fr)
{
	cJSON *o = cJSON_CreateObject();

	add_str(o, "name", fr->name);
	add_str(o, "status", fr->applied ? "applied" : "rejected");
	add_str(o, "reason", fr->applied ? NULL : fr->reason);
	add_str(o, "warehouse", fr->warehouse);
	add_str(o, "encoding", fr->encoding);
	if (fr->delimiter != 0) {
		char d[2] = { fr->delimiter, 0 };
		add_str(o, "delimiter", d);
	} else {
		cJSON_AddNullToObject(o, "delimiter");
	}
	cJSON_AddNumberToObject(o, "rows", (double)fr->rows);
	cJSON_AddNumberToObject(o, "added", (double)fr->added);
	cJSON_AddNumberToObject(o, "updated", (double)fr->updated);
	cJSON_AddNumberToObject(o, "deleted", (double)fr->deleted);
	cJSON_AddNumberToObject(o, "unchanged", (double)fr->unchanged);
	cJSON_AddNumberToObject(o, "skipped", (double)fr->skipped);
	cJSON_AddItemToObject(o, "errors", issues_json(fr->errors, true));
	cJSON_AddItemToObject(o, "warnings", issues_json(fr->warnings, false));
	return o;
}

char *sg_result_to_json(const sg_result *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *files = cJSON_CreateArray();
	char *s, *out;

	add_str(o, "source", r->source);
	add_str(o, "message_id", r->message_id);
	add_str(o, "from", r->from);
	add_str(o, "dealer", r->dealer);
	add_str(o, "method", r->method);
	cJSON_AddBoolToObject(o, "dev_mode", r->dev_mode);
	add_str(o, "outcome", r->outcome);
	add_str(o, "reason", r->reason);
	for (guint i = 0; r->files != NULL && i < r->files->len; i++)
		cJSON_AddItemToArray(files, file_json(g_ptr_array_index(r->files, i)));
	cJSON_AddItemToObject(o, "files", files);
	add_str(o, "report", r->report ? r->report : "none");

	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	/* cJSON allocates with malloc; callers free with g_free. */
	out = g_strdup(s ? s : "{}");
	cJSON_free(s);
	return out;
}

char *sg_record_resumed(const char *json)
{
	cJSON *o = cJSON_Parse(json ? json : "{}");
	char *s, *out;

	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return g_strdup(json ? json : "{}");
	}
	cJSON_DeleteItemFromObjectCaseSensitive(o, "resumed");
	cJSON_AddTrueToObject(o, "resumed");
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	out = g_strdup(s ? s : "{}");
	cJSON_free(s);
	return out;
}
