/* report.c: builds the processing report mailed back to the sender (SPEC 6) with gmime. */
#include "report.h"

#include <gmime/gmime.h>
#include <string.h>

#include "util.h"

/* The body lists this many errors a file; errors.csv has them all. */
#define REPORT_MAX_ERRORS 50

typedef struct {
	bool en;
} lang;

/* Both texts are checked against the arguments when tr() is used as a format. */
static const char *tr(const lang *l, const char *en, const char *ru)
	__attribute__((format_arg(2), format_arg(3)));

static const char *tr(const lang *l, const char *en, const char *ru)
{
	return l->en ? en : ru;
}

/* ---- checks on what goes into headers ---- */

/* An addr-spec we are willing to put in a header: one '@', no blanks, controls or specials. */
static bool safe_addr(const char *a)
{
	const char *at;

	if (a == NULL || *a == '\0' || strlen(a) > 254 || !g_utf8_validate(a, -1, NULL))
		return false;
	for (const unsigned char *p = (const unsigned char *)a; *p; p++) {
		if (*p <= 0x20 || *p == 0x7F || strchr("<>()[]\\,;:\"", *p) != NULL)
			return false;
	}
	at = strchr(a, '@');
	return at != NULL && at != a && at[1] != '\0' && strchr(at + 1, '@') == NULL;
}

/* A msg-id (without <>) that is safe to echo in In-Reply-To: dot-atom text around one '@'. */
static bool safe_msgid(const char *id)
{
	const char *at;

	if (id == NULL || *id == '\0' || strlen(id) > 250)
		return false;
	for (const char *p = id; *p; p++) {
		if (!g_ascii_isalnum(*p) && strchr("!#$%&'*+/=?^_`{|}~.@-", *p) == NULL)
			return false;
	}
	at = strchr(id, '@');
	return at != NULL && at != id && at[1] != '\0' && strchr(at + 1, '@') == NULL;
}

/* The domain of the From address for Message-IDs: letters, digits, dots and hyphens only. */
static char *msgid_domain(const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;

	if (at == NULL || at[1] == '\0')
		return g_strdup("localhost");
	for (const char *p = at + 1; *p; p++)
		if (!g_ascii_isalnum(*p) && *p != '.' && *p != '-')
			return g_strdup("localhost");
	return g_ascii_strdown(at + 1, -1);
}

/*
 * The new Message-ID. SG_MSGID_SEED makes the sequence reproducible for tests; otherwise it is
 * random. A counter keeps several reports of one process distinct either way.
 */
static char *new_msgid(const char *domain)
{
	static guint counter;
	const char *seed = g_getenv("SG_MSGID_SEED");
	g_autofree char *d = NULL;
	g_autofree char *h = NULL;

	counter++;
	if (seed != NULL && *seed != '\0') {
		d = g_strdup_printf("%s:%u", seed, counter);
	} else {
		g_autofree char *u = g_uuid_string_random();
		d = g_strdup_printf("%s:%" G_GINT64_FORMAT ":%u", u, g_get_real_time(), counter);
	}
	h = sg_sha256_hex(d, strlen(d));
	h[24] = '\0';
	return g_strdup_printf("sg.%s@%s", h, domain);
}

static bool known_method(const char *m)
{
	static const char *const known[] = { "warehouses", "remains", "vin",
					     "frame",	   "price",   "rental" };

	for (size_t i = 0; m != NULL && i < G_N_ELEMENTS(known); i++)
		if (strcmp(m, known[i]) == 0)
			return true;
	return false;
}

/* A string for the body: valid UTF-8, no line breaks (a name must not fake report lines). */
static char *one_line(const char *s)
{
	char *v = g_utf8_make_valid(s ? s : "", -1);

	for (char *p = v; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	return v;
}

/* ---- words ---- */

/* The words for a code, in English and Russian. */
typedef struct {
	const char *code, *en, *ru;
} words;

/* The words of code in table t of n rows, or NULL when it has none. */
static const char *words_for(const lang *l, const words *t, size_t n, const char *code)
{
	for (size_t i = 0; code != NULL && i < n; i++)
		if (strcmp(code, t[i].code) == 0)
			return tr(l, t[i].en, t[i].ru);
	return NULL;
}
#define WORDS(l, t, code) words_for(l, t, G_N_ELEMENTS(t), code)

static const words outcomes[] = {
	{"applied", "applied", "обработано"},
	{"partial", "partially applied", "обработано частично"},
	{"failed", "not applied", "не обработано"},
	{"deferred", "deferred", "отложено"},
	{"duplicate", "already processed", "уже обработано"},
	{"rejected", "rejected", "отклонено"},
};

static const char *outcome_words(const lang *l, const char *outcome)
{
	const char *w = WORDS(l, outcomes, outcome);
	if (outcome == NULL)
		return tr(l, "processed", "обработано");
	return w ? w : outcome;
}

static const words outcome_sentences[] = {
	{"applied", "All files were applied.", "Все файлы приняты."},
	{"partial",
	 "Some files were applied, others were rejected: see below.",
	 "Часть файлов принята, остальные отклонены: см. ниже."},
	{"failed", "Nothing was applied.", "Ничего не изменено."},
	{"deferred",
	 "Processing was postponed; it will be retried automatically.",
	 "Обработка отложена и будет повторена автоматически."},
	{"duplicate",
	 "This message was already processed; nothing was done again.",
	 "Это письмо уже было обработано; повторно ничего не сделано."},
	{"rejected", "The message was rejected.", "Письмо отклонено."},
};

static const char *outcome_sentence(const lang *l, const char *outcome)
{
	const char *w = WORDS(l, outcome_sentences, outcome);
	return w ? w : "";
}

static const words message_reasons[] = {
	{"unknown_method",
	 "The subject is not a known command. Write one of these words as the subject: "
	 "warehouses, remains, vin, frame, price, rental.",
	 "Тема письма не распознана. Укажите в теме одно из слов: склады (warehouses), "
	 "остатки (remains), vin, frame, price, rental."},
	{"no_attachments",
	 "The message has no attachment. Attach the CSV file and send again.",
	 "В письме нет вложений. Приложите CSV-файл и отправьте письмо ещё раз."},
	{"too_large",
	 "The message is larger than the allowed size. Send fewer or smaller files per "
	 "message.",
	 "Письмо больше допустимого размера. Отправьте файлы по одному или уменьшите их."},
	{"too_complex",
	 "The message structure is too complex (too many parts, nesting or header size). "
	 "Send a simple message with the CSV file attached.",
	 "Структура письма слишком сложная (много частей, вложенность или размер "
	 "заголовков). Отправьте простое письмо с приложенным CSV-файлом."},
	{"too_many_attachments",
	 "The message has too many attachments. Send fewer files per message.",
	 "В письме слишком много вложений. Отправьте файлы несколькими письмами."},
	{"unparseable", "The message could not be read.", "Письмо не удалось прочитать."},
	{"stale",
	 "The message is too old and was not processed.",
	 "Письмо слишком старое и не обработано."},
	{"mirror_unavailable",
	 "The dealer API is temporarily unavailable; the message will be processed again "
	 "automatically.",
	 "API дилера временно недоступен; письмо будет обработано повторно автоматически."},
	{"report_unavailable",
	 "The report could not be delivered in time.",
	 "Отчёт не удалось доставить вовремя."},
	{"unknown_sender", "The sender is not registered.", "Отправитель не зарегистрирован."},
	{"no_role",
	 "The sender is not allowed to use this command.",
	 "У отправителя нет прав на эту команду."},
	{"bad_key",
	 "The API key is missing or wrong: write it on the first line of the message.",
	 "Ключ API не указан или неверен: напишите его первой строкой письма."},
	{"several_senders", "The message has several senders.", "У письма несколько отправителей."},
	{"unauthenticated",
	 "The message did not pass sender authentication (DKIM/DMARC).",
	 "Письмо не прошло проверку подлинности отправителя (DKIM/DMARC)."},
};

static const char *message_reason_text(const lang *l, const char *reason)
{
	return WORDS(l, message_reasons, reason);
}

static bool is_winmail(const sg_file_result *fr)
{
	return (fr->name && g_ascii_strcasecmp(fr->name, "winmail.dat") == 0) ||
	       (fr->detail && strstr(fr->detail, "tnef") != NULL);
}

static const words file_reasons[] = {
	{"not_csv",
	 "This is a spreadsheet workbook, not a CSV file. Open it and save as CSV (File → "
	 "Save as → CSV), then send the CSV file.",
	 "Это книга Excel, а не CSV-файл. Откройте её и сохраните как CSV (Файл → "
	 "Сохранить как → CSV), затем отправьте CSV-файл."},
	{"bad_encoding",
	 "The text encoding could not be read (the file contains binary data). Save the "
	 "file as CSV in UTF-8 or Windows-1251.",
	 "Не удалось определить кодировку (в файле двоичные данные). Сохраните файл как "
	 "CSV в кодировке UTF-8 или Windows-1251."},
	{"malformed_csv",
	 "The CSV structure is broken (for example an unclosed quote). Check the quotes in "
	 "the file or save it again as CSV.",
	 "Нарушена структура CSV (например, незакрытая кавычка). Проверьте кавычки или "
	 "сохраните файл как CSV ещё раз."},
	{"bad_header",
	 "The header row is missing or has an unknown column. The first row must name the "
	 "columns.",
	 "Нет строки заголовка или в ней неизвестный столбец. Первая строка должна "
	 "содержать названия столбцов."},
	{"empty_file",
	 "The file has no data rows. To clear stock, send the articles with 0; an empty "
	 "warehouse list is not accepted.",
	 "В файле нет строк с данными. Чтобы обнулить остатки, отправьте артикулы с "
	 "количеством 0; пустой список складов не принимается."},
	{"too_many_rows",
	 "The file has too many rows. Split it into several files.",
	 "В файле слишком много строк. Разделите его на несколько файлов."},
	{"row_errors",
	 "Some rows have errors, so nothing from this file was applied. Correct the rows "
	 "listed below (all of them are in errors.csv) and send the whole file again.",
	 "В некоторых строках ошибки, поэтому файл не применён целиком. Исправьте строки "
	 "из списка ниже (все они есть в errors.csv) и отправьте файл целиком ещё раз."},
	{"unknown_warehouse",
	 "The warehouse in this file is not in your warehouse list. Send the warehouse "
	 "list first (subject: warehouses) or correct the warehouse code.",
	 "Склада из этого файла нет в вашем списке складов. Сначала отправьте список "
	 "складов (тема: склады) или исправьте код склада."},
	{"duplicate_warehouse",
	 "Another file in this message is for the same warehouse; only the first was used. "
	 "Send one file per warehouse.",
	 "Другой файл в этом письме относится к тому же складу; использован только первый. "
	 "Отправляйте один файл на склад."},
	{"superseded",
	 "Newer data for this warehouse was already applied from a later message, so this "
	 "older file was ignored.",
	 "Для этого склада уже применены более новые данные из более позднего письма, "
	 "поэтому этот старый файл пропущен."},
	{"mirror_error",
	 "The dealer API refused the change. Its answer is below.",
	 "API дилера отклонил изменения. Его ответ приведён ниже."},
};

/* What went wrong with a rejected file and what to do about it. */
static const char *file_reason_text(const lang *l, const sg_file_result *fr)
{
	const char *w;

	if (fr->reason && strcmp(fr->reason, "bad_mime_type") == 0 && is_winmail(fr))
		return tr(l,
			  "This is an Outlook winmail.dat attachment (rich text format): the file "
			  "inside cannot be read. Set your mail program to send in plain-text or "
			  "HTML format and attach the CSV file again.",
			  "Это вложение Outlook winmail.dat (формат RTF): файл внутри не читается. "
			  "Настройте почтовую программу на отправку в формате «обычный текст» или "
			  "HTML и приложите CSV-файл снова.");
	if (fr->reason && strcmp(fr->reason, "bad_mime_type") == 0)
		return tr(l, "This type of attachment is not accepted. Attach the stock as a CSV file.",
			  "Такой тип вложения не принимается. Приложите данные в виде CSV-файла.");
	w = WORDS(l, file_reasons, fr->reason);
	return w ? w : tr(l, "The file was rejected.", "Файл отклонён.");
}

static const words issue_codes[] = {
	{"missing_value", "a required value is empty", "не заполнено обязательное значение"},
	{"bad_code",
	 "the code must be 1–64 letters, digits, '-', '_' or '.'",
	 "код должен состоять из 1–64 букв, цифр, «-», «_» или «.»"},
	{"bad_article",
	 "the article must be 1–64 characters",
	 "артикул должен содержать от 1 до 64 символов"},
	{"bad_quantity",
	 "the quantity must be a whole number from 0 to 999999999",
	 "количество должно быть целым числом от 0 до 999999999"},
	{"duplicate_code", "this warehouse code is repeated", "код склада повторяется"},
	{"other_warehouse",
	 "the row is for another warehouse than the file",
	 "строка относится к другому складу"},
	{"field_too_long", "the value is too long", "значение слишком длинное"},
	{"wrong_column_count",
	 "the row has a wrong number of columns",
	 "неверное число столбцов в строке"},
	{"not_in_catalog",
	 "articles not in the catalogue were skipped",
	 "артикулы, которых нет в каталоге, пропущены"},
	{"duplicate_article",
	 "repeated articles were summed",
	 "повторяющиеся артикулы просуммированы"},
	{"title_rows_skipped",
	 "rows above the header were skipped",
	 "строки над заголовком пропущены"},
};

/* A short description of a row error or warning code. */
static const char *code_text(const lang *l, const char *code)
{
	const char *w = WORDS(l, issue_codes, code);
	return w ? w : code ? code : "";
}

/* The message column of errors.csv and the body: the record's sentence in English, else the
 * description of the code. */
static const char *issue_text(const lang *l, const sg_issue *is)
{
	if (l->en && is->message != NULL)
		return is->message;
	return code_text(l, is->code);
}

/* ---- the body ---- */

static void body_issue(GString *b, const lang *l, const sg_issue *is)
{
	g_autofree char *col = is->column ? one_line(is->column) : NULL;
	g_autofree char *val = is->value ? one_line(is->value) : NULL;
	g_autofree char *msg = one_line(issue_text(l, is));

	g_string_append(b, "  - ");
	if (is->line > 0)
		g_string_append_printf(b, tr(l, "line %ld", "строка %ld"), is->line);
	if (col) {
		if (is->line > 0)
			g_string_append(b, ", ");
		g_string_append_printf(b, tr(l, "column \"%s\"", "столбец «%s»"), col);
	}
	if (is->line > 0 || col)
		g_string_append(b, ": ");
	g_string_append(b, msg);
	if (val)
		g_string_append_printf(b, tr(l, " (value: \"%s\")", " (значение: «%s»)"), val);
	g_string_append_printf(b, " [%s]\n", is->code ? is->code : "");
}

static void body_file(GString *b, const lang *l, guint n, const sg_file_result *fr)
{
	g_autofree char *name = one_line(fr->name);

	g_string_append_printf(b, tr(l, "File %u: %s\n", "Файл %u: %s\n"), n, name);
	g_string_append_printf(b, tr(l, "  Status: %s\n", "  Статус: %s\n"),
			       fr->applied ? tr(l, "applied", "принят") :
					     tr(l, "rejected", "отклонён"));
	if (fr->warehouse) {
		g_autofree char *w = one_line(fr->warehouse);
		g_string_append_printf(b, tr(l, "  Warehouse: %s\n", "  Склад: %s\n"), w);
	}
	if (!fr->applied) {
		g_string_append_printf(b, tr(l, "  Reason: %s\n", "  Причина: %s\n"),
				       file_reason_text(l, fr));
		if (fr->reason)
			g_string_append_printf(b, "  [%s]\n", fr->reason);
	}
	if (fr->detail) {
		/* The detail may span lines (a mirror's messages); indent each. */
		g_autofree char *d = g_utf8_make_valid(fr->detail, -1);
		g_auto(GStrv) lines = g_strsplit_set(d, "\r\n", -1);
		g_string_append(b, tr(l, "  Details:\n", "  Подробности:\n"));
		for (char **p = lines; *p; p++)
			if (**p)
				g_string_append_printf(b, "    %s\n", *p);
	}
	g_string_append_printf(b,
			       tr(l,
				  "  Rows: %ld, added: %ld, updated: %ld, deleted: %ld, unchanged: %ld, "
				  "skipped: %ld\n",
				  "  Строк: %ld, добавлено: %ld, изменено: %ld, удалено: %ld, без "
				  "изменений: %ld, пропущено: %ld\n"),
			       fr->rows, fr->added, fr->updated, fr->deleted, fr->unchanged,
			       fr->skipped);
	if (fr->errors->len > 0) {
		g_string_append_printf(b, tr(l, "  Errors: %u\n", "  Ошибок: %u\n"), fr->errors->len);
		for (guint i = 0; i < fr->errors->len && i < REPORT_MAX_ERRORS; i++)
			body_issue(b, l, g_ptr_array_index(fr->errors, i));
		if (fr->errors->len > REPORT_MAX_ERRORS)
			g_string_append_printf(b,
					       tr(l, "  … and %u more errors: see errors.csv.\n",
						  "  … и ещё ошибок: %u, см. errors.csv.\n"),
					       fr->errors->len - REPORT_MAX_ERRORS);
	}
	if (fr->warnings->len > 0) {
		/* Warnings by code with a count each, in order of first appearance. */
		GPtrArray *codes = g_ptr_array_new();
		GHashTable *count = g_hash_table_new(g_str_hash, g_str_equal);

		g_string_append_printf(b, tr(l, "  Warnings: %u (see errors.csv)\n",
					     "  Предупреждений: %u (см. errors.csv)\n"),
				       fr->warnings->len);
		for (guint i = 0; i < fr->warnings->len; i++) {
			const sg_issue *is = g_ptr_array_index(fr->warnings, i);
			const char *c = is->code ? is->code : "";
			guint k = GPOINTER_TO_UINT(g_hash_table_lookup(count, c));
			if (k == 0)
				g_ptr_array_add(codes, (gpointer)c);
			g_hash_table_insert(count, (gpointer)c, GUINT_TO_POINTER(k + 1));
		}
		for (guint i = 0; i < codes->len; i++) {
			const char *c = g_ptr_array_index(codes, i);
			g_string_append_printf(b, "  - %s: %u [%s]\n", code_text(l, c),
					       GPOINTER_TO_UINT(g_hash_table_lookup(count, c)), c);
		}
		g_hash_table_unref(count);
		g_ptr_array_unref(codes);
	}
	g_string_append(b, "\n");
}

static char *build_body(const sg_result *r, const lang *l, const char *method, bool has_csv)
{
	GString *b = g_string_new(NULL);
	const char *why;

	if (r->dev_mode)
		g_string_append(b, tr(l,
				      "*** DEVELOPMENT MODE: this is a test. The message was checked "
				      "in full, but nothing was changed. ***\n\n",
				      "*** РЕЖИМ РАЗРАБОТКИ: это проверка. Письмо обработано полностью, "
				      "но никаких изменений не внесено. ***\n\n"));
	g_string_append_printf(b, tr(l, "stockgate processing report (%s): %s.\n",
				     "Отчёт stockgate об обработке (%s): %s.\n"),
			       method ? method : tr(l, "unknown command", "неизвестная команда"),
			       outcome_words(l, r->outcome));
	g_string_append_printf(b, "%s\n", outcome_sentence(l, r->outcome));
	why = message_reason_text(l, r->reason);
	if (why)
		g_string_append_printf(b, "%s [%s]\n", why, r->reason);
	else if (r->reason)
		g_string_append_printf(b, "[%s]\n", r->reason);
	if (r->detail) {
		g_autofree char *d = g_utf8_make_valid(r->detail, -1);
		g_string_append_printf(b, tr(l, "Details: %s\n", "Подробности: %s\n"), d);
	}
	g_string_append(b, "\n");
	for (guint i = 0; r->files && i < r->files->len; i++)
		body_file(b, l, i + 1, g_ptr_array_index(r->files, i));
	if (has_csv)
		g_string_append(b, tr(l, "All errors and warnings are listed in the attached errors.csv.\n",
				      "Все ошибки и предупреждения — в приложенном файле errors.csv.\n"));
	g_string_append(b, tr(l, "\nThis message was sent automatically; please do not reply to it.\n",
			      "\nЭто письмо отправлено автоматически, отвечать на него не нужно.\n"));
	return g_string_free(b, FALSE);
}

/* ---- errors.csv ---- */

/* One cell: formula-guarded (a spreadsheet must not run it), then quoted per RFC 4180. */
static void csv_cell(GString *out, const char *s)
{
	g_autofree char *v = g_utf8_make_valid(s ? s : "", -1);
	bool guard = strchr("=+-@\t\r", v[0]) != NULL && v[0] != '\0';
	bool quote = strpbrk(v, ";\"\r\n") != NULL;

	if (quote)
		g_string_append_c(out, '"');
	if (guard)
		g_string_append_c(out, '\'');
	for (const char *p = v; *p; p++) {
		if (*p == '"')
			g_string_append_c(out, '"');
		g_string_append_c(out, *p);
	}
	if (quote)
		g_string_append_c(out, '"');
}

static void csv_row(GString *out, const char *const *cells, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			g_string_append_c(out, ';');
		csv_cell(out, cells[i]);
	}
	g_string_append(out, "\r\n");
}

static void csv_issues(GString *out, const lang *l, const char *file, const GPtrArray *a)
{
	for (guint i = 0; i < a->len; i++) {
		const sg_issue *is = g_ptr_array_index(a, i);
		g_autofree char *line = is->line > 0 ? g_strdup_printf("%ld", is->line) : g_strdup("");
		const char *cells[] = { file, line, is->column, is->code, issue_text(l, is), is->value };
		csv_row(out, cells, G_N_ELEMENTS(cells));
	}
}

/* errors.csv as bytes, or NULL when no file has errors or warnings. */
static GString *build_errors_csv(const sg_result *r, const lang *l)
{
	static const char *const header[] = { "file", "line", "column", "code", "message", "value" };
	GString *out = NULL;

	for (guint i = 0; r->files && i < r->files->len; i++) {
		const sg_file_result *fr = g_ptr_array_index(r->files, i);
		if (fr->errors->len == 0 && fr->warnings->len == 0)
			continue;
		if (out == NULL) {
			out = g_string_new("\xEF\xBB\xBF");
			csv_row(out, header, G_N_ELEMENTS(header));
		}
		g_autofree char *name = one_line(fr->name);
		csv_issues(out, l, name, fr->errors);
		csv_issues(out, l, name, fr->warnings);
	}
	return out;
}

/* ---- the message ---- */

static GMimePart *attachment(const char *type, const char *subtype, const char *name,
			     const void *data, size_t len)
{
	GMimePart *part = g_mime_part_new_with_type(type, subtype);
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(data, len);
	GMimeDataWrapper *dw = g_mime_data_wrapper_new_with_stream(st, GMIME_CONTENT_ENCODING_DEFAULT);

	g_mime_part_set_content(part, dw);
	g_object_unref(dw);
	g_object_unref(st);
	g_mime_part_set_filename(part, name);
	/* base64 keeps the CRLF and the BOM byte for byte through any relay. */
	g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_BASE64);
	return part;
}

/* The From mailbox of the config, or a safe fallback when it does not parse. */
static void set_from(GMimeMessage *msg, const char *from, char **addr_out)
{
	InternetAddressList *list = from ? internet_address_list_parse(NULL, from) : NULL;
	const char *name = NULL, *addr = NULL;

	for (int i = 0; list && i < internet_address_list_length(list); i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_MAILBOX(ia) &&
		    safe_addr(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia)))) {
			addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
			name = internet_address_get_name(ia);
			break;
		}
	}
	if (addr == NULL) {
		addr = "stockgate@localhost";
		name = "stockgate";
	}
	g_autofree char *n = name ? one_line(name) : NULL;
	g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM, n, addr);
	*addr_out = g_strdup(addr);
	if (list)
		g_object_unref(list);
}

static void init_gmime(void)
{
	static gsize done;

	if (g_once_init_enter(&done)) {
		g_mime_init();
		g_once_init_leave(&done, 1);
	}
}

sg_status sg_report_build(const sg_result *r, const sg_report_opts *o, char **out, size_t *len,
			  char **msgid, char **err)
{
	lang l = { .en = o->language != NULL && g_ascii_strcasecmp(o->language, "en") == 0 };
	const char *method = known_method(o->method) ? o->method : NULL;
	g_autofree char *from_addr = NULL, *domain = NULL, *id = NULL, *subject = NULL;
	g_autofree char *body = NULL, *text = NULL;
	g_autofree char *extra = NULL;
	gsize extra_len = 0;
	GString *csv;
	GMimeMessage *msg;
	GMimeTextPart *tp;
	GMimeFormatOptions *fo;

	*out = NULL;
	if (len)
		*len = 0;
	if (msgid)
		*msgid = NULL;
	if (!safe_addr(o->to))
		return sg_fail(err, SG_EDATA, "report: recipient address '%s' is not a plain address",
			       o->to ? o->to : "");
	if (o->extra_path != NULL) {
		GError *ge = NULL;
		if (!g_file_get_contents(o->extra_path, &extra, &extra_len, &ge)) {
			sg_status st = sg_fail(err, SG_EIO, "%s: cannot read the report attachment: %s",
					       o->extra_path, ge->message);
			g_error_free(ge);
			return st;
		}
	}
	init_gmime();

	msg = g_mime_message_new(FALSE);
	set_from(msg, o->from, &from_addr);
	g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, NULL, o->to);

	subject = g_strdup_printf("%s%s: %s", r->dev_mode ? tr(&l, "[TEST] ", "[ТЕСТ] ") : "",
				  method ? method : "stockgate", outcome_words(&l, r->outcome));
	g_mime_message_set_subject(msg, subject, "utf-8");
	{
		g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(sg_now());
		g_mime_message_set_date(msg, dt);
	}
	domain = msgid_domain(from_addr);
	id = new_msgid(domain);
	g_mime_message_set_message_id(msg, id);
	if (safe_msgid(o->in_reply_to)) {
		g_autofree char *ref = g_strdup_printf("<%s>", o->in_reply_to);
		g_mime_object_set_header(GMIME_OBJECT(msg), "In-Reply-To", ref, NULL);
		g_mime_object_set_header(GMIME_OBJECT(msg), "References", ref, NULL);
	}
	g_mime_object_set_header(GMIME_OBJECT(msg), "Auto-Submitted", "auto-replied", NULL);
	g_mime_object_set_header(GMIME_OBJECT(msg), SG_REPORT_HEADER, "1", NULL);
	g_mime_object_set_header(GMIME_OBJECT(msg), "MIME-Version", "1.0", NULL);
	g_mime_object_set_header(GMIME_OBJECT(msg), "Content-Language", l.en ? "en" : "ru", NULL);

	csv = build_errors_csv(r, &l);
	body = build_body(r, &l, method, csv != NULL);
	tp = g_mime_text_part_new_with_subtype("plain");
	g_mime_text_part_set_text(tp, body);
	g_mime_text_part_set_charset(tp, "utf-8");
	/* Cyrillic in quoted-printable triples in size; English stays readable in it. */
	g_mime_part_set_content_encoding(GMIME_PART(tp), l.en ? GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE :
								GMIME_CONTENT_ENCODING_BASE64);

	if (csv == NULL && extra == NULL && (o->files == NULL || o->files[0] == NULL)) {
		g_mime_message_set_mime_part(msg, GMIME_OBJECT(tp));
	} else {
		GMimeMultipart *mp = g_mime_multipart_new_with_subtype("mixed");
		g_mime_multipart_add(mp, GMIME_OBJECT(tp));
		if (csv != NULL) {
			GMimePart *a = attachment("text", "csv", "errors.csv", csv->str, csv->len);
			g_mime_object_set_content_type_parameter(GMIME_OBJECT(a), "charset", "utf-8");
			g_mime_multipart_add(mp, GMIME_OBJECT(a));
			g_object_unref(a);
		}
		if (extra != NULL) {
			g_autofree char *name = sg_sanitize_filename(o->extra_name ? o->extra_name :
										     "results.csv");
			GMimePart *a = attachment("text", "csv", name, extra, extra_len);
			g_mime_multipart_add(mp, GMIME_OBJECT(a));
			g_object_unref(a);
		}
		for (size_t i = 0; o->files && o->files[i]; i++) {
			/* A file stockgate wrote itself (serve's reports), named by its basename. */
			g_autofree char *data = NULL, *base = g_path_get_basename(o->files[i]);
			gsize dlen = 0;
			bool pdf = g_str_has_suffix(base, ".pdf");
			if (!g_file_get_contents(o->files[i], &data, &dlen, NULL))
				continue;
			GMimePart *a = attachment(pdf ? "application" : "text", pdf ? "pdf" : "html",
						  base, data, dlen);
			g_mime_multipart_add(mp, GMIME_OBJECT(a));
			g_object_unref(a);
		}
		g_mime_message_set_mime_part(msg, GMIME_OBJECT(mp));
		g_object_unref(mp);
	}
	g_object_unref(tp);
	if (csv)
		g_string_free(csv, TRUE);

	fo = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
	text = g_mime_object_to_string(GMIME_OBJECT(msg), fo);
	g_mime_format_options_free(fo);
	g_object_unref(msg);
	if (text == NULL)
		return sg_fail(err, SG_EINTERNAL, "report: gmime could not write the message");

	if (len)
		*len = strlen(text);
	*out = g_steal_pointer(&text);
	if (msgid)
		*msgid = g_steal_pointer(&id);
	return SG_OK;
}
