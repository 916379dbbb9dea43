/* batch-price.c: batch kind `price`: the average price of a part, seed 002 (JcTrade / 1C:
 * get_price_info, free, then get_price, which charges, within the job's --max-cost). */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "batch.h"
#include "log.h"

/* The seed's parameter names, then the header names an analyst's list may use for them. */
static const char *const a_marka[] = { "марка", "марка авто", "марка автомобиля", "make", "brand",
				       NULL };
static const char *const a_model[] = { "модель", "модель авто", NULL };
static const char *const a_modeln[] = { "номер оптики", "оптика", "optics number", NULL };
static const char *const a_kuzovn[] = { "номер кузова", "кузов", "body number", "body", NULL };
static const char *const a_enginen[] = { "номер двигателя", "двигатель", "engine number",
					 "engine", NULL };
static const char *const a_prodcode[] = { "код производителя", "producer code",
					  "manufacturer code", NULL };
static const char *const a_producer[] = { "производитель", "manufacturer", NULL };
static const char *const a_fr[] = { "перед/зад", "перед-зад", "front/rear", "f/r", NULL };
static const char *const a_ud[] = { "верх/низ", "верх-низ", "up/down", "u/d", NULL };
static const char *const a_rl[] = { "лев/прав", "лево/право", "лев-прав", "left/right", "l/r",
				    NULL };
static const char *const a_no[] = { "новая/б/у", "новая/бу", "новый/б/у", "состояние",
				    "new/used", "condition", "n/o", NULL };
static const char *const a_name[] = { "название", "наименование", "запчасть", "деталь",
				      "part name", "part", NULL };
static const char *const a_oem[] = { "оем", "номер oem", "код oem", "oem number", "oem code",
				     NULL };
static const char *const a_place[] = { "город", "код города", "city", "place code", NULL };

enum { C_MARKA, C_MODEL, C_MODELN, C_KUZOVN, C_ENGINEN, C_PRODCODE, C_PRODUCER, C_FR, C_UD, C_RL,
       C_NO, C_NAME, C_OEM, C_PLACE, C_N };

static const sg_batch_column price_columns[] = {
	{ "marka", a_marka, false },	     { "model", a_model, false },
	{ "modelN", a_modeln, false },	     { "kuzovN", a_kuzovn, false },
	{ "engineN", a_enginen, false },     { "producer_code", a_prodcode, false },
	{ "producer", a_producer, false },   { "F_R", a_fr, false },
	{ "U_D", a_ud, false },		     { "R_L", a_rl, false },
	{ "N_O", a_no, false },		     { "name", a_name, false },
	{ "oem", a_oem, false },	     { "place", a_place, false },
};
G_STATIC_ASSERT(G_N_ELEMENTS(price_columns) == C_N);

static const char *const price_results[] = { "has_value", "notice_count", "cost", "price_min",
					     "price_max", "price_average", NULL };
static const char *const price_json[] = { "details", NULL };

/* The seed caps every parameter at 255 characters. */
#define PRICE_MAX_VALUE 255

/* ---- validation --------------------------------------------------------------------------- */

/* The words (case-folded, without blanks and dots) a side or a condition is written with. */
static const struct {
	int col;
	char letter;
	const char *const words[14];
} enum_words[] = {
	{ C_FR, 'F', { "f", "front", "п", "пер", "перед", "передний", "передняя", "переднее",
		       "спереди", NULL } },
	{ C_FR, 'R', { "r", "rear", "back", "з", "зад", "задний", "задняя", "заднее", "сзади",
		       NULL } },
	{ C_UD, 'U', { "u", "up", "upper", "top", "в", "верх", "верхний", "верхняя", "верхнее",
		       "сверху", NULL } },
	{ C_UD, 'D', { "d", "down", "lower", "bottom", "н", "низ", "нижний", "нижняя", "нижнее",
		       "снизу", NULL } },
	{ C_RL, 'L', { "l", "left", "л", "лев", "левый", "левая", "левое", "слева", NULL } },
	{ C_RL, 'R', { "r", "right", "п", "прав", "правый", "правая", "правое", "справа", NULL } },
	{ C_NO, 'N', { "n", "new", "н", "нов", "новый", "новая", "новое", NULL } },
	{ C_NO, 'O', { "o", "о", "old", "used", "б/у", "бу", "б/у/", "бывшая", "бывший", NULL } },
};

/* The seed's letter for a side or condition as written, or 0. */
static char enum_letter(int col, const char *v)
{
	g_autofree char *f = g_utf8_casefold(v, -1);
	GString *k = g_string_new(NULL);
	char out = 0;

	for (const char *p = f; *p; p++)
		if (*p != ' ' && *p != '.' && *p != '\t')
			g_string_append_c(k, *p);
	for (size_t i = 0; i < G_N_ELEMENTS(enum_words) && !out; i++)
		if (enum_words[i].col == col)
			for (const char *const *w = enum_words[i].words; *w; w++)
				if (strcmp(k->str, *w) == 0) {
					out = enum_words[i].letter;
					break;
				}
	g_string_free(k, TRUE);
	return out;
}

static char *price_validate(char **vals, const char **warning)
{
	static const char *const hints[] = { [C_FR] = "F (перед) or R (зад)",
					     [C_UD] = "U (верх) or D (низ)",
					     [C_RL] = "L (лев) or R (прав)",
					     [C_NO] = "N (новая) or O (б/у)" };

	(void)warning;
	for (int c = 0; c < C_N; c++) {
		g_autofree char *cp = NULL;
		char *v = g_strstrip(vals[c]);

		if (!g_utf8_validate(v, -1, NULL))
			return g_strdup_printf("%s: not UTF-8 text", price_columns[c].name);
		if (g_utf8_strlen(v, -1) > PRICE_MAX_VALUE)
			return g_strdup_printf("%s: longer than %d characters (the service's limit)",
					       price_columns[c].name, PRICE_MAX_VALUE);
		/* The service speaks windows-1251: a value it cannot receive is refused here. */
		cp = g_convert(v, -1, "WINDOWS-1251", "UTF-8", NULL, NULL, NULL);
		if (cp == NULL)
			return g_strdup_printf("%s: '%s' has characters windows-1251 cannot carry",
					       price_columns[c].name, v);
		if (*v && (c == C_FR || c == C_UD || c == C_RL || c == C_NO)) {
			char l = enum_letter(c, v);
			if (l == 0)
				return g_strdup_printf("%s: '%s' is not %s", price_columns[c].name, v,
						       hints[c]);
			g_free(vals[c]);
			vals[c] = g_strdup_printf("%c", l);
		}
		if (c == C_PLACE && *v) {
			for (const char *p = v; *p; p++)
				if (!g_ascii_isdigit(*p))
					return g_strdup_printf("place: '%s' is not a city code (a number "
							       "from the service's parts_place list)",
							       v);
		}
	}
	if (*vals[C_NAME] == 0 && *vals[C_OEM] == 0)
		return g_strdup("name, oem: give at least one (the part's name or its OEM code)");
	return NULL;
}

/* ---- the answer --------------------------------------------------------------------------- */

void sg_price_answer_clear(sg_price_answer *a)
{
	g_free(a->result);
	g_free(a->code);
	g_free(a->text);
	g_free(a->posible);
	g_free(a->billing_code);
	g_free(a->billing_text);
	g_free(a->has_value);
	g_free(a->request_id);
	g_free(a->notice_count);
	g_free(a->cost);
	g_free(a->price_min);
	g_free(a->price_max);
	g_free(a->price_average);
	cJSON_Delete(a->details);
	memset(a, 0, sizeof(*a));
}

static bool is_elem(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && (name == NULL || strcmp((const char *)n->name, name) == 0);
}

static xmlNode *child(xmlNode *n, const char *name)
{
	for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
		if (is_elem(c, name))
			return c;
	return NULL;
}

/* The text of an element (CDATA included), trimmed; NULL when there is no element. */
static char *text_of(xmlNode *n)
{
	xmlChar *t;
	char *out;

	if (n == NULL)
		return NULL;
	t = xmlNodeGetContent(n);
	out = g_strstrip(g_strdup(t ? (const char *)t : ""));
	xmlFree(t);
	return out;
}

/* A value of techinfo as text: a string as it is, a number as the service wrote it. */
static char *json_text(const cJSON *v)
{
	if (cJSON_IsString(v))
		return g_strstrip(g_strdup(v->valuestring));
	if (cJSON_IsNumber(v)) {
		char buf[G_ASCII_DTOSTR_BUF_SIZE];
		if (fabs(v->valuedouble) < 1e15 && v->valuedouble == floor(v->valuedouble))
			return g_strdup_printf("%.0f", v->valuedouble);
		return g_strdup(g_ascii_formatd(buf, sizeof(buf), "%.15g", v->valuedouble));
	}
	return NULL;
}

static char *field(const cJSON *o, const char *key)
{
	return json_text(cJSON_GetObjectItemCaseSensitive(o, key));
}

/*
 * techinfo as one JSON tree, whichever form it came in: for 1C programs XML elements (an
 * element of elements is an object, a leaf its text, <item num="P">N</item> lists an object
 * P → N); for JcTrade programs JSON in CDATA, which is parsed where a leaf's text is JSON.
 */
static cJSON *xml_tree(xmlNode *n)
{
	bool elems = false, items = true;
	cJSON *o;

	for (xmlNode *c = n->children; c; c = c->next)
		if (is_elem(c, NULL)) {
			elems = true;
			if (!is_elem(c, "item") || !xmlHasProp(c, (const xmlChar *)"num"))
				items = false;
		}
	if (!elems) {
		g_autofree char *t = text_of(n);
		if (*t == '{' || *t == '[') {
			cJSON *j = cJSON_Parse(t);
			if (j)
				return j;
		}
		return cJSON_CreateString(t);
	}
	o = cJSON_CreateObject();
	for (xmlNode *c = n->children; c; c = c->next) {
		if (!is_elem(c, NULL))
			continue;
		if (items) {
			xmlChar *num = xmlGetProp(c, (const xmlChar *)"num");
			g_autofree char *cnt = text_of(c);
			if (!cJSON_GetObjectItemCaseSensitive(o, (const char *)num))
				cJSON_AddItemToObject(o, (const char *)num, cJSON_CreateString(cnt));
			xmlFree(num);
		} else if (!cJSON_GetObjectItemCaseSensitive(o, (const char *)c->name)) {
			cJSON_AddItemToObject(o, (const char *)c->name, xml_tree(c));
		}
	}
	return o;
}

/* A whole number of the service as text ("3293", 3293, "3293.0"), or NULL. */
static char *whole(const char *s)
{
	char *end;
	double v;

	if (s == NULL || *s == 0)
		return NULL;
	v = g_ascii_strtod(s, &end);
	if (*end || !isfinite(v) || v < 0 || v > 1e15)
		return NULL;
	return g_strdup_printf("%.0f", floor(v));
}

/* A non-negative amount as the service wrote it ("1", "9965.6"), or NULL. */
static char *decimal(const char *s)
{
	char *end;
	double v;

	if (s == NULL || *s == 0)
		return NULL;
	v = g_ascii_strtod(s, &end);
	return *end || !isfinite(v) || v < 0 || v > 1e12 ? NULL : g_strdup(s);
}

/* details as an object price → count (numbers): from an object, or from an array of
 * {num, count} objects or [num, count] pairs, as JcTrade may send it. NULL when neither. */
static cJSON *details_of(const cJSON *d)
{
	cJSON *out = cJSON_CreateObject();
	const cJSON *e;

	if (cJSON_IsObject(d)) {
		cJSON_ArrayForEach(e, d) {
			g_autofree char *n = json_text(e);
			g_autofree char *w = whole(n);
			if (w && e->string && !cJSON_GetObjectItemCaseSensitive(out, e->string))
				cJSON_AddNumberToObject(out, e->string, g_ascii_strtod(w, NULL));
		}
	} else if (cJSON_IsArray(d)) {
		cJSON_ArrayForEach(e, d) {
			const cJSON *p = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 0)
					: cJSON_GetObjectItemCaseSensitive(e, "num");
			const cJSON *c = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 1)
					: cJSON_GetObjectItemCaseSensitive(e, "count");
			g_autofree char *ps = json_text(p), *cs = json_text(c);
			g_autofree char *pw = whole(ps), *cw = whole(cs);
			if (pw && cw && !cJSON_GetObjectItemCaseSensitive(out, pw))
				cJSON_AddNumberToObject(out, pw, g_ascii_strtod(cw, NULL));
		}
	} else {
		cJSON_Delete(out);
		return NULL;
	}
	return out;
}

sg_status sg_price_answer_parse(const char *body, size_t len, sg_price_answer *a, char **err)
{
	xmlDoc *doc;
	xmlNode *root, *service = NULL, *billing = NULL;
	cJSON *ti = NULL;
	sg_status st = SG_OK;

	memset(a, 0, sizeof(*a));
	if (len == 0)
		return sg_fail(err, SG_EDATA, "empty answer");
	if (len > INT_MAX)
		return sg_fail(err, SG_EDATA, "answer too large");
	/* The declared encoding (windows-1251) is honoured; no network, no entity expansion. */
	doc = xmlReadMemory(body, (int)len, "answer.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL) {
		const xmlError *e = xmlGetLastError();
		g_autofree char *m = g_strstrip(g_strdup(e && e->message ? e->message : "?"));
		/* libxml2's message runs over lines; a CSV cell keeps to one. */
		g_strdelimit(m, "\r\n", ' ');
		return sg_fail(err, SG_EDATA, "not well-formed XML (line %d: %s)", e ? e->line : 0,
			       m);
	}
	root = xmlDocGetRootElement(doc);
	if (root == NULL || !is_elem(root, "jcanswer")) {
		st = sg_fail(err, SG_EDATA, "not a jcanswer document (root <%s>)",
			     root ? (const char *)root->name : "none");
		goto out;
	}
	/* The billing block (action detail), the account (account) and the service's own. */
	for (xmlNode *m = root->children; m; m = m->next) {
		g_autofree char *action = NULL;
		if (!is_elem(m, "message"))
			continue;
		action = text_of(child(m, "action"));
		if (action && strcmp(action, "detail") == 0)
			billing = billing ? billing : m;
		else if (action == NULL || strcmp(action, "account") != 0)
			service = m;
	}
	if (billing) {
		ti = xml_tree(child(billing, "techinfo") ? child(billing, "techinfo") : billing);
		a->posible = field(ti, "posible");
		a->cost = field(ti, "cost");
		a->billing_code = text_of(child(billing, "code"));
		a->billing_text = text_of(child(billing, "text"));
		cJSON_Delete(ti);
		ti = NULL;
	}
	if (service == NULL) {
		if (billing == NULL)
			st = sg_fail(err, SG_EDATA, "the answer has no <message>");
		goto out;
	}
	a->result = text_of(child(service, "result"));
	a->code = text_of(child(service, "code"));
	a->text = text_of(child(service, "text"));
	if (child(service, "techinfo")) {
		ti = xml_tree(child(service, "techinfo"));
		a->has_value = field(ti, "has_value");
		a->request_id = field(ti, "request_id");
		a->notice_count = field(ti, "notice_count");
		a->price_min = field(ti, "price_min");
		a->price_max = field(ti, "price_max");
		a->price_average = field(ti, "price_average");
		a->details = details_of(cJSON_GetObjectItemCaseSensitive(ti, "details"));
	}
out:
	cJSON_Delete(ti);
	xmlFreeDoc(doc);
	if (st != SG_OK)
		sg_price_answer_clear(a);
	return st;
}

/* ---- the connection and the calls --------------------------------------------------------- */

typedef struct {
	const char *url, *s_sn;
	double max_cost;
} price_state;

static sg_status price_open(const sg_config *cfg, sg_batch_conn *conn, char **err)
{
	price_state *s;

	if (cfg->price.url == NULL || *cfg->price.url == 0)
		return sg_fail(err, SG_ECONFIG, "[price] url is not set: the address the service's "
			       "get_price_info and get_price requests go to");
	if (cfg->price.s_sn == NULL || *cfg->price.s_sn == 0)
		return sg_fail(err, SG_ECONFIG, "[price] s_sn_file (or s_sn) is not set: the "
			       "program code (s_sn) of the price service");
	s = g_new0(price_state, 1);
	s->url = cfg->price.url;
	s->s_sn = cfg->price.s_sn;
	s->max_cost = conn->max_cost;
	conn->section = "price";
	conn->url = cfg->price.url;
	conn->tls = &cfg->price.tls;
	conn->state = s;
	return SG_OK;
}

static void price_close(void *state)
{
	g_free(state);
}

/* name=value, form-encoded in windows-1251 (validate made sure it converts). */
static void form_add(GString *g, const char *name, const char *val)
{
	g_autofree char *cp = g_convert(val, -1, "WINDOWS-1251", "UTF-8", NULL, NULL, NULL);
	char *e = curl_easy_escape(NULL, cp ? cp : "", 0);

	g_string_append_printf(g, "%s%s=%s", g->len ? "&" : "", name, e);
	curl_free(e);
}

/* The journalled answer of a row as an object (an empty one when there is none). */
static cJSON *row_answer(const sg_batch_row *row)
{
	cJSON *j = row->answer ? cJSON_Parse(row->answer) : NULL;

	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		j = cJSON_CreateObject();
	}
	return j;
}

static void set_row(sg_batch_row *row, const char *state, cJSON *answer)
{
	char *txt = cJSON_PrintUnformatted(answer);

	g_free(row->state);
	g_free(row->answer);
	row->state = g_strdup(state);
	row->answer = g_strdup(txt);
	cJSON_free(txt);
}

static bool price_next(void *state, sg_batch_row *row, sg_batch_call *call)
{
	price_state *s = state;
	GString *f = g_string_new(NULL);

	form_add(f, "s_sn", s->s_sn);
	if (row->state == NULL) {
		form_add(f, "action", "get_price_info");
		for (int c = 0; c < C_N; c++)
			if (*row->vals[c])
				form_add(f, price_columns[c].name, row->vals[c]);
		call->what = "get_price_info";
	} else if (strcmp(row->state, "info") == 0 || strcmp(row->state, "sent") == 0) {
		cJSON *a = row_answer(row);
		g_autofree char *rid = field(a, "request_id"), *cost = field(a, "cost");
		cJSON_Delete(a);
		if (rid == NULL || cost == NULL) {
			g_string_free(f, TRUE);
			return false;
		}
		form_add(f, "action", "get_price");
		form_add(f, "request_id", rid);
		call->what = "get_price";
		call->charged = true;
		call->cost = g_ascii_strtod(cost, NULL);
	} else {
		g_string_free(f, TRUE);
		return false;
	}
	call->url = g_strdup(s->url);
	call->content_type = "application/x-www-form-urlencoded; charset=windows-1251";
	call->body = g_string_free(f, FALSE);
	return true;
}

/* A posible value that means the account cannot pay for anything: the job stops. */
static bool account_refused(const char *posible, bool paying)
{
	return posible && (strcmp(posible, "no_account") == 0 ||
			   strcmp(posible, "accaunt_blocked") == 0 ||
			   (paying && strcmp(posible, "not_enough_money") == 0));
}

/* Whether an answer to get_price says the service did not carry it out, so nothing was
 * charged: where the billing block is there its posible decides (anything but yes refused the
 * debit); without one, a service message that is not SUCCESS (the error envelope) refused the
 * call. An answer that cannot be read, or a SUCCESS without prices, proves nothing. */
static bool not_charged(const sg_price_answer *a)
{
	if (a->posible)
		return strcmp(a->posible, "yes") != 0;
	return a->result && g_ascii_strcasecmp(a->result, "SUCCESS") != 0;
}

static sg_step price_answer(void *state, sg_batch_row *row, long http, const char *body,
			    size_t len)
{
	price_state *s = state;
	bool stage1 = row->state == NULL;
	const char *what = stage1 ? "get_price_info" : "get_price";
	sg_price_answer a;
	g_autofree char *err = NULL, *cost = NULL, *hv = NULL;
	cJSON *res;
	sg_step step = SG_STEP_DONE;

	if (sg_price_answer_parse(body, len, &a, &err) != SG_OK) {
		row->error = g_strdup_printf("%s: %s%s", what, http >= 300 ? "HTTP error, " : "",
					     err);
		return SG_STEP_DONE;
	}
	/* A refused get_price gives its reservation back (STOP does so by itself). */
	row->uncharged = !stage1 && not_charged(&a);
	if (http >= 300) {
		row->error = g_strdup_printf("%s: HTTP %ld%s%s", what, http, a.text ? ": " : "",
					     a.text ? a.text : "");
		goto out;
	}
	hv = whole(a.has_value);
	/* Out of money or a blocked account refuses every row alike: stop, no storm of calls. */
	if (account_refused(a.posible, !stage1 || (s->max_cost > 0 && g_strcmp0(hv, "1") == 0))) {
		row->error = g_strdup_printf("posible %s%s%s", a.posible,
					     a.billing_text ? ": " : "",
					     a.billing_text ? a.billing_text : "");
		step = SG_STEP_STOP;
		goto out;
	}
	if (a.posible && g_str_has_prefix(a.posible, "error_")) {
		/* The service message says what was wrong; the billing text only that it looked. */
		const char *c = a.code ? a.code : a.billing_code, *t = a.code ? a.text : a.billing_text;
		row->error = g_strdup_printf("%s: %s: %s: %s", what, a.posible, c ? c : "no code",
					     t ? t : "");
		goto out;
	}
	if (a.result == NULL || g_ascii_strcasecmp(a.result, "SUCCESS") != 0) {
		row->error = g_strdup_printf("%s: %s: %s", what, a.code ? a.code : "no code",
					     a.text ? a.text : a.result ? a.result : "no result");
		goto out;
	}
	res = row_answer(row);
	if (stage1) {
		g_autofree char *rid = NULL, *nc = whole(a.notice_count);
		if (hv == NULL || (strcmp(hv, "0") != 0 && strcmp(hv, "1") != 0)) {
			row->error = g_strdup_printf("get_price_info: the answer has no has_value "
						     "(0 or 1)");
			cJSON_Delete(res);
			goto out;
		}
		cost = decimal(a.cost);
		cJSON_AddStringToObject(res, "has_value", hv);
		cJSON_AddStringToObject(res, "notice_count", nc ? nc : "0");
		cJSON_AddStringToObject(res, "cost", cost ? cost : "");
		if (a.posible)
			cJSON_AddStringToObject(res, "posible", a.posible);
		rid = a.request_id && *a.request_id ? g_strdup(a.request_id) : NULL;
		if (rid)
			cJSON_AddStringToObject(res, "request_id", rid);
		if (strcmp(hv, "1") == 0 && s->max_cost > 0 && g_strcmp0(a.posible, "yes") == 0) {
			if (rid == NULL || cost == NULL) {
				row->error = g_strdup_printf("get_price_info: the answer has no %s: "
							     "get_price is not called",
							     rid ? "cost" : "request_id");
				cJSON_Delete(res);
				goto out;
			}
			set_row(row, "info", res);
			step = SG_STEP_NEXT;
		} else {
			/* Stage 1 is the result: no data, or no budget for stage 2 (a run with
			 * --max-cost takes a row with data up again). */
			cJSON_AddNumberToObject(res, "stage", 1);
			set_row(row, "ok", res);
		}
		cJSON_Delete(res);
		goto out;
	}
	{
		g_autofree char *mn = whole(a.price_min), *mx = whole(a.price_max);
		g_autofree char *av = whole(a.price_average), *nc = whole(a.notice_count);
		if (mn == NULL || mx == NULL || av == NULL) {
			row->error = g_strdup("get_price: the answer has no price_min, price_max and "
					      "price_average");
			cJSON_Delete(res);
			goto out;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(res, "stage");
		if (nc) {
			/* get_price counts the notices the prices come from: its count wins. */
			cJSON_DeleteItemFromObjectCaseSensitive(res, "notice_count");
			cJSON_AddStringToObject(res, "notice_count", nc);
		}
		cJSON_AddStringToObject(res, "price_min", mn);
		cJSON_AddStringToObject(res, "price_max", mx);
		cJSON_AddStringToObject(res, "price_average", av);
		cJSON_AddItemToObject(res, "details",
				      a.details ? cJSON_Duplicate(a.details, true)
						: cJSON_CreateObject());
		set_row(row, "ok", res);
		cJSON_Delete(res);
	}
out:
	sg_price_answer_clear(&a);
	return step;
}

/* A row stage 1 finished without prices while there was no budget: stage 2 now that there is.
 * One whose account could not pay then (posible not yes, e.g. not_enough_money) asks stage 1
 * again, which is free: the account may have been topped up. */
static bool price_resume(void *state, sg_batch_row *row)
{
	price_state *s = state;
	cJSON *a;
	bool back;

	if (s->max_cost <= 0 || row->state == NULL || strcmp(row->state, "ok") != 0)
		return false;
	a = row_answer(row);
	g_autofree char *hv = field(a, "has_value"), *pos = field(a, "posible");
	g_autofree char *rid = field(a, "request_id"), *cost = field(a, "cost");
	back = cJSON_GetObjectItemCaseSensitive(a, "stage") && g_strcmp0(hv, "1") == 0 &&
	       g_strcmp0(pos, "yes") == 0 && rid && cost && *cost;
	if (back) {
		cJSON_DeleteItemFromObjectCaseSensitive(a, "stage");
		set_row(row, "info", a);
	} else if (cJSON_GetObjectItemCaseSensitive(a, "stage") && g_strcmp0(hv, "1") == 0 &&
		   pos && strcmp(pos, "yes") != 0) {
		g_clear_pointer(&row->state, g_free);
		g_clear_pointer(&row->answer, g_free);
		back = true;
	}
	cJSON_Delete(a);
	return back;
}

const sg_batch_kind sg_batch_price = {
	.name = "price",
	.columns = price_columns,
	.ncolumns = G_N_ELEMENTS(price_columns),
	.result_columns = price_results,
	.open = price_open,
	.close = price_close,
	.validate = price_validate,
	.next = price_next,
	.answer = price_answer,
	.resume = price_resume,
	.json_columns = price_json,
};
