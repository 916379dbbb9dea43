#!/usr/bin/python3
"""smtp_capture.py: a capturing SMTP server for stockgate's scenarios (aiosmtpd, 127.0.0.1).

Each accepted message is written to DIR as NNN.eml (the DATA bytes exactly as received, after
dot-unstuffing) and NNN.env (one "MAIL FROM:<a>" line, then one "RCPT TO:<b>" line a recipient).
DIR/commands.log records every command line the client sent (AUTH arguments masked).

Usage: smtp_capture.py DIR [--port N] [--fail mail|rcpt|data] [--code 451]
                           [--drop mail|rcpt|data] [--tls starttls|implicit --cert F --key F]
                           [--auth USER:PASS] [--xoauth2 USER:TOKEN]
--xoauth2 offers AUTH XOAUTH2 (Google's and Microsoft's OAuth2 mechanism) and requires it: only
the client response base64("user=USER\x01auth=Bearer TOKEN\x01\x01") is accepted, sent as the
initial response or after an empty 334; a wrong one gets the error challenge those servers send
(334 + base64 JSON), then 535 once the client answers it. Without the option XOAUTH2 is not
offered. DIR/auth.log gets one line an attempt: "XOAUTH2 ok" or "XOAUTH2 refused" (no secrets).
Prints the port on the first line of stdout, then serves until killed.
"""
import argparse
import asyncio
import base64
import binascii
import hmac
import json
import os
import socket
import ssl
import sys

from aiosmtpd.smtp import MISSING, SMTP, AuthResult


class Handler:
    def __init__(self, opts):
        self.opts = opts
        self.n = 0

    def _auth_log(self, line):
        with open(os.path.join(self.opts.dir, 'auth.log'), 'a') as fh:
            fh.write(line + '\n')

    async def auth_XOAUTH2(self, server, args):
        """AUTH XOAUTH2 [initial-response]; offered only with --xoauth2."""
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await server.push('501 5.5.2 Can\'t decode base64')
                return AuthResult(success=False, handled=True)
        else:
            blob = await server.challenge_auth('')
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        user, _, token = self.opts.xoauth2.partition(':')
        want = ('user=%s\x01auth=Bearer %s\x01\x01' % (user, token)).encode()
        if hmac.compare_digest(blob, want):
            self._auth_log('XOAUTH2 ok')
            return AuthResult(success=True, auth_data=user)
        self._auth_log('XOAUTH2 refused')
        # As Gmail and Outlook do: an error challenge, answered by the client with an empty
        # response (or \x01), then the final refusal.
        err = json.dumps({'status': '401', 'schemes': 'bearer', 'scope': 'mail'})
        reply = await server.challenge_auth(err)
        if reply is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False,
                          message='535 5.7.8 Username and Password not accepted')

    def _fault(self, server, stage):
        if self.opts.drop == stage:
            server.transport.close()
            return '421 dropping the connection (test)'
        if self.opts.fail == stage:
            return '%d test failure at %s' % (self.opts.code, stage.upper())
        return None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        f = self._fault(server, 'mail')
        if f:
            return f
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return '250 OK'

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        f = self._fault(server, 'rcpt')
        if f:
            return f
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return '250 OK'

    async def handle_DATA(self, server, session, envelope):
        f = self._fault(server, 'data')
        if f:
            return f
        self.n += 1
        base = os.path.join(self.opts.dir, '%03d' % self.n)
        with open(base + '.tmp', 'wb') as fh:
            fh.write(envelope.original_content)
        with open(base + '.env', 'w') as fh:
            fh.write('MAIL FROM:<%s>\n' % envelope.mail_from)
            for r in envelope.rcpt_tos:
                fh.write('RCPT TO:<%s>\n' % r)
        os.rename(base + '.tmp', base + '.eml')
        return '250 OK queued as %03d' % self.n


class Logged(SMTP):
    """Records each command line as received, before aiosmtpd parses it."""

    async def push(self, status):
        await super().push(status)

    def _log(self, line):
        with open(os.path.join(self.event_handler.opts.dir, 'commands.log'), 'ab') as fh:
            fh.write(line)

    async def smtp_AUTH(self, arg):
        self._log(b'AUTH ' + (arg or '').split(' ')[0].encode() + b' ***\n')
        return await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg):
        self._log(b'MAIL ' + (arg or '').encode('utf-8', 'surrogateescape') + b'\n')
        return await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        self._log(b'RCPT ' + (arg or '').encode('utf-8', 'surrogateescape') + b'\n')
        return await super().smtp_RCPT(arg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('dir')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--fail', choices=['mail', 'rcpt', 'data'])
    ap.add_argument('--code', type=int, default=451)
    ap.add_argument('--drop', choices=['mail', 'rcpt', 'data'])
    ap.add_argument('--tls', choices=['starttls', 'implicit'])
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('--auth')
    ap.add_argument('--xoauth2', metavar='USER:TOKEN')
    opts = ap.parse_args()
    os.makedirs(opts.dir, exist_ok=True)

    ctx = None
    if opts.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(opts.cert, opts.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        if not opts.auth:
            return AuthResult(success=False, handled=False)
        user, _, pw = opts.auth.partition(':')
        ok = (getattr(auth_data, 'login', b'') == user.encode() and
              getattr(auth_data, 'password', b'') == pw.encode())
        return AuthResult(success=ok, handled=False)

    handler = Handler(opts)

    def factory():
        return Logged(handler, decode_data=False, hostname='capture.test',
                      tls_context=ctx if opts.tls == 'starttls' else None,
                      require_starttls=opts.tls == 'starttls',
                      authenticator=authenticator if opts.auth else None,
                      auth_required=bool(opts.auth or opts.xoauth2), auth_require_tls=False,
                      auth_exclude_mechanism=None if opts.xoauth2 else ['XOAUTH2'])

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(('127.0.0.1', opts.port))
    port = sock.getsockname()[1]

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        factory, sock=sock, ssl=ctx if opts.tls == 'implicit' else None))
    for s in server.sockets:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(port, flush=True)
    with open(os.path.join(opts.dir, 'port'), 'w') as fh:
        fh.write('%d\n' % port)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    sys.exit(main())
