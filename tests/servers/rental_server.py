#!/usr/bin/python3
"""rental_server.py: an emulator of the PILOT rental contracts API of seed 003 (contracts.php).

usage: rental_server.py PORT [--login L] [--password P] [--token-calls N] [--latency S]

Every answer is HTTP 200 JSON {"code": N, "odo": "…", "message": "…"}, codes as the seed lists
them. {"cmd": "generate_token", "login", "password"} comes as a GET with a JSON body and gives
a 32-hex token in message (code 4 for a wrong login or password, code 11 for a POST). Other
commands are POSTs with "Authorization: Bearer TOKEN"; a token serves --token-calls calls
(default 1000000), then answers code 4 (expired). Contracts, per ra:
  start  needs mva, ra, plate_number, driver_name, driver_phone, ts_expected, te_expected (ints
         where the seed says int) and start_location {lat, lon} or {address}: 11 for a missing
         or mistyped field, 12 for a bad location, 1 for a car with mva >= 900000 (unknown),
         20 when the ra is already active, 19 when it has ended, 22 when the car was in another
         active contract (closed, this one created), else 0 with the car's odometer;
  update 3 for an unknown ra, 19 for an ended one, 2 with nothing to change, else 0;
  stop   3 for an unknown ra (a stop before its start), 19 for an ended one, 12 without a
         good end_location, else 0 (the contract ends).

Test hooks (see vin_server.py for the shared faults: 429, 500, 503, 401, hang, drop, drop_after;
they spare generate_token unless {"set_fault_token": true}):
  GET  /_stats    requests, token_calls, refused (code 4 answers), starts and stops (requests
                  per ra that reached the contract logic), order (the commands per ra in the
                  order they were taken), max_starts, max_stops, contracts (ra → state),
                  last (ra → cmd → the last request body taken), tokens (every one issued), log
  POST /_control  also {"set_code500": N} (the next N contract calls act, then answer code
                  500), {"set_bad_tokens": true} (tokens are generated but never accepted),
                  {"set_stop_code": 6 or 7} (every contract call answers it), {"set_token_calls": N}
                  (tokens issued from then on serve N calls), {"set_hold_last": true} (the answer
                  to a token's last good call waits until the next generate_token arrives, at
                  most 10 s, and says "held" in message; that generate_token answers only after
                  {"release_token": true}, at most 120 s later)
"""
import json
import os
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vin_server import Handler, State, serve  # noqa: E402

START_REQ = ["mva", "ra", "plate_number", "driver_name", "driver_phone", "ts_expected",
             "te_expected", "start_location"]
INTS = ["mva", "ra", "driver_rating", "ts_expected", "te_expected", "ts_real", "te_real",
        "mileage_limit"]


def good_location(loc):
    if not isinstance(loc, dict):
        return False
    if "lat" in loc or "lon" in loc:
        lat, lon = loc.get("lat"), loc.get("lon")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lat, lon)):
            return False
        return -90 <= lat <= 90 and -180 <= lon <= 180
    return isinstance(loc.get("address"), str) and loc["address"] != ""


class RentalHandler(Handler):
    def faultable(self, body):
        if self.state.fault_token:
            return True
        try:
            return json.loads(body or b"{}").get("cmd") != "generate_token"
        except (ValueError, AttributeError):
            return True

    def answer(self, code, message="", odo="0"):
        self.reply(200, {"code": code, "odo": odo, "message": message or ("Success" if code == 0 else "Error %d" % code)})

    def service(self, method, body, drop_after):
        st = self.state
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            self.answer(11, "Bad JSON")
            return
        if not isinstance(req, dict):
            self.answer(11, "Bad JSON")
            return
        cmd = req.get("cmd")
        if cmd == "generate_token":
            with st.lock:
                st.extra["token_calls"] += 1
            if method != "GET":
                self.answer(11, "generate_token is a GET")
                return
            if req.get("login") != st.login or req.get("password") != st.password:
                self.answer(4, "Authentication error")
                return
            tok = secrets.token_hex(16)
            with st.lock:
                st.tokens[tok] = st.token_calls
                st.extra["tokens"].append(tok)
                release = st.holding
            if release:
                # The held answer goes now; this one when the test says, once it has seen
                # the client read the held one while its renewal was under way.
                st.token_asked.set()
                st.token_release.wait(120)
                st.token_release.clear()
            self.answer(0, tok)
            return
        if method != "POST" or cmd not in ("start", "update", "stop"):
            self.answer(11, "Bad request")
            return
        auth = self.headers.get("Authorization") or ""
        tok = auth[7:] if auth.startswith("Bearer ") else None
        hold = False
        with st.lock:
            left = st.tokens.get(tok, 0)
            if st.bad_tokens or left <= 0:
                st.extra["refused"] += 1
                refused = True
            else:
                st.tokens[tok] = left - 1
                refused = False
                hold = st.hold_last and left == 1
                if hold:
                    st.holding = True
                    st.token_asked.clear()
        if refused:
            self.answer(4, "Authentication error")
            return
        if st.stop_code:
            self.answer(int(st.stop_code))
            return
        with st.lock:
            code, odo = self.contract(cmd, req)
            fail500 = st.code500 > 0
            if fail500:
                st.code500 -= 1
        if drop_after:
            self.drop()
            return
        if fail500:
            self.answer(500, "Internal server error")
            return
        if hold:
            st.token_asked.wait(10)
            with st.lock:
                st.holding = False
                st.extra["held"] += 1
            self.answer(code, "held", odo)
            return
        self.answer(code, "", odo)

    def contract(self, cmd, req):
        """The seed's state machine; called with the lock held. Returns (code, odo)."""
        st = self.state
        x = st.extra
        for k in INTS:
            if k in req and (not isinstance(req[k], int) or isinstance(req[k], bool)):
                return 11, "0"
        if not isinstance(req.get("ra"), int):
            return 11, "0"
        ra = str(req["ra"])
        x["order"].setdefault(ra, []).append(cmd)
        x["last"].setdefault(ra, {})[cmd] = req
        c = st.contracts.get(ra)
        if cmd == "start":
            x["starts"][ra] = x["starts"].get(ra, 0) + 1
            if any(k not in req for k in START_REQ):
                return 11, "0"
            if not good_location(req["start_location"]):
                return 12, "0"
            mva = req["mva"]
            if mva >= 900000:
                return 1, "0"
            if c is not None:
                return (20 if c["state"] == "active" else 19), "0"
            code = 0
            other = st.cars.get(mva)
            if other is not None and st.contracts[other]["state"] == "active":
                st.contracts[other]["state"] = "closed"
                code = 22
            st.cars[mva] = ra
            st.odo[mva] = st.odo.get(mva, 1000 + mva) + 7
            st.contracts[ra] = {"state": "active", "mva": mva}
            return code, str(st.odo[mva])
        if c is None:
            if cmd == "stop":
                x["stops"][ra] = x["stops"].get(ra, 0) + 1
            return 3, "0"
        if c["state"] != "active":
            if cmd == "stop":
                x["stops"][ra] = x["stops"].get(ra, 0) + 1
            return 19, "0"
        mva = c["mva"]
        if cmd == "update":
            if not any(k not in ("cmd", "ra") for k in req):
                return 2, "0"
            st.odo[mva] += 3
            return 0, str(st.odo[mva])
        x["stops"][ra] = x["stops"].get(ra, 0) + 1
        if not good_location(req.get("end_location")):
            return 12, "0"
        c["state"] = "ended"
        st.odo[mva] += 11
        return 0, str(st.odo[mva])

    def hooks(self, method, body):
        st = self.state
        if self.path == "/_control" and method == "POST" and \
                json.loads(body or b"{}").get("release_token"):
            st.token_release.set()
        with st.lock:
            st.extra["max_starts"] = max(st.extra["starts"].values(), default=0)
            st.extra["max_stops"] = max(st.extra["stops"].values(), default=0)
            st.extra["contracts"] = {k: v["state"] for k, v in st.contracts.items()}
        return super().hooks(method, body)


def main(argv):
    port = int(argv[1])
    st = State()
    st.login, st.password = "rental-admin", "rental-secret"
    st.token_calls = 1000000
    i = 2
    while i < len(argv):
        a, v = argv[i], argv[i + 1]
        if a == "--login":
            st.login = v
        elif a == "--password":
            st.password = v
        elif a == "--token-calls":
            st.token_calls = int(v)
        elif a == "--latency":
            st.latency = float(v)
        else:
            sys.exit("rental_server.py: unknown option " + a)
        i += 2
    st.tokens, st.contracts, st.cars, st.odo = {}, {}, {}, {}
    st.code500, st.bad_tokens, st.stop_code, st.fault_token = 0, False, 0, False
    st.hold_last, st.holding, st.token_asked = False, False, threading.Event()
    st.token_release = threading.Event()
    st.extra.update({"token_calls": 0, "refused": 0, "held": 0, "starts": {}, "stops": {},
                     "order": {},
                     "max_starts": 0, "max_stops": 0, "contracts": {}, "last": {}, "tokens": []})
    serve(RentalHandler, st, port)


if __name__ == "__main__":
    main(sys.argv)
