#!/usr/bin/python3
"""price_server.py: an emulator of the JcTrade / 1C average part price service of seed 002
(get_price_info, free, then get_price, which debits the account).

usage: price_server.py PORT [--s-sn S] [--balance N] [--cost N] [--form 1c|jctrade|mixed]
                       [--latency S]

POST a form (windows-1251 url-encoding) with s_sn, action and the seed's parameters. Every
answer is HTTP 200 windows-1251 XML <jcanswer> with the seed's quirks (a space before '>',
CDATA text). --form 1c gives techinfo as XML elements, jctrade as JSON inside CDATA, mixed
alternates by request_id. get_price_info answers three messages (billing with posible and cost,
account with money, the result with has_value, request_id, notice_count); a name or oem holding
"nodata" has has_value 0, one holding "badrow" gets an error envelope (result ERROR, posible
error_incorrectdata), one holding "noprice" has data but its get_price is refused cleanly (billing
posible error_serviceunreach, result ERROR, nothing debited). get_price debits cost from the balance and answers the prices; when the
balance is short it answers posible not_enough_money and debits nothing. A wrong s_sn answers
posible no_account; {"set_blocked": true} makes every answer accaunt_blocked.

Test hooks: see vin_server.py (GET /_stats, POST /_control). /_stats adds balance, debited,
info_calls, price_calls (every get_price per request_id) and per_item (charges per
request_id). Extra faults: "not_xml" (an HTML error page), "truncated" (XML cut short);
{"fault_on": "get_price"} limits faults to one action.
"""
import html
import json
import os
import sys
import threading
import time
import zlib
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vin_server import Handler, State, serve  # noqa: E402

current = threading.local()


class PriceState(State):
    def take_fault(self):
        """A fault only for the action fault_on names (all when unset); kept for service()."""
        if self.fault_on and getattr(current, "action", None) != self.fault_on:
            current.fault = None
            return None
        current.fault = super().take_fault()
        return current.fault


def cdata(s):
    return "<![CDATA[%s]]>" % s


def message(result, code, action, group, text, techinfo, debug=False):
    """One <message> block as the seed writes it (a space before '>' in the leaf tags)."""
    gid, area, gtext = group
    out = ["<message>", "<result >%s</result>" % result, "<code >%s</code>" % code,
           "<action >%s</action>" % action,
           '<group id="%s" area="%s">%s</group>' % (gid, area, cdata(gtext)),
           "<datetime >2013-07-11 06:38:13</datetime>", "<text >%s</text>" % cdata(text),
           techinfo]
    if debug:
        out.append("<debuginfo></debuginfo>")
    out.append("</message>")
    return "\n".join(out)


BILLING = ("billing", "none", "Обработка данных биллинга")
MAIN = ("main", "parts", "Система обработки данных")


def techinfo(obj, jctrade):
    """techinfo in the program's form: XML elements (1C) or JSON in CDATA (JcTrade)."""
    if jctrade:
        return "<techinfo >%s</techinfo>" % cdata(json.dumps(obj, ensure_ascii=False))

    def xml(o):
        if isinstance(o, dict):
            return "".join("<%s>%s</%s>" % (k, xml(v), k) for k, v in o.items())
        if isinstance(o, list):  # details: [[price, count], ...]
            return "".join('<item num="%s">%s</item>' % (p, c) for p, c in o)
        return html.escape(str(o))
    return "<techinfo >\n%s\n</techinfo>" % xml(obj)


class PriceHandler(Handler):
    def read_body(self):
        body = super().read_body()
        q = parse_qs(body.decode("latin-1"), encoding="cp1251", keep_blank_values=True)
        current.form = {k: v[-1] for k, v in q.items()}
        current.action = current.form.get("action")
        return body

    def xml(self, messages):
        doc = '<?xml version="1.0" encoding="windows-1251"?>\n<jcanswer>\n%s\n</jcanswer>\n' % (
            "\n".join(messages))
        raw = doc.encode("cp1251")
        fault = getattr(current, "fault", None)
        if fault == "not_xml":
            raw = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        elif fault == "truncated":
            raw = raw[: len(raw) // 2]
        head = ("HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=windows-1251\r\n"
                "Content-Length: %d\r\n\r\n" % len(raw)).encode()
        self.wfile.write(head + raw)
        with self.state.lock:
            self.state.log.append([time.time(), 200])

    def billing(self, result, posible, jc):
        st = self.state
        summary = {"get_price_info": {
            "free": {"count": 0, "atom_cost": 0, "cost": 0},
            "poket": {"count": 0, "atom_cost": 0, "cost": 0},
            "cash": {"count": 1, "atom_cost": st.cost, "cost": st.cost}, "active": 1}}
        ti = {"summary": summary, "result": result, "posible": posible, "cost": st.cost,
              "currency_id": 4}
        return message("SUCCESS" if result == 1 else "ERROR",
                       "N0407_BILLING_SUCCESS" if result == 1 else "E0407_BILLING_REFUSED",
                       "detail", BILLING, "Данные о возможности проведения операции получены",
                       techinfo(ti, jc))

    def refusal(self, posible, action, jc):
        self.xml([self.billing(0 if posible != "no_account" else -1, posible, jc),
                  message("ERROR", "E0407_BILLING_ERROR", action, MAIN,
                          "Операция невозможна: %s" % posible, techinfo({}, jc))])

    def service(self, method, body, drop_after):
        st = self.state
        f = current.form
        action = f.get("action")
        jc = st.form == "jctrade"
        if action not in ("get_price_info", "get_price"):
            self.xml([message("ERROR", "E0001_UNKNOWN_ACTION", action or "", MAIN,
                              "Неизвестное действие", techinfo({}, jc))])
            return
        if f.get("s_sn") != st.s_sn:
            self.refusal("no_account", action, jc)
            return
        if st.blocked:
            self.refusal("accaunt_blocked", action, jc)
            return
        if action == "get_price_info":
            self.price_info(f, jc)
        else:
            self.get_price(f, jc, drop_after)

    def price_info(self, f, jc):
        st = self.state
        text = (f.get("name", "") + " " + f.get("oem", "")).lower()
        with st.lock:
            st.info_calls += 1
            st.next_id += 1
            rid = st.next_id
            has_value = 0 if "nodata" in text else 1
            if has_value:
                st.requests_by_id[rid] = dict(f)
            money = st.balance
        if st.form == "mixed":
            jc = rid % 2 == 0
        if "badrow" in text:
            self.xml([self.billing(-1, "error_incorrectdata", jc),
                      message("ERROR", "E0501_INCORRECT_DATA", "get_price_info", MAIN,
                              "Некорректные параметры запроса", techinfo({}, jc))])
            return
        posible = "yes" if money >= st.cost else "not_enough_money"
        seed = zlib.crc32(text.encode())
        self.xml([
            self.billing(1 if posible == "yes" else 0, posible, jc),
            message("SUCCESS", "N0407_BILLING_SUCCESS", "account", BILLING,
                    "Данные о лицевом счете и добавленных объявлениях",
                    techinfo({"money": money, "currency_id": 4, "added_count": 0}, jc)),
            message("SUCCESS", "N0080_SERVICE_SUCCESS", "get_price_info", MAIN,
                    "Запрос на среднюю цену успешно обработан",
                    techinfo({"has_value": has_value, "request_id": rid,
                              "notice_count": (seed % 200) + 1 if has_value else 0}, jc),
                    debug=True)])

    def get_price(self, f, jc, drop_after):
        st = self.state
        try:
            rid = int(f.get("request_id", ""))
        except ValueError:
            rid = -1
        if st.form == "mixed":
            jc = rid % 2 == 0
        with st.lock:
            st.price_calls[str(rid)] = st.price_calls.get(str(rid), 0) + 1
            req = st.requests_by_id.get(rid)
            short = st.balance < st.cost
            refused = req is not None and "noprice" in (
                req.get("name", "") + " " + req.get("oem", "")).lower()
            if req is not None and not short and not refused:
                st.balance -= st.cost
                st.debited += st.cost
                st.charged += 1
                st.per_item[str(rid)] = st.per_item.get(str(rid), 0) + 1
        if req is None:
            self.xml([message("ERROR", "E0404_REQUEST_NOT_FOUND", "get_price", MAIN,
                              "Запрос не найден", techinfo({}, jc))])
            return
        if refused:
            self.xml([self.billing(-1, "error_serviceunreach", jc),
                      message("ERROR", "E0503_SERVICE_UNREACHABLE", "get_price", MAIN,
                              "Сервис цен временно недоступен", techinfo({}, jc))])
            return
        if short:
            self.refusal("not_enough_money", "get_price", jc)
            return
        if drop_after:
            self.drop()
            return
        seed = zlib.crc32((req.get("name", "") + "/" + req.get("oem", "")).encode())
        prices = sorted({100 + (seed >> k) % 5000 for k in range(0, 20, 4)})
        details = [[p, 1 + (seed >> p % 7) % 5] for p in prices]
        n = sum(c for _, c in details)
        avg = sum(p * c for p, c in details) // n
        ti = {"notice_count": n, "price_min": prices[0], "price_max": prices[-1],
              "price_average": avg,
              "details": ({str(p): c for p, c in details} if jc else details)}
        self.xml([message("SUCCESS", "N0081_SERVICE_SUCCESS", "get_price", MAIN,
                          "Средняя цена получена", techinfo(ti, jc)).replace(
                              "</message>", "<debuginfo >%s</debuginfo>\n</message>" % cdata(""))])

    def hooks(self, method, body):
        if self.path.startswith("/_stats") and method == "GET":
            st = self.state
            with st.lock:
                st.extra = {"balance": st.balance, "debited": st.debited,
                            "info_calls": st.info_calls, "price_calls": dict(st.price_calls),
                            "max_price_calls": max(st.price_calls.values(), default=0)}
        return super().hooks(method, body)


def main(argv):
    port = int(argv[1])
    st = PriceState()
    st.s_sn, st.balance, st.cost, st.form = "3274171001", 1000000, 1, "1c"
    st.fault_on, st.blocked = None, False
    st.debited, st.info_calls, st.next_id = 0, 0, 40
    st.requests_by_id, st.price_calls = {}, {}
    i = 2
    while i < len(argv):
        a, v = argv[i], argv[i + 1]
        if a == "--s-sn":
            st.s_sn = v
        elif a == "--balance":
            st.balance = int(v)
        elif a == "--cost":
            st.cost = int(v)
        elif a == "--form":
            st.form = v
        elif a == "--latency":
            st.latency = float(v)
        else:
            sys.exit("price_server.py: unknown option " + a)
        i += 2
    serve(PriceHandler, st, port)


if __name__ == "__main__":
    main(sys.argv)
