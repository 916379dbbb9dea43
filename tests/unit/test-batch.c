/* test-batch.c: the batch kinds' row checks (VIN, frame number, part price, rental contract),
 * the price and rental answer parsers and the engine's retry timing. */
#include <math.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "../../src/batch.h"
#include "tap.h"

char *sg_batch_frame_normalise(const char *in);

/* Runs a kind's validator on one row; returns the reason (or NULL) and the normalised values. */
static char *check_row(const sg_batch_kind *k, const char *const *in, char ***out,
		       const char **warning)
{
	char **vals = g_new0(char *, k->ncolumns + 1);
	char *why;

	for (size_t i = 0; i < k->ncolumns; i++)
		vals[i] = g_strdup(in[i] ? in[i] : "");
	*warning = NULL;
	why = k->validate(vals, warning);
	*out = vals;
	return why;
}

static void test_vin(void)
{
	static const struct {
		const char *vin, *type, *brand, *lang;
		const char *want_vin, *want_brand, *want_lang; /* NULL want_vin: invalid */
		bool warn;
		const char *reason_part;
	} t[] = {
		{ "WBA5R1C53LA123456", "check_data_bmw_full", "BMW", "ru", "WBA5R1C53LA123456", "BMW",
		  "Русский", false, NULL },
		{ "WBS8M9C5XJA123456", "check_data_bmw_full", "bmw", "Английский", "WBS8M9C5XJA123456",
		  "BMW", "Английский", false, NULL },
		{ "X4XJW1105LK123456", "check_data_bmw_full", "Mini", "de", "X4XJW1105LK123456",
		  "Mini", "Немецкий", false, NULL },
		{ "W1KZF8DB1MA123456", "check_data_mercedes_eva", "Mercedes", "en",
		  "W1KZF8DB1MA123456", "Mercedes-Benz", "Английский", false, NULL },
		{ "WDD2130421A654321", "check_data_multibr_zapros", "MB", "ru", "WDD2130421A654321",
		  "Mercedes-Benz", "Русский", true, NULL },
		{ "WDD2130421A654321", "check_nomer_dws", "Mercedes-Benz", "en", "WDD2130421A654321",
		  "Mercedes", "Английский", true, NULL },
		{ "WVWZZZ1KZAW123456", "check_elsa_pro_full", "VW", "pl", "WVWZZZ1KZAW123456",
		  "Volkswagen", "Польский", true, NULL },
		{ "XW8ZZZ61ZJG012345", "elsa_pro_full", "Фольксваген", "ro", "XW8ZZZ61ZJG012345",
		  "Volkswagen", "Румынский", true, NULL },
		{ "3VW2B7AJ8HM123456", "check_erwin_full", "Volkswagen", "EN", "3VW2B7AJ8HM123456",
		  "Volkswagen", "Английский", false, NULL },
		{ "WAUDNAF42KA123456", "check_etka_full", "audi", "ru", "WAUDNAF42KA123456", "Audi",
		  "Русский", false, NULL },
		{ "TMBJJ7NE9J0123456", "check_elsa_pro_full", "Škoda", "fr", "TMBJJ7NE9J0123456",
		  "SKODA", "Французский", false, NULL },
		{ "WP0AB2A92JS123456", "check_etka_full", "Porsche", "en", "WP0AB2A92JS123456",
		  "Porsche", "Английский", false, NULL },
		{ "JTDKN3DU9E0123456", "check_data_multibr_zapros", "Toyota", "ru", "JTDKN3DU9E0123456",
		  "Toyota", "Русский", false, NULL },
		{ "Z94C251A4JR123456", "check_data_multibr_zapros", "Kia", "ru", "Z94C251A4JR123456",
		  "KIA", "Русский", false, NULL },
		{ "YV1LZ56D3Y2123456", "check_nomer_dws", "Volvo", "en", "YV1LZ56D3Y2123456", "Volvo",
		  "Английский", false, NULL },
		{ "SALGA2EV6HA123456", "check_CarVertical", "", "de", "SALGA2EV6HA123456", "",
		  "Немецкий", false, NULL },
		{ "XTA210744C1234567", "check_CarVertical", "Lada", "ru", "XTA210744C1234567", "Lada",
		  "Русский", false, NULL },
		/* Cyrillic look-alikes, lower case, blanks. */
		{ "wва5r1с53lа123456", "check_data_bmw_full", "BMW", "ru", "WBA5R1C53LA123456", "BMW",
		  "Русский", false, NULL },
		{ " ХТА210744С1234567 ", "check_CarVertical", "", "en", "XTA210744C1234567", "",
		  "Английский", false, NULL },
		/* Invalid rows. */
		{ "WBA5R1C5OLA123456", "check_data_bmw_full", "BMW", "ru", NULL, NULL, NULL, false,
		  "I, O or Q" },
		{ "WBA5R1C5ОLA123456", "check_data_bmw_full", "BMW", "ru", NULL, NULL, NULL, false,
		  "I, O or Q" },
		{ "WBA5R1C53LA12345", "check_data_bmw_full", "BMW", "ru", NULL, NULL, NULL, false,
		  "16 characters" },
		{ "", "check_data_bmw_full", "BMW", "ru", NULL, NULL, NULL, false, "empty" },
		{ "WBA5R1C53LA1234#6", "check_data_bmw_full", "BMW", "ru", NULL, NULL, NULL, false,
		  "only Latin" },
		{ "WBA5R1C53LA123456", "check_data_bmw_full", "Audi", "ru", NULL, NULL, NULL, false,
		  "not taken by check_data_bmw_full" },
		{ "WBA5R1C53LA123456", "check_bmw", "BMW", "ru", NULL, NULL, NULL, false,
		  "not a check type" },
		{ "WVWZZZ1KZAW123456", "check_erwin_full", "VW", "ru", NULL, NULL, NULL, false,
		  "not offered by check_erwin_full" },
		{ "JTDKN3DU9E0123456", "check_data_multibr_zapros", "Toyota", "de", NULL, NULL, NULL,
		  false, "not offered" },
		{ "JTDKN3DU9E0123456", "check_data_multibr_zapros", "Toyota", "klingon", NULL, NULL,
		  NULL, false, "not a report language" },
		{ "WVWZZZ1KZAW123456", "check_elsa_pro_full", "", "ru", NULL, NULL, NULL, false,
		  "brand: empty" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		const char *in[7] = { t[i].vin, t[i].type, t[i].brand, t[i].lang };
		char **vals;
		const char *warning;
		char *why = check_row(&sg_batch_vin, in, &vals, &warning);

		if (t[i].want_vin) {
			IS(why, NULL, "vin %s/%s valid", t[i].vin, t[i].type);
			IS(vals[0], t[i].want_vin, "vin %s normalised", t[i].vin);
			IS(vals[2], t[i].want_brand, "vin %s brand '%s'", t[i].vin, t[i].brand);
			IS(vals[3], t[i].want_lang, "vin %s language '%s'", t[i].vin, t[i].lang);
			OK((warning != NULL) == t[i].warn, "vin %s check digit warning %d", t[i].vin,
			   t[i].warn);
		} else {
			OK(why && strstr(why, t[i].reason_part), "vin '%s'/%s/%s/%s invalid: %s",
			   t[i].vin, t[i].type, t[i].brand, t[i].lang, why ? why : "(valid)");
		}
		g_free(why);
		g_strfreev(vals);
	}
	/* The optional columns. */
	{
		const char *in[7] = { "WBA5R1C53LA123456", "check_data_bmw_full", "BMW", "ru",
				      "12x", "", "" };
		char **vals;
		const char *w;
		char *why = check_row(&sg_batch_vin, in, &vals, &w);
		OK(why && strstr(why, "telegram_id"), "telegram_id must be a number");
		g_free(why);
		g_strfreev(vals);
	}
	{
		const char *in[7] = { "WBA5R1C53LA123456", "check_data_bmw_full", "BMW", "ru",
				      "123", "a@b.example", "not-an-address" };
		char **vals;
		const char *w;
		char *why = check_row(&sg_batch_vin, in, &vals, &w);
		OK(why && strstr(why, "your_email"), "your_email must be an address");
		g_free(why);
		g_strfreev(vals);
	}
}

static void test_frame(void)
{
	static const struct {
		const char *in, *want; /* want NULL: not a frame */
	} t[] = {
		{ "GX100-6012345", "GX100-6012345" },   { "JZX110-0012345", "JZX110-0012345" },
		{ "NZE141-9012345", "NZE141-9012345" }, { "ACV30-0123456", "ACV30-0123456" },
		{ "UZJ100-0123456", "UZJ100-0123456" }, { "NHW20-3123456", "NHW20-3123456" },
		{ "BNR34-000567", "BNR34-000567" },     { "HR34-012345", "HR34-012345" },
		{ "NT31-123456", "NT31-123456" },       { "C11-123456", "C11-123456" },
		{ "GD1-1234567", "GD1-1234567" },       { "RB1-1123456", "RB1-1123456" },
		{ "GE6-1234567", "GE6-1234567" },       { "FD3S-123456", "FD3S-123456" },
		{ "BK5P-123456", "BK5P-123456" },       { "DY3W-123456", "DY3W-123456" },
		{ "GDB-012345", "GDB-012345" },         { "SG5-012345", "SG5-012345" },
		{ "CT9A-0401234", "CT9A-0401234" },     { "V75W-0123456", "V75W-0123456" },
		{ "JB23W-123456", "JB23W-123456" },
		/* As users type them. */
		{ "JZS1410055903", "JZS141-0055903" },  { "jzs141-0055903", "JZS141-0055903" },
		{ "GX100 6012345", "GX100-6012345" },   { "GX100–6012345", "GX100-6012345" },
		{ "GX100 — 6012345", "GX100-6012345" }, { " nze141-9012345 ", "NZE141-9012345" },
		{ "NZЕ141-9О12345", NULL }, { "NZЕ141-9012345", "NZE141-9012345" }, { "DBA-NZE141-9012345", "NZE141-9012345" },
		{ "DBA-NZE1419012345", "NZE141-9012345" }, { "CBA-GDB-012345", "GDB-012345" },
		{ "GF-GDB-012345", "GDB-012345" },      { "GDB012345", "GDB-012345" },
		{ "GX 100 6012345", "GX100-6012345" },
		/* Not frames. */
		{ "ASDASDA", NULL },                    { "BC14.1243323", NULL },
		{ "WBA5R1C53LA123456", NULL },          { "%BC12-131323", NULL },
		{ "SV30-BTPNK", NULL },                 { "DBA-NZE141", NULL },
		/* Invalid UTF-8 (found by fuzz-batch: the normaliser stepped past the end). */
		{ "Q.`\xfd", NULL },                   { "GX100-60\xc3", NULL },
		{ "1GX100-6012345", NULL },             { "GX100-60123", NULL },
		{ "GX100-601234567", NULL },            { "ABCDEFG-123456", NULL },
		{ "", NULL },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		char *got = sg_batch_frame_normalise(t[i].in);
		IS(got, t[i].want, "frame '%s'", t[i].in);
		g_free(got);
	}
	{
		const char *in[1] = { "WBA5R1C53LA123456" };
		char **vals;
		const char *w;
		char *why = check_row(&sg_batch_frame, in, &vals, &w);
		OK(why && strstr(why, "is a VIN"), "a VIN in the frame column is named as such");
		g_free(why);
		g_strfreev(vals);
	}
}

/* A rental row from "name=value|name=value…": the validator's reason, and *val the value of
 * column col after validation. */
static char *rental_row(const char *spec, const char *col, char **val)
{
	const sg_batch_kind *k = &sg_batch_rental;
	char **vals = g_new0(char *, k->ncolumns + 1);
	g_auto(GStrv) pairs = g_strsplit(spec, "|", -1);
	const char *warning = NULL;
	char *why;

	for (size_t i = 0; i < k->ncolumns; i++)
		vals[i] = g_strdup("");
	for (char **p = pairs; *p; p++) {
		char *eq = strchr(*p, '=');
		for (size_t i = 0; eq && i < k->ncolumns; i++)
			if (strncmp(k->columns[i].name, *p, (size_t)(eq - *p)) == 0 &&
			    k->columns[i].name[eq - *p] == 0) {
				g_free(vals[i]);
				vals[i] = g_strdup(eq + 1);
			}
	}
	why = k->validate(vals, &warning);
	for (size_t i = 0; i < k->ncolumns; i++)
		if (strcmp(k->columns[i].name, col) == 0)
			*val = g_strdup(vals[i]);
	g_strfreev(vals);
	return why;
}

static void test_rental(void)
{
#define START "cmd=start|mva=111|ra=67890|plate_number=ABC123|driver_name=John|driver_phone=1|" \
	      "te_expected=1644981600|start_address=Moscow|"
	static const struct {
		const char *row;
		const char *reason; /* NULL: valid */
		const char *ts;     /* ts_expected after validation, or NULL */
	} t[] = {
		{ START "ts_expected=1644927600", NULL, "1644927600" },
		{ START "ts_expected=2022-02-15 15:20", NULL, "1644927600" },    /* Europe/Moscow */
		{ START "ts_expected=15.02.2022 15:20:00", NULL, "1644927600" },
		{ START "ts_expected=2022-02-15T12:20:00Z", NULL, "1644927600" },
		{ START "ts_expected=2022-02-15T14:20:00+02:00", NULL, "1644927600" },
		{ START "ts_expected=2022-02-15 13:20|time_zone=Europe/London", NULL, "1644931200" },
		{ START "ts_expected=2022-02-30 10:00", "is not a Unix time", NULL },
		{ START "ts_expected=tomorrow", "is not a Unix time", NULL },
		{ START "ts_expected=1644927600|time_zone=Mars/Base", "not a time zone", NULL },
		{ START "ts_expected=1644990000", "is before ts_expected", NULL },
		{ START "ts_expected=1644927600|driver_sex=Ж", NULL, NULL },
		{ START "ts_expected=1644927600|driver_sex=x", "driver_sex: 'x' is not m or f", NULL },
		{ START "ts_expected=1644927600|mileage_limit=12.5", "mileage_limit: '12.5' is not a whole", NULL },
		{ START "ts_expected=1644927600|mva=", "mva: empty", NULL },
		{ "cmd=START|mva=1|ra=2|plate_number=A|driver_name=B|driver_phone=C|ts_expected=1|te_expected=2|start_lat=55,75|start_lon=37.6", NULL, "1" },
		{ "cmd=start|mva=1|ra=2|plate_number=A|driver_name=B|driver_phone=C|ts_expected=1|te_expected=2|start_lat=55.75", "start_lat without start_lon", NULL },
		{ "cmd=start|mva=1|ra=2|plate_number=A|driver_name=B|driver_phone=C|ts_expected=1|te_expected=2|start_lat=95|start_lon=1", "is not a latitude", NULL },
		{ "cmd=start|mva=1|ra=2|plate_number=A|driver_name=B|driver_phone=C|ts_expected=1|te_expected=2", "start location: needs", NULL },
		{ "cmd=stop|ra=67890|end_address=Ilino 2c", NULL, NULL },
		{ "cmd=stop|ra=067890|end_address=0101", NULL, NULL },
		{ "cmd=стоп|ra=67890|end_lat=1|end_lon=2", NULL, NULL },
		{ "cmd=stop|ra=67890", "end location: needs", NULL },
		{ "cmd=update|ra=67890|mileage_limit=2000", NULL, NULL },
		{ START "ts_expected=0001644927600", NULL, "1644927600" },
		{ "cmd=update|ra=67890", "nothing to update", NULL },
		{ "cmd=update|ra=6789x|mileage_limit=1", "ra: '6789x' is not a whole number", NULL },
		{ "cmd=begin|ra=1", "cmd: 'begin' is not start, update or stop", NULL },
		{ "cmd=|ra=1", "cmd: empty", NULL },
		{ "cmd=stop|ra=|end_address=x", "ra: empty", NULL },
	};
#undef START
	g_autoptr(sg_config) cfg = sg_config_defaults();
	sg_batch_conn conn = { 0 };

	cfg->rental.url = g_strdup("https://pilot.example/backend/app/contracts.php");
	cfg->rental.login = g_strdup("admin");
	cfg->rental.password = g_strdup("secret");
	cfg->rental.time_zone = g_strdup("Europe/Moscow");
	OK(sg_batch_rental.open(cfg, &conn, NULL) == SG_OK, "rental: open with [rental] time_zone");
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		g_autofree char *ts = NULL;
		g_autofree char *why = rental_row(t[i].row, "ts_expected", &ts);
		if (t[i].reason == NULL)
			OK(why == NULL, "rental row %zu valid (%s)", i, why ? why : "");
		else
			OK(why && strstr(why, t[i].reason), "rental row %zu: %s (want %s)", i,
			   why ? why : "valid", t[i].reason);
		if (t[i].ts)
			IS(ts, t[i].ts, "rental row %zu: ts_expected in Unix seconds", i);
	}
	{
		g_autofree char *ra = NULL, *addr = NULL;
		g_autofree char *w1 = rental_row("cmd=stop|ra=067890|end_address=0101", "ra", &ra);
		g_autofree char *w2 = rental_row("cmd=stop|ra=067890|end_address=0101", "end_address",
						 &addr);
		IS(ra, "67890", "rental: a number loses its leading zeros (one ra, valid JSON)");
		IS(addr, "0101", "rental: an address keeps them");
	}
	{
		/* A degree goes into the request as written here: the number, as JSON spells it. */
		static const struct {
			const char *in, *out; /* NULL out: invalid */
		} d[] = {
			{ "55,75", "55.75" }, { "+55.5", "55.5" }, { "55.", "55" }, { "055.5", "55.5" },
			{ "-0.5", "-0.5" },   { "0x10", NULL },    { "1e2", NULL }, { "55.5.5", NULL },
		};
		for (size_t i = 0; i < G_N_ELEMENTS(d); i++) {
			g_autofree char *row = g_strdup_printf("cmd=stop|ra=1|end_lat=%s|end_lon=37",
							       d[i].in);
			g_autofree char *lat = NULL;
			g_autofree char *why = rental_row(row, "end_lat", &lat);
			if (d[i].out)
				IS(lat, d[i].out, "rental: end_lat '%s' is sent as %s", d[i].in,
				   d[i].out);
			else
				OK(why && strstr(why, "is not a latitude"), "rental: end_lat '%s' is "
				   "invalid (%s)", d[i].in, why ? why : "valid");
		}
	}
	{
		/* A 2xx the service sent after a command went out, unreadable: it may have acted. */
		sg_batch_row row = { .line = 2, .state = g_strdup("sent") };
		OK(sg_batch_rental.answer(conn.state, &row, 200, "<html>ok</html>", 15) ==
			   SG_STEP_UNKNOWN,
		   "rental: an unreadable 200 after sending is unknown");
		g_clear_pointer(&row.error, g_free);
		OK(sg_batch_rental.answer(conn.state, &row, 400, "<html>no</html>", 15) ==
			   SG_STEP_DONE,
		   "rental: an unreadable 400 fails the row");
		g_free(row.error);
		g_free(row.state);
		g_free(row.answer);
	}
	sg_batch_rental.close(conn.state);

	static const struct {
		const char *body;
		long code;
		const char *odo, *message; /* NULL odo: SG_EDATA */
	} a[] = {
		{ "{\"code\": 0, \"odo\": \"1233\", \"message\": \"Success\"}", 0, "1233", "Success" },
		{ "{\"code\": \"22\", \"odo\": 1208607}", 22, "1208607", "" },
		{ "{\"code\": 3, \"odo\": 12.5, \"message\": \"  Договор  \"}", 3, "12.5", "Договор" },
		{ "{\"code\": 500}", 500, "", "" },
		{ "{\"odo\": \"1\"}", -1, NULL, NULL },
		{ "{\"code\": -1}", -1, NULL, NULL },
		{ "{\"code\": 1.5}", -1, NULL, NULL },
		{ "{\"code\": \"x\"}", -1, NULL, NULL },
		{ "[0]", -1, NULL, NULL },
		{ "<html>502</html>", -1, NULL, NULL },
		{ "", -1, NULL, NULL },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(a); i++) {
		long code;
		g_autofree char *odo = NULL, *msg = NULL, *e = NULL;
		sg_status st = sg_batch_rental_parse(a[i].body, strlen(a[i].body), &code, &odo, &msg,
						     &e);
		if (a[i].odo == NULL) {
			OK(st == SG_EDATA && e, "rental answer %zu refused: %s", i, e ? e : "");
			continue;
		}
		OK(st == SG_OK && code == a[i].code, "rental answer %zu: code %ld", i, code);
		IS(odo, a[i].odo, "rental answer %zu: odo", i);
		IS(msg, a[i].message, "rental answer %zu: message", i);
	}
	OK(sg_batch_kind_find("rental") == &sg_batch_rental, "kind lookup: rental");
}

static void test_retry_after(void)
{
	const gint64 now = 1784800000; /* 2026-07-23T09:46:40Z */

	OK(sg_batch_retry_after("120", now) == 120, "Retry-After: 120");
	OK(sg_batch_retry_after(" 0 ", now) == 0, "Retry-After: 0");
	OK(sg_batch_retry_after("1.5", now) == 1.5, "Retry-After: 1.5 (lenient)");
	OK(sg_batch_retry_after(NULL, now) == -1, "no Retry-After");
	OK(sg_batch_retry_after("soon", now) == -1, "Retry-After: soon is malformed");
	OK(sg_batch_retry_after("-5", now) == -1, "Retry-After: -5 is malformed");
	OK(sg_batch_retry_after("12abc", now) == -1, "Retry-After: 12abc is malformed");
	OK(sg_batch_retry_after("Thu, 23 Jul 2026 09:47:10 GMT", now) == 30,
	   "Retry-After as an IMF-fixdate");
	OK(sg_batch_retry_after("Thursday, 23-Jul-26 09:47:40 GMT", now) == 60,
	   "Retry-After as an RFC 850 date");
	OK(sg_batch_retry_after("Thu Jul 23 09:46:50 2026", now) == 10,
	   "Retry-After as an asctime date");
	OK(sg_batch_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0,
	   "Retry-After in the past is 0");
}

static void test_backoff(void)
{
	OK(sg_batch_backoff(1, 0.5, 30, 0) == 0, "full jitter reaches 0");
	OK(fabs(sg_batch_backoff(1, 0.5, 30, 0.999999) - 0.5) < 1e-3, "try 1: up to base");
	OK(fabs(sg_batch_backoff(3, 0.5, 30, 0.999999) - 2.0) < 1e-3, "try 3: up to 4×base");
	OK(sg_batch_backoff(20, 0.5, 30, 0.999999) <= 30, "capped");
	OK(sg_batch_backoff(1000, 0.5, 30, 0.5) == 15, "no overflow at try 1000");
	OK(sg_batch_backoff(0, 0.5, 30, 1.5) < 0.5, "bad inputs stay in bounds");
	{
		/* Spread: 1000 draws at try 4 fill [0, 4) with no clustering at the top. */
		int below_half = 0;
		double mx = 0;
		for (int i = 0; i < 1000; i++) {
			double d = sg_batch_backoff(4, 0.5, 30, g_random_double());
			below_half += d < 2;
			mx = MAX(mx, d);
		}
		OK(below_half > 400 && below_half < 600 && mx <= 4, "jitter is spread (%d < 2 s)",
		   below_half);
	}
}

static void test_misc(void)
{
	OK(sg_batch_parse_seconds("250ms") == 0.25, "250ms");
	OK(sg_batch_parse_seconds("30m") == 1800, "30m");
	OK(sg_batch_parse_seconds("2") == 2, "2");
	OK(sg_batch_parse_seconds("1.5s") == 1.5, "1.5s");
	OK(sg_batch_parse_seconds("x") < 0, "x is malformed");
	OK(sg_batch_parse_seconds("5y") < 0, "5y is malformed");
	{
		char *u = sg_batch_redact_url("https://h.example/r.ashx?key=SECRET&mode=setqueue");
		IS(u, "https://h.example/r.ashx", "redacted URL has no query");
		g_free(u);
	}
	{
		char *s = sg_batch_latin_upper("аВс ЕКМ нор тху 12");
		IS(s, "ABCEKMHOPTXY12", "Cyrillic look-alikes to Latin");
		g_free(s);
	}
	IS(sg_row_status_name(SG_ROW_UNKNOWN), "unknown", "status names");
	{
		sg_batch_summary s = { .rows = 10, .ok = 10 };
		OK(sg_batch_exit_status(&s) == SG_OK, "all ok → 0");
		s.ok = 9, s.invalid = 1;
		OK(sg_batch_exit_status(&s) == SG_EDATA, "invalid → 65");
		s.pending = 1, s.ok = 8;
		OK(sg_batch_exit_status(&s) == SG_ETEMP, "pending → 75");
		char *line = sg_batch_summary_line("vin", &s);
		OK(g_str_has_prefix(line, "batch vin: 10 rows: 8 ok, 1 invalid, 0 failed, "
					     "1 pending, 0 unknown"), "summary line: %s", line);
		g_free(line);
	}
	OK(sg_batch_kind_find("vin") == &sg_batch_vin && sg_batch_kind_find("x") == NULL,
	   "kind lookup");
}

/* The seed's get_price_info answer for a 1C program, as the service sends it (windows-1251). */
static const char seed_info_1c[] =
	"<?xml version=\"1.0\" encoding=\"windows-1251\"?>\n<jcanswer>\n<message>\n"
	"<result >SUCCESS</result>\n<code >N0407_BILLING_SUCCESS</code>\n<action >detail</action>\n"
	"<group id=\"billing\" area=\"none\"><![CDATA[Обработка данных биллинга]]></group>\n"
	"<datetime >2013-07-11 06:38:13</datetime>\n"
	"<text ><![CDATA[Данные о возможности проведения операции получены]]></text>\n"
	"<techinfo >\n<summary>\n<get_price_info>\n<free>\n<count>0</count>\n<atom_cost>0</atom_cost>\n"
	"<cost>0</cost>\n</free>\n<cash>\n<count>1</count>\n<atom_cost>1</atom_cost>\n<cost>1</cost>\n"
	"</cash>\n<active>1</active>\n</get_price_info>\n</summary>\n<result>1</result>\n"
	"<posible>yes</posible>\n<cost>1</cost>\n<currency_id>4</currency_id>\n</techinfo>\n</message>\n"
	"<message>\n<result >SUCCESS</result>\n<code >N0407_BILLING_SUCCESS</code>\n"
	"<action >account</action>\n<techinfo>\n<money>395143</money>\n<currency_id>4</currency_id>\n"
	"<added_count>0</added_count>\n</techinfo>\n</message>\n<message>\n"
	"<result >SUCCESS</result>\n<code >N0080_SERVICE_SUCCESS</code>\n"
	"<action >get_price_info</action>\n"
	"<text ><![CDATA[Запрос на среднюю цену успешно обработан]]></text>\n"
	"<techinfo>\n<has_value>1</has_value>\n<request_id>41</request_id>\n"
	"<notice_count>119</notice_count>\n</techinfo>\n<debuginfo></debuginfo>\n</message>\n"
	"</jcanswer>\n";

/* Parses text (UTF-8 here) as the service would send it: in charset, declared as decl. */
static sg_status parse_as(const char *text, const char *charset, sg_price_answer *a, char **err)
{
	g_autofree char *bytes = g_convert(text, -1, charset, "UTF-8", NULL, NULL, NULL);

	return sg_price_answer_parse(bytes, strlen(bytes), a, err);
}

/* A price row of 14 empty values, as the engine hands it to the validator (g_strfreev). */
static char **price_row(void)
{
	char **v = g_new0(char *, sg_batch_price.ncolumns + 1);

	for (size_t c = 0; c < sg_batch_price.ncolumns; c++)
		v[c] = g_strdup("");
	return v;
}

static void test_price(void)
{
	static const struct {
		const char *fr, *rl, *no, *name, *oem, *place;
		const char *want; /* the error's start, or "F_R R_L N_O" normalised */
	} t[] = {
		{ "перед", "лев", "б/у", "фара", "", "", "F L O" },
		{ "Задний", "Правая", "Новая", "", "12345", "77", "R R N" },
		{ "F", "r", "o", "efi", "", "", "F R O" },
		{ " front ", "Left", "б.у.", "x", "", "", "F L O" },
		{ "", "", "", "x", "", "", "  " },
		{ "вбок", "", "", "x", "", "", "F_R: 'вбок' is not F (перед) or R (зад)" },
		{ "", "лево-право", "", "x", "", "", "R_L: 'лево-право' is not L (лев) or R (прав)" },
		{ "", "", "", "", "", "", "name, oem: give at least one" },
		{ "", "", "", "x", "", "Москва", "place: 'Москва' is not a city code" },
		{ "", "", "", "фара ✓", "", "", "name: 'фара ✓' has characters windows-1251" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
		char **v = price_row();
		const char *warning = NULL;
		g_free(v[7]), v[7] = g_strdup(t[i].fr);
		g_free(v[9]), v[9] = g_strdup(t[i].rl);
		g_free(v[10]), v[10] = g_strdup(t[i].no);
		g_free(v[11]), v[11] = g_strdup(t[i].name);
		g_free(v[12]), v[12] = g_strdup(t[i].oem);
		g_free(v[13]), v[13] = g_strdup(t[i].place);
		g_autofree char *why = sg_batch_price.validate(v, &warning);
		g_autofree char *got = why ? g_strndup(why, strlen(t[i].want))
					   : g_strdup_printf("%s %s %s", v[7], v[9], v[10]);
		IS(got, t[i].want, "price row %zu: %s", i, why ? why : "valid");
		g_strfreev(v);
	}
	{
		char **v = price_row();
		g_free(v[11]), v[11] = g_strnfill(256, 'x');
		g_autofree char *why = sg_batch_price.validate(v, NULL);
		OK(why && strstr(why, "name: longer than 255"), "a value of 256 characters: %s", why);
		g_strfreev(v);
	}

	sg_price_answer a;
	g_autofree char *err = NULL;
	NUM(parse_as(seed_info_1c, "WINDOWS-1251", &a, &err), SG_OK, "the seed's 1C answer parses");
	IS(a.result, "SUCCESS", "its service result");
	IS(a.code, "N0080_SERVICE_SUCCESS", "the service message, not the billing one");
	IS(a.text, "Запрос на среднюю цену успешно обработан", "CDATA text, windows-1251 decoded");
	IS(a.posible, "yes", "billing posible");
	IS(a.cost, "1", "billing cost (not the summary's)");
	IS(a.has_value, "1", "has_value");
	IS(a.request_id, "41", "request_id");
	IS(a.notice_count, "119", "notice_count");
	sg_price_answer_clear(&a);

	/* The JcTrade form: techinfo is JSON in CDATA; details an object or pairs. */
	static const char jc[] =
		"<?xml version=\"1.0\" encoding=\"windows-1251\"?><jcanswer><message>"
		"<result >SUCCESS</result><code >N0081_SERVICE_SUCCESS</code><action >get_price</action>"
		"<text ><![CDATA[Средняя цена получена]]></text><techinfo ><![CDATA[{\"notice_count\":28,"
		"\"price_min\":100,\"price_max\":5670,\"price_average\":3293.4,\"details\":[[0,14],"
		"[100,1],[5670,3]]}]]></techinfo></message></jcanswer>";
	NUM(parse_as(jc, "WINDOWS-1251", &a, &err), SG_OK, "a JcTrade get_price answer parses");
	IS(a.price_min, "100", "price_min from JSON");
	IS(a.price_average, "3293.4", "price_average as the service wrote it");
	g_autofree char *d = a.details ? cJSON_PrintUnformatted(a.details) : NULL;
	IS(d, "{\"0\":14,\"100\":1,\"5670\":3}", "details pairs as price → count");
	sg_price_answer_clear(&a);

	static const char items[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?><jcanswer><message><result >SUCCESS</result>"
		"<action >get_price</action><techinfo ><price_min>100</price_min><details>"
		"<item num=\"0\">14</item><item num=\"4850\">1</item></details></techinfo></message>"
		"</jcanswer>";
	NUM(sg_price_answer_parse(items, strlen(items), &a, &err), SG_OK, "a 1C get_price answer");
	g_free(d);
	d = a.details ? cJSON_PrintUnformatted(a.details) : NULL;
	IS(d, "{\"0\":14,\"4850\":1}", "<item num> details as price → count");
	sg_price_answer_clear(&a);

	static const char refused[] =
		"<?xml version=\"1.0\" encoding=\"windows-1251\"?><jcanswer><message><result >ERROR"
		"</result><action >detail</action><text ><![CDATA[Недостаточно средств]]></text>"
		"<techinfo ><![CDATA[{\"result\":0,\"posible\":\"not_enough_money\",\"cost\":1}]]>"
		"</techinfo></message></jcanswer>";
	NUM(parse_as(refused, "WINDOWS-1251", &a, &err), SG_OK, "a billing refusal alone parses");
	IS(a.posible, "not_enough_money", "its posible");
	IS(a.billing_text, "Недостаточно средств", "its text");
	IS(a.result, NULL, "no service message");
	sg_price_answer_clear(&a);

	static const struct { const char *body, *want; } bad[] = {
		{ "<html><body>502</body></html>", "not a jcanswer document (root <html>)" },
		{ "<jcanswer><message>", "not well-formed XML" },
		{ "{\"error\":true}", "not well-formed XML" },
		{ "<jcanswer></jcanswer>", "the answer has no <message>" },
		{ "", "empty answer" },
		/* windows-1251 bytes under a UTF-8 declaration: the charset is wrong */
		{ "<?xml version=\"1.0\" encoding=\"UTF-8\"?><jcanswer><message><text>\xd4\xe0\xf0\xe0"
		  "</text></message></jcanswer>", "not well-formed XML" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_clear_pointer(&err, g_free);
		NUM(sg_price_answer_parse(bad[i].body, strlen(bad[i].body), &a, &err), SG_EDATA,
		    "bad answer %zu refused", i);
		OK(err && g_str_has_prefix(err, bad[i].want) && !strchr(err, '\n'),
		   "bad answer %zu: %s", i, err);
	}
	/* An external entity is neither fetched nor expanded. */
	static const char xxe[] =
		"<?xml version=\"1.0\"?><!DOCTYPE j [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
		"<jcanswer><message><action >get_price</action><result >&x;</result></message>"
		"</jcanswer>";
	NUM(sg_price_answer_parse(xxe, strlen(xxe), &a, &err), SG_OK, "an entity document parses");
	OK(a.result == NULL || strstr(a.result, "root:") == NULL, "and /etc/passwd is not read in");
	sg_price_answer_clear(&a);
}

int main(void)
{
	test_vin();
	test_frame();
	test_rental();
	test_price();
	test_retry_after();
	test_backoff();
	test_misc();
	return tap_done();
}
