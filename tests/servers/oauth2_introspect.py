#!/usr/bin/python3
"""oauth2_introspect.py: an OAuth2 token introspection endpoint (RFC 7662) for the scenarios.

Dovecot's oauth2 passdb asks it whether a bearer token is valid. Any path is served; the token is
taken from a POST body "token=…" (introspection_mode = post), from the query or the last path
segment of a GET (mode = get, the token appended to the URL), or from "Authorization: Bearer …"
(mode = auth). The answer is {"active": true, "username": USER} for the expected token only,
else {"active": false}.

Usage: oauth2_introspect.py DIR --token TOKEN [--user u] [--port N]
Prints the port on the first line of stdout and writes DIR/port, then serves until killed.
DIR/requests.log gets one line a request: "METHOD active" or "METHOD inactive" (never the token).
"""
import argparse
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


def make_handler(opts):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def _token(self, body):
            auth = self.headers.get('Authorization', '')
            if auth.lower().startswith('bearer '):
                return auth[7:].strip()
            form = parse_qs(body.decode('utf-8', 'replace'))
            if 'token' in form:
                return form['token'][0]
            u = urlsplit(self.path)
            q = parse_qs(u.query)
            for k in ('token', 'access_token'):
                if k in q:
                    return q[k][0]
            if u.query and '=' in u.query:
                return unquote(u.query.rsplit('=', 1)[1])
            return unquote(u.path.rsplit('/', 1)[-1])

        def _answer(self):
            n = int(self.headers.get('Content-Length') or 0)
            body = self.rfile.read(n) if n > 0 else b''
            tok = self._token(body)
            active = hmac.compare_digest(tok.encode(), opts.token.encode())
            doc = {'active': True, 'username': opts.user} if active else {'active': False}
            payload = json.dumps(doc).encode()
            with open(os.path.join(opts.dir, 'requests.log'), 'a') as fh:
                fh.write('%s %s\n' % (self.command, 'active' if active else 'inactive'))
            # The whole response in one write.
            head = ('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                    'Content-Length: %d\r\nConnection: close\r\n\r\n' % len(payload))
            self.wfile.write(head.encode() + payload)
            self.close_connection = True

        do_GET = _answer
        do_POST = _answer

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('dir')
    ap.add_argument('--token', required=True)
    ap.add_argument('--user', default='u')
    ap.add_argument('--port', type=int, default=0)
    opts = ap.parse_args()
    os.makedirs(opts.dir, exist_ok=True)
    srv = ThreadingHTTPServer(('127.0.0.1', opts.port), make_handler(opts))
    port = srv.server_address[1]
    print(port, flush=True)
    with open(os.path.join(opts.dir, 'port'), 'w') as fh:
        fh.write('%d\n' % port)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    sys.exit(main())
