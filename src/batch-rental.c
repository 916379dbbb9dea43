/* batch-rental.c: batch kind `rental`: PILOT rental contracts of seed 003 (generate_token, then
 * start, update and stop per contract, in file order). */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "log.h"
#include "util.h"

enum {
	C_CMD, C_MVA, C_RA, C_PLATE, C_DNAME, C_DPHONE, C_DPASSPORT, C_DADDRESS, C_DLICENSE,
	C_DLICENSE_EXP, C_DEMAIL, C_DBIRTH, C_DSEX, C_DCOUNTRY, C_DRATING, C_TS_EXP, C_TE_EXP,
	C_TS_REAL, C_TE_REAL, C_START_LAT, C_START_LON, C_START_ADDR, C_END_LAT, C_END_LON,
	C_END_ADDR, C_RATE, C_GROUP, C_BRANCH, C_MILEAGE, C_CID, C_TZ, C_N
};

#define A(...) ((const char *const[]){ __VA_ARGS__, NULL })
/* The seed's parameter names first; Russian headers as a rental desk's export names them. */
static const sg_batch_column rental_columns[] = {
	[C_CMD] = { "cmd", A("команда", "command", "действие"), true },
	[C_MVA] = { "mva", A("id тс", "id автомобиля"), false },
	[C_RA] = { "ra", A("договор", "номер договора", "rental agreement"), true },
	[C_PLATE] = { "plate_number", A("госномер", "номерной знак", "plate"), false },
	[C_DNAME] = { "driver_name", A("водитель", "имя водителя", "фио"), false },
	[C_DPHONE] = { "driver_phone", A("телефон", "телефон водителя"), false },
	[C_DPASSPORT] = { "driver_passport", A("паспорт", "паспорт водителя"), false },
	[C_DADDRESS] = { "driver_address", A("адрес водителя"), false },
	[C_DLICENSE] = { "driver_license", A("права", "водительские права"), false },
	[C_DLICENSE_EXP] = { "driver_license_exp", A("срок действия прав"), false },
	[C_DEMAIL] = { "driver_email", A("email водителя", "почта водителя"), false },
	[C_DBIRTH] = { "driver_birth_date", A("дата рождения"), false },
	[C_DSEX] = { "driver_sex", A("пол"), false },
	[C_DCOUNTRY] = { "driver_country", A("страна", "страна водителя"), false },
	[C_DRATING] = { "driver_rating", A("рейтинг", "рейтинг водителя"), false },
	[C_TS_EXP] = { "ts_expected", A("начало", "ожидаемое начало"), false },
	[C_TE_EXP] = { "te_expected", A("окончание", "ожидаемое окончание"), false },
	[C_TS_REAL] = { "ts_real", A("фактическое начало"), false },
	[C_TE_REAL] = { "te_real", A("фактическое окончание"), false },
	[C_START_LAT] = { "start_lat", A("широта начала"), false },
	[C_START_LON] = { "start_lon", A("долгота начала"), false },
	[C_START_ADDR] = { "start_address", A("адрес начала", "место начала"), false },
	[C_END_LAT] = { "end_lat", A("широта окончания"), false },
	[C_END_LON] = { "end_lon", A("долгота окончания"), false },
	[C_END_ADDR] = { "end_address", A("адрес окончания", "место окончания"), false },
	[C_RATE] = { "rate_code", A("код ставки", "тариф"), false },
	[C_GROUP] = { "car_group_charged", A("группа", "группа автомобиля"), false },
	[C_BRANCH] = { "checkout_branch", A("отделение", "отделение выдачи"), false },
	[C_MILEAGE] = { "mileage_limit", A("лимит пробега"), false },
	[C_CID] = { "cid", A("id клиента", "клиент"), false },
	[C_TZ] = { "time_zone", A("tz", "часовой пояс"), false },
};
#undef A

static const char *const rental_results[] = { "code", "message", "odo", NULL };

/* How a column goes into the request: a string, an int (JSON number), or not by itself. */
enum { T_STR, T_INT, T_TIME, T_NONE };
static const unsigned char col_type[C_N] = {
	[C_CMD] = T_NONE, [C_MVA] = T_INT, [C_RA] = T_INT, [C_DRATING] = T_INT,
	[C_TS_EXP] = T_TIME, [C_TE_EXP] = T_TIME, [C_TS_REAL] = T_TIME, [C_TE_REAL] = T_TIME,
	[C_START_LAT] = T_NONE, [C_START_LON] = T_NONE, [C_START_ADDR] = T_NONE,
	[C_END_LAT] = T_NONE, [C_END_LON] = T_NONE, [C_END_ADDR] = T_NONE,
	[C_MILEAGE] = T_INT, [C_TZ] = T_NONE,
};

/* The seed's answer codes, in its words and in English. */
static const struct { long code; const char *ru, *en; } codes[] = {
	{ 0, "операция успешна", "operation successful" },
	{ 1, "автомобиль не найден", "car not found" },
	{ 2, "нет изменений для обновления", "nothing to update" },
	{ 3, "договор аренды не найден", "rental agreement not found" },
	{ 4, "ошибка аутентификации", "authentication error" },
	{ 5, "неизвестная ошибка", "unknown error" },
	{ 6, "нет прав для выполнения операции", "no rights for the operation" },
	{ 7, "модуль контрактов не активен", "the contracts module is not active" },
	{ 8, "этот номер договора аренды уже используется другой учётной записью",
	  "this rental agreement number is used by another account" },
	{ 9, "автомобиль арендован другой учётной записью", "the car is rented by another account" },
	{ 10, "автомобиль не арендован", "the car is not rented" },
	{ 11, "некорректный запрос", "malformed request" },
	{ 12, "неверный параметр местоположения", "wrong location parameter" },
	{ 13, "этот номер договора аренды используется другим агентом",
	  "this rental agreement number is used by another agent" },
	{ 14, "паспорт был передан, но не указано имя водителя",
	  "a passport was given without the driver's name" },
	{ 15, "имя водителя было передано, но не указан паспорт",
	  "the driver's name was given without a passport" },
	{ 16, "водитель не найден по предоставленным данным", "no driver found for the data given" },
	{ 17, "данные водителя не совпадают с ранее сохранёнными",
	  "the driver's data differ from those stored before" },
	{ 18, "договор аренды с данным номером не найден",
	  "no rental agreement with this number" },
	{ 19, "этот договор аренды уже завершён", "this rental agreement has already ended" },
	{ 20, "автомобиль уже арендован", "the car is already rented" },
	{ 21, "водитель указан неверно", "the driver is wrong" },
	{ 22, "существующий договор был закрыт, создан новый",
	  "the existing agreement was closed and a new one created" },
	{ 500, "внутренняя ошибка сервера", "internal server error" },
};

/* Codes 6 and 7 are about the account, not the row: every further call would be refused. */
#define CODE_STOPS(c) ((c) == 6 || (c) == 7)

typedef struct {
	const char *url, *login, *password; /* borrowed from the config */
	bool ru;                            /* report language */
	GTimeZone *tz;                      /* [rental] time_zone, or NULL */
	char *token;                        /* the run's token: a secret, never logged */
	int gen;                            /* token generation (1 = the run's first) */
	long ok_in_gen;                     /* answers that accepted the current token */
} rental_state;

/* The time zone of date-times without an offset when a row has no time_zone: the validator
 * has no state of its own, and open() runs before the rows are validated. */
static GTimeZone *configured_tz;

static const char *code_words(const rental_state *s, long code)
{
	for (size_t i = 0; i < G_N_ELEMENTS(codes); i++)
		if (codes[i].code == code)
			return s->ru ? codes[i].ru : codes[i].en;
	return s->ru ? "неизвестный код" : "unknown code";
}

/* The code's meaning, with the server's own words after it when they say something else. */
static char *describe(const rental_state *s, long code, const char *server)
{
	const char *w = code_words(s, code);
	g_autofree char *f = g_utf8_casefold(server, -1);

	if (*server == 0 || (code == 0 && (strcmp(f, "success") == 0 || strcmp(f, "ok") == 0)))
		return g_strdup(w);
	for (size_t i = 0; i < G_N_ELEMENTS(codes); i++)
		if (codes[i].code == code) {
			g_autofree char *ru = g_utf8_casefold(codes[i].ru, -1);
			g_autofree char *en = g_utf8_casefold(codes[i].en, -1);
			if (strcmp(f, ru) == 0 || strcmp(f, en) == 0)
				return g_strdup(w);
		}
	return g_strdup_printf("%s (%s)", w, server);
}

sg_status sg_batch_rental_parse(const char *body, size_t len, long *code, char **odo,
				char **message, char **err)
{
	cJSON *j = cJSON_ParseWithLength(body, len);
	cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "code");
	cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "odo");
	cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	sg_status st = SG_OK;

	*code = -1;
	*odo = NULL;
	*message = NULL;
	if (!cJSON_IsObject(j)) {
		st = sg_fail(err, SG_EDATA, "the answer is not a JSON object");
		goto out;
	}
	if (cJSON_IsNumber(c) && c->valuedouble >= 0 && c->valuedouble <= 1e6 &&
	    c->valuedouble == (double)(long)c->valuedouble) {
		*code = (long)c->valuedouble;
	} else if (cJSON_IsString(c) && *c->valuestring && strlen(c->valuestring) <= 7 &&
		   strspn(c->valuestring, "0123456789") == strlen(c->valuestring)) {
		*code = strtol(c->valuestring, NULL, 10);
	} else {
		st = sg_fail(err, SG_EDATA, "the answer has no numeric code");
		goto out;
	}
	if (cJSON_IsString(o))
		*odo = g_utf8_make_valid(o->valuestring, (gssize)MIN(strlen(o->valuestring), 64));
	else if (cJSON_IsNumber(o) && o->valuedouble == (double)(long long)o->valuedouble)
		*odo = g_strdup_printf("%lld", (long long)o->valuedouble);
	else if (cJSON_IsNumber(o)) {
		char buf[G_ASCII_DTOSTR_BUF_SIZE];
		*odo = g_strdup(g_ascii_dtostr(buf, sizeof(buf), o->valuedouble));
	} else
		*odo = g_strdup("");
	if (cJSON_IsString(m)) {
		g_autofree char *v = g_utf8_make_valid(m->valuestring, -1);
		*message = sg_truncate(g_strstrip(v), 500);
	} else
		*message = g_strdup("");
out:
	cJSON_Delete(j);
	return st;
}

/* ---- validation ------------------------------------------------------------------------- */

/* A whole number of at most 15 digits (exact as a JSON number). */
static bool is_int(const char *s)
{
	size_t n = strspn(s, "0123456789");

	return n > 0 && n <= 15 && s[n] == 0;
}

/* A decimal degree within ±limit, "55,75", "+55.75" or "55."; replaced by the number as JSON
 * writes it (it goes into the request as is). */
static bool is_degree(char **s, double limit)
{
	char buf[G_ASCII_DTOSTR_BUF_SIZE], *end;
	double v;

	for (char *p = *s; *p; p++)
		if (*p == ',')
			*p = '.';
	if (strlen(*s) > 20 || strspn(*s, "+-0123456789.") != strlen(*s) ||
	    !(g_ascii_isdigit(**s) || ((**s == '-' || **s == '+') && g_ascii_isdigit((*s)[1]))))
		return false;
	v = g_ascii_strtod(*s, &end);
	if (*end || !(v >= -limit && v <= limit))
		return false;
	g_free(*s);
	*s = g_strdup(g_ascii_dtostr(buf, sizeof buf, v));
	return true;
}

/* Seconds since the epoch of "2025-03-01 10:00[:SS]", "2025-03-01T10:00:00+03:00", "…Z",
 * "01.03.2025 10:00" or a date alone (midnight); without an offset in tz. 0: not a date-time,
 * -1: it needs a time zone. */
static int parse_when(const char *s, GTimeZone *tz, gint64 *out)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, k = 0;
	const char *p;
	g_autoptr(GTimeZone) own = NULL;
	g_autoptr(GDateTime) dt = NULL;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) == 3 && n == 10)
		;
	else if (sscanf(s, "%2d.%2d.%4d%n", &d, &mo, &y, &n) == 3 && n == 10)
		;
	else
		return 0;
	p = s + n;
	if (*p == 'T' || *p == ' ') {
		p++;
		if (!g_ascii_isdigit(*p) || sscanf(p, "%2d:%2d%n", &h, &mi, &k) != 2 || k != 5)
			return 0;
		p += k;
		if (*p == ':') {
			k = 0;
			if (!g_ascii_isdigit(p[1]) || sscanf(p + 1, "%2d%n", &sec, &k) != 1 || k != 2)
				return 0;
			p += 1 + k;
		}
	}
	if (*p == 'Z' && p[1] == 0)
		tz = own = g_time_zone_new_utc();
	else if ((*p == '+' || *p == '-') && strlen(p) <= 6) {
		tz = own = g_time_zone_new_identifier(p);
		if (tz == NULL)
			return 0;
	} else if (*p)
		return 0;
	if (tz == NULL)
		return -1;
	dt = g_date_time_new(tz, y, mo, d, h, mi, sec);
	if (dt == NULL || g_date_time_get_day_of_month(dt) != d || h > 23 || mi > 59 || sec > 59)
		return 0;
	*out = g_date_time_to_unix(dt);
	return 1;
}

static void set_val(char **vals, int c, char *v)
{
	g_free(vals[c]);
	vals[c] = v;
}

/* A location from its three columns: lat and lon together, or an address, or both. */
static char *check_location(char **vals, int lat, int lon, int addr, bool required,
			    const char *name)
{
	if (*vals[lat] || *vals[lon]) {
		if (!*vals[lat] || !*vals[lon])
			return g_strdup_printf("%s: %s without %s", name,
					       *vals[lat] ? rental_columns[lat].name
							  : rental_columns[lon].name,
					       *vals[lat] ? rental_columns[lon].name
							  : rental_columns[lat].name);
		if (!is_degree(&vals[lat], 90))
			return g_strdup_printf("%s: '%s' is not a latitude (-90 … 90)",
					       rental_columns[lat].name, vals[lat]);
		if (!is_degree(&vals[lon], 180))
			return g_strdup_printf("%s: '%s' is not a longitude (-180 … 180)",
					       rental_columns[lon].name, vals[lon]);
	} else if (!*vals[addr] && required) {
		return g_strdup_printf("%s: needs %s and %s, or %s", name, rental_columns[lat].name,
				       rental_columns[lon].name, rental_columns[addr].name);
	}
	return NULL;
}

static char *rental_validate(char **vals, const char **warning)
{
	static const int start_req[] = { C_MVA, C_PLATE, C_DNAME, C_DPHONE, C_TS_EXP, C_TE_EXP };
	g_autoptr(GTimeZone) row_tz = NULL;
	g_autofree char *cmd = NULL;
	GTimeZone *tz = configured_tz;
	char *why;
	bool any = false;

	(void)warning;
	for (int c = 0; c < C_N; c++)
		g_strstrip(vals[c]);
	cmd = g_utf8_strdown(vals[C_CMD], -1);
	if (!strcmp(cmd, "start") || !strcmp(cmd, "старт") || !strcmp(cmd, "начать"))
		set_val(vals, C_CMD, g_strdup("start"));
	else if (!strcmp(cmd, "update") || !strcmp(cmd, "обновить") || !strcmp(cmd, "изменить"))
		set_val(vals, C_CMD, g_strdup("update"));
	else if (!strcmp(cmd, "stop") || !strcmp(cmd, "стоп") || !strcmp(cmd, "завершить"))
		set_val(vals, C_CMD, g_strdup("stop"));
	else if (*cmd == 0)
		return g_strdup("cmd: empty (start, update or stop)");
	else
		return g_strdup_printf("cmd: '%s' is not start, update or stop", vals[C_CMD]);

	if (*vals[C_RA] == 0)
		return g_strdup("ra: empty (the rental agreement number)");
	if (*vals[C_TZ]) {
		row_tz = g_time_zone_new_identifier(vals[C_TZ]);
		if (row_tz == NULL)
			return g_strdup_printf("time_zone: '%s' is not a time zone (Europe/Moscow, "
					       "+03:00, UTC)", vals[C_TZ]);
		tz = row_tz;
	}
	for (int c = 0; c < C_N; c++) {
		if (*vals[c] == 0)
			continue;
		if (col_type[c] == T_INT && !is_int(vals[c]))
			return g_strdup_printf("%s: '%s' is not a whole number",
					       rental_columns[c].name, vals[c]);
		if ((col_type[c] == T_INT || col_type[c] == T_TIME) && is_int(vals[c]))
			/* One spelling a number ("067890" is 67890 and no JSON number): the same ra
			 * is one contract, and the request stays valid JSON. */
			set_val(vals, c, g_strdup_printf("%" G_GUINT64_FORMAT,
							 g_ascii_strtoull(vals[c], NULL, 10)));
		if (col_type[c] == T_TIME && !is_int(vals[c])) {
			gint64 t = 0;
			int r = parse_when(vals[c], tz, &t);
			if (r == 0)
				return g_strdup_printf("%s: '%s' is not a Unix time or a date-time "
						       "(2025-03-01 10:00, 01.03.2025 10:00)",
						       rental_columns[c].name, vals[c]);
			if (r < 0)
				return g_strdup_printf("%s: '%s' has no time zone: add an offset "
						       "(+03:00), a time_zone column or [rental] "
						       "time_zone", rental_columns[c].name, vals[c]);
			if (t < 0)
				return g_strdup_printf("%s: '%s' is before 1970",
						       rental_columns[c].name, vals[c]);
			set_val(vals, c, g_strdup_printf("%" G_GINT64_FORMAT, t));
		}
		if (c != C_CMD && c != C_RA && c != C_TZ)
			any = true;
	}
	if (*vals[C_DSEX]) {
		g_autofree char *x = g_utf8_strdown(vals[C_DSEX], -1);
		if (!strcmp(x, "m") || !strcmp(x, "м") || !strcmp(x, "male") || !strcmp(x, "муж"))
			set_val(vals, C_DSEX, g_strdup("m"));
		else if (!strcmp(x, "f") || !strcmp(x, "ж") || !strcmp(x, "female") ||
			 !strcmp(x, "жен"))
			set_val(vals, C_DSEX, g_strdup("f"));
		else
			return g_strdup_printf("driver_sex: '%s' is not m or f", vals[C_DSEX]);
	}
	bool start = strcmp(vals[C_CMD], "start") == 0, stop = strcmp(vals[C_CMD], "stop") == 0;
	if (start)
		for (size_t i = 0; i < G_N_ELEMENTS(start_req); i++)
			if (*vals[start_req[i]] == 0)
				return g_strdup_printf("%s: empty (start needs mva, plate_number, "
						       "driver_name, driver_phone, ts_expected, "
						       "te_expected and a start location)",
						       rental_columns[start_req[i]].name);
	if ((why = check_location(vals, C_START_LAT, C_START_LON, C_START_ADDR, start,
				  "start location")) ||
	    (why = check_location(vals, C_END_LAT, C_END_LON, C_END_ADDR, stop, "end location")))
		return why;
	if (!any)
		return g_strdup("update: nothing to update (only cmd and ra)");
	if (*vals[C_TS_EXP] && *vals[C_TE_EXP] &&
	    g_ascii_strtoll(vals[C_TE_EXP], NULL, 10) < g_ascii_strtoll(vals[C_TS_EXP], NULL, 10))
		return g_strdup_printf("te_expected: %s is before ts_expected %s", vals[C_TE_EXP],
				       vals[C_TS_EXP]);
	return NULL;
}

/* ---- the service ------------------------------------------------------------------------ */

static cJSON *location(char **vals, int lat, int lon, int addr)
{
	cJSON *o;

	if (!*vals[lat] && !*vals[addr])
		return NULL;
	o = cJSON_CreateObject();
	if (*vals[lat]) {
		cJSON_AddRawToObject(o, "lat", vals[lat]);
		cJSON_AddRawToObject(o, "lon", vals[lon]);
	}
	if (*vals[addr])
		cJSON_AddStringToObject(o, "address", vals[addr]);
	return o;
}

/* The request of a validated row: cmd, then its non-empty parameters as the seed types them. */
static char *rental_body(char **vals)
{
	cJSON *o = cJSON_CreateObject(), *loc;
	char *txt, *out;

	cJSON_AddStringToObject(o, "cmd", vals[C_CMD]);
	for (int c = 0; c < C_N; c++) {
		if (*vals[c] == 0 || col_type[c] == T_NONE)
			continue;
		if (col_type[c] == T_STR)
			cJSON_AddStringToObject(o, rental_columns[c].name, vals[c]);
		else
			cJSON_AddRawToObject(o, rental_columns[c].name, vals[c]);
	}
	if ((loc = location(vals, C_START_LAT, C_START_LON, C_START_ADDR)))
		cJSON_AddItemToObject(o, "start_location", loc);
	if ((loc = location(vals, C_END_LAT, C_END_LON, C_END_ADDR)))
		cJSON_AddItemToObject(o, "end_location", loc);
	txt = cJSON_PrintUnformatted(o);
	out = g_strdup(txt);
	cJSON_free(txt);
	cJSON_Delete(o);
	return out;
}

static sg_status rental_open(const sg_config *cfg, sg_batch_conn *conn, char **err)
{
	rental_state *s;
	GTimeZone *tz = NULL;

	if (cfg->rental.url == NULL || *cfg->rental.url == 0)
		return sg_fail(err, SG_ECONFIG, "[rental] url is not set: the service's "
			       "…/backend/app/contracts.php URL");
	if (cfg->rental.login == NULL || *cfg->rental.login == 0)
		return sg_fail(err, SG_ECONFIG, "[rental] login is not set: the admin panel login");
	if (cfg->rental.password == NULL || *cfg->rental.password == 0)
		return sg_fail(err, SG_ECONFIG, "[rental] password_file (or password) is not set: "
			       "the admin panel password");
	if (cfg->rental.time_zone && *cfg->rental.time_zone) {
		tz = g_time_zone_new_identifier(cfg->rental.time_zone);
		if (tz == NULL)
			return sg_fail(err, SG_ECONFIG, "[rental] time_zone: '%s' is not a time zone "
				       "(Europe/Moscow, +03:00, UTC)", cfg->rental.time_zone);
	}
	s = g_new0(rental_state, 1);
	s->url = cfg->rental.url;
	s->login = cfg->rental.login;
	s->password = cfg->rental.password;
	s->ru = cfg->report.language == NULL || strcmp(cfg->report.language, "en") != 0;
	s->tz = tz;
	if (configured_tz)
		g_time_zone_unref(configured_tz);
	configured_tz = tz ? g_time_zone_ref(tz) : NULL;
	conn->section = "rental";
	conn->url = cfg->rental.url;
	conn->tls = &cfg->rental.tls;
	conn->state = s;
	return SG_OK;
}

static void rental_close(void *state)
{
	rental_state *s = state;

	if (s->token) {
		explicit_bzero(s->token, strlen(s->token));
		g_free(s->token);
	}
	if (s->tz)
		g_time_zone_unref(s->tz);
	g_clear_pointer(&configured_tz, g_time_zone_unref);
	g_free(s);
}

/* The generate_token request's body; it holds the password: explicit_bzero it, then g_free. */
static char *token_body(const rental_state *s)
{
	g_autofree char *lq = sg_batch_json_str(s->login), *pq = sg_batch_json_str(s->password);
	char *body = g_strdup_printf("{\"cmd\":\"generate_token\",\"login\":%s,\"password\":%s}",
				     lq, pq);

	explicit_bzero(pq, strlen(pq));
	return body;
}

/* Reads a generate_token answer into the run's token. SG_ETEMP for an answer worth another
 * try (429, 5xx), SG_EUNAVAIL for a refusal or an answer without a token. */
static sg_status token_read(rental_state *s, long http, const char *answer, char **err)
{
	g_autofree char *odo = NULL, *msg = NULL, *e = NULL;
	long code;
	sg_status st = SG_OK;

	if (http == 401 || http == 403) {
		st = sg_fail(err, SG_EUNAVAIL, "[rental] the service refused the login (HTTP %ld): "
			     "check login and password_file", http);
	} else if (http == 429 || http >= 500) {
		st = sg_fail(err, SG_ETEMP, "[rental] generate_token: HTTP %ld", http);
	} else if (sg_batch_rental_parse(answer, strlen(answer), &code, &odo, &msg, &e) != SG_OK) {
		st = sg_fail(err, SG_EUNAVAIL, "[rental] generate_token: HTTP %ld: %s", http, e);
	} else if (code == 4) {
		st = sg_fail(err, SG_EUNAVAIL, "[rental] the service refused the login (code 4, %s): "
			     "check login and password_file", code_words(s, 4));
	} else if (code != 0) {
		st = sg_fail(err, SG_EUNAVAIL, "[rental] generate_token: code %ld, %s", code,
			     code_words(s, code));
	} else if (*msg == 0 || strlen(msg) > 256 || strpbrk(msg, " \t\r\n")) {
		st = sg_fail(err, SG_EUNAVAIL, "[rental] generate_token: the answer holds no token");
	} else {
		if (s->token) {
			explicit_bzero(s->token, strlen(s->token));
			g_free(s->token);
		}
		s->token = g_strdup(msg);
		s->gen++;
		s->ok_in_gen = 0;
		log_debug("batch rental: a new token (generation %d)", s->gen);
	}
	if (msg)
		explicit_bzero(msg, strlen(msg));
	return st;
}

/* One generate_token call (a GET with a JSON body, as the seed sends it). *again: a transient
 * failure worth another try after *wait seconds (-1: backoff). */
static sg_status token_call(rental_state *s, const sg_batch_conn *conn, double timeout,
			    double connect_timeout, bool *again, double *wait, char **err)
{
	char *body = token_body(s);
	g_autofree char *answer = NULL, *e = NULL;
	long http = 0;
	bool permanent;
	sg_status st;

	*again = false;
	st = sg_batch_fetch(conn, "GET", body, NULL, timeout, connect_timeout, &http, &answer, wait,
			    &permanent, &e);
	explicit_bzero(body, strlen(body));
	g_free(body);
	if (st != SG_OK) {
		/* generate_token changes nothing: a failure on the way may be tried again. */
		*again = !permanent;
		return sg_fail(err, SG_ETEMP, "[rental] generate_token: %s", e);
	}
	st = token_read(s, http, answer, err);
	*again = st == SG_ETEMP;
	explicit_bzero(answer, strlen(answer));
	return st;
}

static sg_status rental_login(void *state, const sg_batch_conn *conn, double timeout,
			      double connect_timeout, char **err)
{
	rental_state *s = state;

	for (int attempt = 1;; attempt++) {
		g_autofree char *e = NULL;
		bool again;
		double wait;
		sg_status st = token_call(s, conn, timeout, connect_timeout, &again, &wait, &e);

		if (st == SG_OK)
			return SG_OK;
		if (!again || attempt >= 4) {
			if (err && *err == NULL)
				*err = g_steal_pointer(&e);
			return st;
		}
		if (wait < 0)
			wait = sg_batch_backoff(attempt, 0.5, 8, g_random_double());
		log_debug("%s; again in %.1fs", e, MIN(wait, 60.0));
		g_usleep((gulong)(MIN(wait, 60.0) * 1e6));
	}
}

static sg_status rental_renew(void *state, const sg_batch_row *stale, sg_batch_call *call,
			      char **err)
{
	rental_state *s = state;

	if (stale->phase != s->gen)
		return SG_OK; /* renewed since that call was made */
	if (s->ok_in_gen == 0)
		return sg_fail(err, SG_EUNAVAIL, "[rental] a freshly generated token was refused "
			       "at once (code 4, %s): check login and password_file",
			       code_words(s, 4));
	call->url = g_strdup(s->url);
	call->method = "GET";
	call->body = token_body(s);
	call->content_type = "application/json";
	call->what = "generate_token";
	return SG_OK;
}

static sg_status rental_renewed(void *state, long http, const char *body, size_t len,
				char **err)
{
	(void)len;
	return token_read(state, http, body, err);
}

static const char *cmd_name(const char *cmd)
{
	return !strcmp(cmd, "start") ? "start" : !strcmp(cmd, "stop") ? "stop" : "update";
}

static bool rental_next(void *state, sg_batch_row *row, sg_batch_call *call)
{
	rental_state *s = state;

	if (row->state && strcmp(row->state, "sent") != 0)
		return false;
	call->url = g_strdup(s->url);
	call->body = rental_body(row->vals);
	call->content_type = "application/json";
	call->charged = true; /* a contract's start, update and stop act on the world */
	call->what = cmd_name(row->vals[C_CMD]);
	call->header = g_strdup_printf("Authorization: Bearer %s", s->token ? s->token : "");
	row->phase = s->gen;
	return true;
}

static sg_step rental_answer(void *state, sg_batch_row *row, long http, const char *body,
			     size_t len)
{
	rental_state *s = state;
	g_autofree char *odo = NULL, *msg = NULL, *e = NULL, *text = NULL;
	long code;

	if (sg_batch_rental_parse(body, len, &code, &odo, &msg, &e) != SG_OK) {
		row->error = g_strdup_printf("HTTP %ld: %s", http, e);
		/* A 2xx the service sent after taking the command: it may have acted. */
		return http >= 200 && http < 300 ? SG_STEP_UNKNOWN : SG_STEP_DONE;
	}
	text = describe(s, code, msg);
	if (code == 4) {
		row->error = g_strdup_printf("code 4: %s", text);
		return SG_STEP_RENEW;
	}
	if (row->phase == s->gen)
		s->ok_in_gen++; /* the token was taken, whatever the row's fate */
	if (code == 500) {
		row->error = g_strdup_printf("code 500: %s", text);
		return SG_STEP_UNKNOWN;
	}
	{
		/* The result columns, of a refused row too: the engine keeps them beside its
		 * error when it fails the row. */
		cJSON *a = cJSON_CreateObject();
		g_autofree char *c = g_strdup_printf("%ld", code);
		char *txt;

		cJSON_AddStringToObject(a, "code", c);
		cJSON_AddStringToObject(a, "message", text);
		cJSON_AddStringToObject(a, "odo", odo);
		txt = cJSON_PrintUnformatted(a);
		g_free(row->answer);
		row->answer = g_strdup(txt);
		cJSON_free(txt);
		cJSON_Delete(a);
	}
	if (code == 0 || code == 22) {
		g_free(row->state);
		row->state = g_strdup("ok");
		return SG_STEP_DONE;
	}
	row->error = g_strdup_printf("code %ld: %s", code, text);
	return CODE_STOPS(code) ? SG_STEP_STOP : SG_STEP_DONE;
}

const sg_batch_kind sg_batch_rental = {
	.name = "rental",
	.columns = rental_columns,
	.ncolumns = G_N_ELEMENTS(rental_columns),
	.result_columns = rental_results,
	.sequence = "ra",
	.open = rental_open,
	.close = rental_close,
	.validate = rental_validate,
	.next = rental_next,
	.answer = rental_answer,
	.login = rental_login,
	.renew = rental_renew,
	.renewed = rental_renewed,
};
