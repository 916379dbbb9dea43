#!/usr/bin/python3
"""vin_server.py: an emulator of the VIN report service of seed 000 (processing_queue, get_balance).

usage: vin_server.py PORT [--token T] [--balance N] [--price N] [--latency S]
                           [--callback URL] [--delay S] [--deliver-first FORM]

POST any path with a JSON body {token, vin, check_type, car_brand, report_language, [telegram_id,
client_email, your_email]}: 200 {"status":"ok","id":N,"message":...} when accepted (charged),
400 {"error":...} for a bad VIN, check type, brand or language, 401 for a bad token, 402 when the
balance is spent. check_type "get_balance" answers {"balance": N}.

Test hooks (shared with frame_server.py):
  GET  /_stats    JSON counters: requests, charged, per_item (charges per VIN+check type),
                  log [[time, status], …]
  POST /_control  JSON {"fault": "429"|"500"|"503"|"401"|"hang"|"drop"|"drop_after"|"huge"|"none",
                  "count": N (-1: until changed), "retry_after": "2" or an HTTP-date,
                  "latency": S, "redirect": URL}
  POST /_deliver  JSON {"callback": URL, "form": "json"|"form"|"multipart"|"nested"|
                  "jsonstring"|"get"|"cycle" (default: one after the other), "status": "ok"|
                  "error", "repeat": N (each delivery sent N times), "unknown": N (also N
                  deliveries for ids nobody asked for), "filename": NAME (of the multipart
                  file), "again": true (the delivered ones too)}: delivers now, synchronously,
                  every accepted request whose result did not get a 2xx yet (a delivery that
                  failed is retried by the next /_deliver, as the service retries); answers
                  {"delivered": N, "failed": N, "codes": [...]}.
With --delay S the results also go by themselves S seconds after acceptance, retried each
second until a 2xx (a real service's behaviour; the tests use /_deliver, which does not race).
With --deliver-first FORM (or POST /_control {"set_deliver_first": FORM}, null to stop) an
accepted request's result is delivered to the callback in that form, synchronously, BEFORE the
request itself is answered (a fast service: the report is there before the client could record
that it waits for it); one that got no 2xx is left for /_deliver.
Faults apply to the service's requests, not to the hooks. "drop" closes the connection before
doing anything; "drop_after" charges first, then closes (an ambiguous outcome); "huge" answers
200 with 2 MB of JSON, doing nothing.
"""
import http.client
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

LANGS = ["Русский", "Английский", "Польский", "Румынский", "Французский", "Немецкий"]
VAG = ["Audi", "SKODA", "SEAT", "Volkswagen"]
CHECKS = {
    "check_data_bmw_full": (["BMW", "Mini"], LANGS),
    "check_data_multibr_zapros": (["Alfa Romeo", "Renault", "Jeep", "Infiniti", "Land Rover",
                                   "Nissan", "Mazda", "hyundai", "Honda", "Peugeot", "Citroen",
                                   "Fiat", "Jaguar", "Lexus", "Opel", "Toyota", "KIA", "Ford",
                                   "Porsche", "Mercedes-Benz"], LANGS[:2]),
    "check_elsa_pro_full": (VAG, LANGS),
    "check_CarVertical": (None, LANGS),
    "check_data_mercedes_eva": (["Mercedes-Benz"], ["Английский"]),
    "check_erwin_full": (VAG, ["Английский"]),
    "check_etka_full": (VAG + ["MAN", "Porsche", "Bentley"], LANGS[:2]),
    "check_nomer_dws": (VAG + ["Volvo", "Peugeot", "Nissan", "Jeep", "KIA", "Mercedes", "Opel",
                               "Citroen", "Dodge", "Fiat", "hyundai"], ["Английский"]),
}
VIN_CHARS = set("ABCDEFGHJKLMNPRSTUVWXYZ0123456789")


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.fault = "none"
        self.count = 0
        self.retry_after = None
        self.latency = 0.0
        self.redirect = None
        self.requests = 0
        self.charged = 0
        self.per_item = {}
        self.log = []
        self.secrets_seen_in_path = 0
        self.extra = {}
        self.accepted = []  # [{"id", "vin", "delivered"}] of the vin service
        self.callback = None
        self.delay = None
        self.deliver_first = None
        self.form_i = 0

    def take_fault(self):
        """The fault for this request, consuming one of its count."""
        with self.lock:
            if self.fault == "none" or self.count == 0:
                return None
            if self.count > 0:
                self.count -= 1
            return self.fault


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set by serve()

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj=None, headers=None):
        body = b"" if obj is None else json.dumps(obj, ensure_ascii=False).encode()
        head = ["HTTP/1.1 %d %s" % (code, self.responses.get(code, ("",))[0]),
                "Content-Type: application/json; charset=utf-8",
                "Content-Length: %d" % len(body)]
        for k, v in (headers or {}).items():
            head.append("%s: %s" % (k, v))
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.wfile.write(raw)  # one write: no Nagle stalls
        with self.state.lock:
            self.state.log.append([time.time(), code])

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with self.state.lock:
            self.state.log.append([time.time(), 0])

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def hooks(self, method, body):
        st = self.state
        path = urlsplit(self.path).path
        if path == "/_stats" and method == "GET":
            with st.lock:
                out = {"requests": st.requests, "charged": st.charged,
                       "per_item": st.per_item, "log": st.log,
                       "max_per_item": max(st.per_item.values(), default=0)}
                out.update(st.extra)
            self.reply(200, out)
            return True
        if path == "/_control" and method == "POST":
            c = json.loads(body or b"{}")
            with st.lock:
                if "fault" in c:
                    st.fault = c["fault"]
                    st.count = int(c.get("count", -1))
                if "retry_after" in c:
                    st.retry_after = c["retry_after"]
                if "latency" in c:
                    st.latency = float(c["latency"])
                if "redirect" in c:
                    st.redirect = c["redirect"]
                for k, v in c.items():
                    if k.startswith("set_"):
                        setattr(st, k[4:], v)
            self.reply(200, {"ok": True})
            return True
        if path == "/_deliver" and method == "POST":
            self.reply(200, deliver_now(st, json.loads(body or b"{}")))
            return True
        return False

    def handle_any(self, method):
        body = self.read_body()  # a GET may carry one too (PILOT's generate_token)
        if self.hooks(method, body):
            return
        st = self.state
        with st.lock:
            st.requests += 1
        if st.latency:
            time.sleep(st.latency)
        if st.redirect:
            self.reply(302, {}, {"Location": st.redirect})
            return
        fault = st.take_fault() if self.faultable(body) else None
        if fault in ("429", "500", "503"):
            h = {"Retry-After": st.retry_after} if st.retry_after is not None else {}
            self.reply(int(fault), {"error": "fault %s" % fault}, h)
            return
        if fault == "401":
            self.reply(401, {"error": "Неверный токен"})
            return
        if fault == "hang":
            time.sleep(30)
            self.drop()
            return
        if fault == "drop":
            self.drop()
            return
        if fault == "huge":
            self.reply(200, {"pad": "x" * (2 << 20)})
            return
        self.service(method, body, fault == "drop_after")

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def faultable(self, body):
        """Whether the faults apply to this request (an emulator may spare its login)."""
        return True

    def service(self, method, body, drop_after):
        raise NotImplementedError


class VinHandler(Handler):
    def service(self, method, body, drop_after):
        st = self.state
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            self.reply(400, {"error": "Некорректный JSON"})
            return
        if not isinstance(req, dict):
            self.reply(400, {"error": "Некорректный JSON"})
            return
        if req.get("token") != st.token:
            self.reply(401, {"error": "Неверный токен"})
            return
        ct = req.get("check_type")
        if ct == "get_balance":
            with st.lock:
                st.extra["balance_calls"] = st.extra.get("balance_calls", 0) + 1
            self.reply(200, {"balance": st.balance})
            return
        vin = req.get("vin") or ""
        if len(vin) != 17 or not set(vin) <= VIN_CHARS:
            self.reply(400, {"error": "VIN должен состоять строго из 17 латинских символов без I,O,Q"})
            return
        if ct not in CHECKS:
            self.reply(400, {"error": "Неизвестный тип проверки: %s" % ct})
            return
        brands, langs = CHECKS[ct]
        if brands is not None and req.get("car_brand") not in brands:
            self.reply(400, {"error": "Марка %s недоступна для %s" % (req.get("car_brand"), ct)})
            return
        if req.get("report_language") not in langs:
            self.reply(400, {"error": "Язык %s недоступен для %s" % (req.get("report_language"), ct)})
            return
        with st.lock:
            if st.balance < st.price:
                refuse = True
            else:
                refuse = False
                st.balance -= st.price
                st.charged += 1
                key = vin + "/" + ct
                st.per_item[key] = st.per_item.get(key, 0) + 1
                rid = st.charged
                item = {"id": rid, "vin": vin, "delivered": False, "at": time.time()}
                st.accepted.append(item)
        if refuse:
            self.reply(402, {"error": "Недостаточно средств на балансе"})
            return
        if drop_after:
            self.drop()
            return
        if st.deliver_first and st.callback:
            code = post(st.callback, *delivery_request(item, st.deliver_first, "ok", "report.pdf"))
            with st.lock:
                st.extra["delivered_first"] = st.extra.get("delivered_first", 0) + (200 <= code < 300)
            if 200 <= code < 300:
                item["delivered"] = True
        self.reply(200, {"status": "ok", "id": rid, "message": "Запрос принят в очередь"})


FORMS = ["json", "form", "multipart", "nested", "jsonstring"]


def report_pdf(rid, vin):
    """A small, well-formed PDF naming the request."""
    text = "Report %s for %s" % (rid, vin)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] /Contents 4 0 R >>"]
    stream = ("BT /F1 12 Tf 10 50 Td (%s) Tj ET" % text).encode()
    objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out, offs = b"%PDF-1.4\n", []
    for i, o in enumerate(objs):
        offs.append(len(out))
        out += b"%d 0 obj\n" % (i + 1) + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for o in offs:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def delivery_request(item, form, status, filename):
    """(method, path suffix, headers, body) of one delivery in one of the forms seen."""
    rid, vin = item["id"], item["vin"]
    url = "https://reports.example/%s.pdf" % rid
    fields = {"status": status, "vin": vin, "url": url}
    if status != "ok":
        fields["error"] = "Отчёт не найден у дилера"
    if form == "json":
        return "POST", "", {"Content-Type": "application/json"}, json.dumps(dict(id=rid, **fields)).encode()
    if form == "form":
        return "POST", "", {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(dict(uid=rid, **fields)).encode()
    if form == "nested":
        return "POST", "", {"Content-Type": "application/json"}, json.dumps({"ok": True, "data": dict(order_uiid=str(rid), **fields)}).encode()
    if form == "jsonstring":
        return "POST", "", {"Content-Type": "application/json"}, json.dumps({"data": json.dumps(dict(order_uuid=rid, **fields))}).encode()
    if form == "get":
        return "GET", "?" + urlencode(dict(id=rid, **fields)), {}, b""
    # multipart with the report as a file
    b = "sgboundary%d" % rid
    parts = []
    for k, v in dict(uid=str(rid), **fields).items():
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (b, k, v)).encode())
    if status == "ok":
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                      "Content-Type: application/pdf\r\n\r\n" % (b, filename)).encode()
                     + report_pdf(rid, vin) + b"\r\n")
    parts.append(("--%s--\r\n" % b).encode())
    return "POST", "", {"Content-Type": "multipart/form-data; boundary=%s" % b}, b"".join(parts)


def post(callback, method, suffix, headers, body):
    """The HTTP status of one delivery, or 0 when the connection failed."""
    u = urlsplit(callback)
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.request(method, u.path + suffix, body=body or None, headers=headers)
        code = c.getresponse().status
        c.close()
        return code
    except (OSError, http.client.HTTPException):
        return 0


def deliver_now(st, c):
    callback = c.get("callback") or st.callback
    out = {"delivered": 0, "failed": 0, "codes": []}
    with st.lock:
        items = [i for i in st.accepted if c.get("again") or not i["delivered"]]
        items += [{"id": 900000 + k, "vin": "XTA21099043456789", "delivered": False, "extra": True}
                  for k in range(int(c.get("unknown", 0)))]
    for item in items:
        with st.lock:
            form = c.get("form", "cycle")
            if form == "cycle":
                form = FORMS[st.form_i % len(FORMS)]
                st.form_i += 1
        req = delivery_request(item, form, c.get("status", "ok"), c.get("filename", "report.pdf"))
        for _ in range(int(c.get("repeat", 1))):
            code = post(callback, *req)
            out["codes"].append(code)
            if 200 <= code < 300:
                item["delivered"] = True
        if item["delivered"]:
            out["delivered"] += 1
        else:
            out["failed"] += 1
    with st.lock:
        st.extra["deliveries"] = st.extra.get("deliveries", 0) + len(out["codes"])
    return out


def auto_deliver(st):
    """--delay: each accepted result goes S seconds after acceptance, retried until a 2xx."""
    while True:
        time.sleep(0.5)
        with st.lock:
            due = [i for i in st.accepted if not i["delivered"] and time.time() - i["at"] >= st.delay]
        for item in due:
            with st.lock:
                form = FORMS[st.form_i % len(FORMS)]
                st.form_i += 1
            if 200 <= post(st.callback, *delivery_request(item, form, "ok", "report.pdf")) < 300:
                item["delivered"] = True


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client killed mid-request (the kill -9 tests) is expected, not an error.
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


def serve(handler_cls, state, port):
    handler_cls.state = state
    srv = Server(("127.0.0.1", port), handler_cls)
    srv.daemon_threads = True
    srv.request_queue_size = 128
    srv.serve_forever()


def main(argv):
    port = int(argv[1])
    st = State()
    st.token = "vin-token"
    st.balance = 1000000
    st.price = 1
    i = 2
    while i < len(argv):
        a, v = argv[i], argv[i + 1]
        if a == "--token":
            st.token = v
        elif a == "--balance":
            st.balance = int(v)
        elif a == "--price":
            st.price = int(v)
        elif a == "--latency":
            st.latency = float(v)
        elif a == "--callback":
            st.callback = v
        elif a == "--delay":
            st.delay = float(v)
        elif a == "--deliver-first":
            st.deliver_first = v
        else:
            sys.exit("vin_server.py: unknown option " + a)
        i += 2
    if st.delay is not None and st.callback:
        threading.Thread(target=auto_deliver, args=(st,), daemon=True).start()
    serve(VinHandler, st, port)


if __name__ == "__main__":
    main(sys.argv)
