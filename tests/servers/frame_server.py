#!/usr/bin/python3
"""frame_server.py: an emulator of the frame-number report service of seed 001
(reportrequestframe.ashx: setqueue → checkqueue → getresult).

usage: frame_server.py PORT [--key K] [--delay S] [--quota N] [--latency S]

GET or POST with query key, mode and frame or id. Every answer is HTTP 200 JSON: a queued id has
status 0 until --delay seconds have passed, then 1, and getresult gives its url. A bad key, an
unknown id, a frame starting with "ZZ" (not found) or a spent --quota give
{"error": true, "error_msg": ...}. Each setqueue is counted per frame.
Test hooks and faults: see vin_server.py (GET /_stats, POST /_control).
"""
import os
import sys
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vin_server import Handler, State, serve  # noqa: E402


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


class FrameHandler(Handler):
    def service(self, method, body, drop_after):
        st = self.state
        q = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if method == "POST" and body:
            q.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
        start = now_iso()

        def err(msg):
            self.reply(200, {"start": start, "end": now_iso(), "vin": q.get("frame"),
                             "gosnumber": None, "error": True, "error_msg": msg})

        if q.get("key") != st.key:
            err("Неверный ключ доступа")
            return
        mode = q.get("mode")
        with st.lock:
            st.extra.setdefault("modes", {})
            st.extra["modes"][mode] = st.extra["modes"].get(mode, 0) + 1
        if mode == "setqueue":
            frame = q.get("frame") or ""
            if not frame:
                err("Не указан номер кузова")
                return
            with st.lock:
                if st.quota is not None and st.charged >= st.quota:
                    spent = True
                else:
                    spent = False
                    st.charged += 1
                    st.per_item[frame] = st.per_item.get(frame, 0) + 1
                    st.next_id += 1
                    rid = st.next_id
                    st.jobs[rid] = {"frame": frame, "t": time.time(), "start": start,
                                    "bad": frame.startswith("ZZ")}
            if spent:
                err("Закончился доступ или запросы")
                return
            if drop_after:
                self.drop()
                return
            self.reply(200, {"start": start, "end": now_iso(), "gosnumber": None, "vin": frame,
                             "error": None, "status": 0, "id": rid, "startgeneration": None,
                             "msg": 0})
            return
        if mode in ("checkqueue", "getresult"):
            try:
                rid = int(q.get("id") or "")
            except ValueError:
                rid = -1
            with st.lock:
                job = st.jobs.get(rid)
            if job is None:
                err("Отчет с таким ID не найден")
                return
            ready = time.time() - job["t"] >= st.delay
            if job["bad"] and ready:
                if mode == "checkqueue":
                    self.reply(200, {"start": start, "end": now_iso(), "error": None,
                                     "status": 2, "id": rid, "msg": 0})
                else:
                    err("Номер кузова не найден")
                return
            if mode == "checkqueue":
                out = {"start": start, "end": now_iso(), "error": None,
                       "status": 1 if ready else 0, "id": rid,
                       "startgeneration": job["start"], "msg": 0}
                if ready:
                    out["endgeneration"] = now_iso()
                self.reply(200, out)
                return
            if not ready:
                err("Отчет еще не сгенерирован")
                return
            self.reply(200, {"start": start, "end": now_iso(), "error": None, "status": 1,
                             "id": rid, "url": "https://frame.example/report/%d.html" % rid,
                             "startgeneration": job["start"], "endgeneration": now_iso(),
                             "msg": 0})
            return
        err("Неизвестный режим")


def main(argv):
    port = int(argv[1])
    st = State()
    st.key = "867983b5-d66d-44d7-b440-5bd00b0b8203"
    st.delay = 1.0
    st.quota = None
    st.next_id = 1000
    st.jobs = {}
    i = 2
    while i < len(argv):
        a, v = argv[i], argv[i + 1]
        if a == "--key":
            st.key = v
        elif a == "--delay":
            st.delay = float(v)
        elif a == "--quota":
            st.quota = int(v)
        elif a == "--latency":
            st.latency = float(v)
        else:
            sys.exit("frame_server.py: unknown option " + a)
        i += 2
    serve(FrameHandler, st, port)


if __name__ == "__main__":
    main(sys.argv)
