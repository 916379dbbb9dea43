#!/usr/bin/python3
# keaz_server.py: an emulator of the dealer REST API of seed 004 (warehouses, remains) with fault switches, for the mirror tests.
"""
usage: keaz_server.py PORT [--dealer KEY[=NAME]]... [--fail-at K] [--hang-at K] [--hang-seconds S]
                           [--drop-at K] [--error-code CODE] [--ratelimit-at K] [--retry-after N]
                           [--redirect-to URL]

API (POST, JSON or form body, or XML/JSON answer by suffix):
  /restapi/warehouse.{add,update,delete,list}.{json,xml}, /restapi/remains.{add,delete}.{json,xml}
Test endpoints:
  GET /_log      every API request: n, action, format, hash, dealer, body (parsed), http, status
  GET /_state    {"NAME": {"warehouses": {code: {address, contacts}}, "remains": {code: {article: qty}}}}
  GET /_history  [{"n", "action", "state"}] the state after each API request
  POST /_control JSON: fail_at, hang_at, drop_at, ratelimit_at (the k-th API request from now,
                 one-shot), hang_seconds, retry_after, error_code (null clears), redirect_to,
                 reset_log (bool). Counting restarts at every /_control.
Faults: fail_at → HTTP 500, nothing changed; hang_at → no answer for hang_seconds, then the
connection is closed, nothing changed; drop_at → the change is committed, then the connection is
closed without an answer; ratelimit_at → HTTP 429 with Retry-After; error_code → status error for
any request naming that warehouse code, nothing changed; redirect_to → every API request answered
302 to that base URL.
"""
import copy
import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

LOCK = threading.Lock()
DEALERS = {}  # key -> name
STATE = {}  # name -> {"warehouses": {}, "remains": {}}
LOG = []
HISTORY = []
FAULTS = {"fail_at": None, "hang_at": None, "drop_at": None, "ratelimit_at": None,
          "hang_seconds": 10.0, "retry_after": 7, "error_code": None, "redirect_to": None}
COUNTER = [0]


class Drop(Exception):
    """Close the connection without an answer."""


def parse_form(text):
    """PHP-style form: a[0][b]=c → {"a": [{"b": "c"}]} (numeric keys become list order)."""
    root = {}
    for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True):
        parts = k.replace("]", "").split("[")
        node = root
        for i, p in enumerate(parts):
            if i == len(parts) - 1:
                node[p] = v
            else:
                node = node.setdefault(p, {})
    def listify(n):
        if isinstance(n, dict):
            n = {k: listify(v) for k, v in n.items()}
            if n and all(k.isdigit() for k in n):
                return [n[k] for k in sorted(n, key=int)]
        return n
    return listify(root)


def to_xml(tree):
    def node(v):
        if isinstance(v, dict):
            return "".join("<%s>%s</%s>" % (k, node(x), k) for k, x in v.items())
        if isinstance(v, list):
            return "".join("<item>%s</item>" % node(x) for x in v)
        return escape(str(v))
    return '<?xml version="1.0" encoding="UTF-8"?>\n<response>%s</response>' % node(tree)


def as_list(v):
    if v is None:
        return []
    if isinstance(v, dict):
        return [v[k] for k in sorted(v, key=lambda x: (not str(x).isdigit(), int(x) if str(x).isdigit() else 0, str(x)))]
    if isinstance(v, list):
        return v
    return None


def text(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return str(int(v)) if float(v).is_integer() else str(v)
    if isinstance(v, str):
        return v
    return None


def ok(msgs=None, **extra):
    r = dict(extra)
    r["status"] = {"code": "ok"}
    if msgs:
        r["status"]["messages"] = msgs
    return r


def error(msgs):
    return {"status": {"code": "error", "messages": msgs}}


def items_of(body):
    whs = body.get("warehouses", body.get("warehouse"))
    return as_list(whs)


def api(action, body, st):
    """Runs one API call on a dealer's state (under LOCK); returns the answer tree."""
    whs, rem = st["warehouses"], st["remains"]
    ec = FAULTS["error_code"]
    if action == "warehouse.list":
        return ok(None, warehouses=[{"code": c, "contacts": w["contacts"], "address": w["address"]}
                                    for c, w in sorted(whs.items())])
    if action in ("warehouse.add", "warehouse.update", "warehouse.delete"):
        items = items_of(body)
        if not items:
            return error(["Не переданы склады"])
        parsed = []
        for i, it in enumerate(items):
            code = text(it.get("code")) if isinstance(it, dict) else None
            if not code:
                return error(["Не корректные данные склада в строке `%d`: `%s`"
                              % (i, json.dumps(it, ensure_ascii=False))])
            if ec is not None and code == ec:
                return error(["Склад `%s` не может быть сохранён" % code])
            addr = text(it.get("address")) or ""
            cont = text(it.get("contacts")) or ""
            parsed.append((code, addr, cont))
        msgs = []
        if action == "warehouse.update":
            missing = [c for c, _, _ in parsed if c not in whs]
            if missing:
                return error(["Склад `%s` не найден" % c for c in missing])
        for code, addr, cont in parsed:
            if action == "warehouse.add":
                if code in whs:
                    msgs.append("Склад `%s` уже существует!" % code)
                else:
                    whs[code] = {"address": addr, "contacts": cont}
                    msgs.append("Склад `%s` добавлен" % code)
            elif action == "warehouse.update":
                whs[code] = {"address": addr, "contacts": cont}
                msgs.append("Склад `%s` обновлён" % code)
            else:
                if code in whs:
                    del whs[code]
                    rem.pop(code, None)
                    msgs.append("Склад `%s` удалён" % code)
                else:
                    msgs.append("Склад `%s` не найден" % code)
        return ok(msgs)
    if action in ("remains.add", "remains.delete"):
        code = text(body.get("code"))
        if not code:
            return error(["Не указан код склада"])
        if code not in whs:
            return error(["Склад `%s` не найден" % code])
        if ec is not None and code == ec:
            return error(["Остатки склада `%s` не могут быть сохранены" % code])
        if action == "remains.delete":
            rem[code] = {}
            return ok(["Остатки удалены"])
        prods = as_list(body.get("products"))
        if prods is None:
            return error(["Не корректный список продукции"])
        new = {}
        for i, p in enumerate(prods):
            art = text(p.get("article")) if isinstance(p, dict) else None
            q = p.get("quantity") if isinstance(p, dict) else None
            try:
                qn = int(q)
                if str(q).strip() != str(qn) and not isinstance(q, int):
                    raise ValueError
            except (TypeError, ValueError):
                qn = None
            if not art or qn is None or qn < 0:
                return error(["Не корректные данные остатка в строке `%d`: `%s`"
                              % (i, json.dumps(p, ensure_ascii=False))])
            new[art] = qn
        # The server clears the warehouse first, then saves: one step as far as anyone sees.
        rem[code] = new
        return ok(["Остатки удалены", "Сохранено %d элементов" % len(new)])
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keaz-emulator/1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def send(self, code, body, ctype="application/json", headers=()):
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
            code, self.responses.get(code, ("",))[0], ctype, len(data))
        for k, v in headers:
            head += "%s: %s\r\n" % (k, v)
        self.connection.sendall(head.encode("latin-1") + b"\r\n" + data)

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        with LOCK:
            if self.path == "/_log":
                return self.send(200, json.dumps(LOG))
            if self.path == "/_state":
                return self.send(200, json.dumps(STATE))
            if self.path == "/_history":
                return self.send(200, json.dumps(HISTORY))
        self.send(404, json.dumps(error(["Not found"])))

    def do_POST(self):
        raw = self.read_body()
        if self.path == "/_control":
            ctl = json.loads(raw or b"{}")
            with LOCK:
                for k, v in ctl.items():
                    if k == "reset_log":
                        if v:
                            LOG.clear()
                            HISTORY.clear()
                    elif k in FAULTS:
                        FAULTS[k] = v
                COUNTER[0] = 0
            return self.send(200, json.dumps(ok()))
        self.api(raw)

    def api(self, raw):
        path = urllib.parse.urlsplit(self.path).path
        name = path.rsplit("/", 1)[-1]
        parts = name.split(".")
        if len(parts) == 2:
            parts.append("json")
        fmt = parts[2] if len(parts) == 3 else ""
        action = ".".join(parts[:2])
        ctype = (self.headers.get("Content-Type") or "").lower()
        try:
            if "json" in ctype or raw[:1] in (b"{", b"["):
                body = json.loads(raw.decode("utf-8")) if raw else {}
            else:
                body = parse_form(raw.decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            body = None
        key = (body or {}).get("hash") or self.headers.get("Hash")
        with LOCK:
            COUNTER[0] += 1
            k = COUNTER[0]
            entry = {"n": len(LOG) + 1, "action": action, "format": fmt, "hash": key,
                     "dealer": DEALERS.get(key), "body": body, "bytes": len(raw),
                     "http": None, "status": None}
            LOG.append(entry)
            fault = None
            for f in ("redirect", "fail_at", "hang_at", "ratelimit_at", "drop_at"):
                if f == "redirect":
                    if FAULTS["redirect_to"]:
                        fault = f
                        break
                elif FAULTS[f] is not None and FAULTS[f] == k:
                    FAULTS[f] = None
                    fault = f
                    break
        if fault == "redirect":
            entry["http"] = 302
            return self.send(302, "", headers=[("Location", FAULTS["redirect_to"].rstrip("/") + "/" + name)])
        if fault == "fail_at":
            entry["http"] = 500
            return self.send(500, "<html><body>500 Internal Server Error</body></html>", "text/html")
        if fault == "hang_at":
            entry["http"] = 0
            time.sleep(float(FAULTS["hang_seconds"]))
            self.close_connection = True
            return
        if fault == "ratelimit_at":
            entry["http"] = 429
            return self.send(429, json.dumps(error(["Слишком много запросов"])),
                             headers=[("Retry-After", str(FAULTS["retry_after"]))])
        if fmt not in ("json", "xml") or not path.startswith("/restapi/") or path.count("/") != 2:
            entry["http"] = 404
            return self.send(404, json.dumps(error(["Неизвестный тип `%s`" % fmt])))
        with LOCK:
            if body is None:
                tree, http = error(["Не корректный запрос"]), 400
            elif not key or key not in DEALERS:
                tree, http = error(["Не верный API ключ"]), 200
            else:
                st = STATE[DEALERS[key]]
                tree = api(action, body, st)
                http = 200
                if tree is None:
                    tree, http = error(["Неизвестный метод `%s`" % action]), 404
            entry["http"] = http
            entry["status"] = tree["status"]["code"]
            HISTORY.append({"n": entry["n"], "action": action, "state": copy.deepcopy(STATE)})
        if fault == "drop_at":
            self.close_connection = True
            raise Drop()
        if fmt == "xml":
            self.send(http, to_xml(tree), "application/xml; charset=utf-8")
        else:
            self.send(http, json.dumps(tree), "application/json; charset=utf-8")

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except Drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main(argv):
    port = int(argv[1])
    i = 2
    while i < len(argv):
        a = argv[i]
        v = argv[i + 1] if i + 1 < len(argv) else None
        i += 2
        if a == "--dealer":
            key, _, name = v.partition("=")
            DEALERS[key] = name or key
            STATE.setdefault(name or key, {"warehouses": {}, "remains": {}})
        elif a in ("--fail-at", "--hang-at", "--drop-at", "--ratelimit-at"):
            FAULTS[a[2:].replace("-", "_")] = int(v)
        elif a == "--hang-seconds":
            FAULTS["hang_seconds"] = float(v)
        elif a == "--retry-after":
            FAULTS["retry_after"] = int(v)
        elif a == "--error-code":
            FAULTS["error_code"] = v
        elif a == "--redirect-to":
            FAULTS["redirect_to"] = v
        else:
            sys.exit("keaz_server.py: unknown option " + a)
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
