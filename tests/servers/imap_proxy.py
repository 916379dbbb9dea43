#!/usr/bin/python3
"""imap_proxy.py: a loopback TCP proxy in front of an IMAP server that cuts the connection at a
named command, so that a scenario breaks a poll at a known point instead of "after a while".

usage: imap_proxy.py DIR UPSTREAM_PORT [--cut-at REGEX [--nth N]] [--rewrite-size UID=N]
  Listens on 127.0.0.1 (a free port, written to DIR/port) and relays every connection to
  127.0.0.1:UPSTREAM_PORT. The Nth command line from a client (counted over all connections)
  that matches REGEX (case-insensitive, searched in the line after its tag) is not forwarded:
  both sockets are closed there, and DIR/cut records the line. Later matches pass: the cut
  comes once. Replies are relayed as they arrive, each in one write, with TCP_NODELAY.
  --rewrite-size UID=N: in every FETCH response line of the message with that UID, its
  RFC822.SIZE becomes N (a server that understates a size); literals pass untouched, and each
  rewritten line is appended to DIR/rewritten.
"""
import argparse
import os
import re
import socket
import threading

lock = threading.Lock()
state = {"seen": 0, "cut": False}


def close_both(a, b, close=False):
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if close:
            s.close()


FETCH_LINE = re.compile(rb"^\* \d+ FETCH \(", re.I)
LITERAL_END = re.compile(rb"\{(\d+)\+?\}\r?\n$")


class SizeRewriter:
    """Rewrites the RFC822.SIZE of one UID in the response lines of a stream, outside literals.
    feed() returns the bytes that can go on: whole lines and literal bytes, never a partial
    line (it is kept until its end comes)."""

    def __init__(self, args):
        self.uid, self.size = args.rewrite_size
        self.dir = args.dir
        self.buf = b""
        self.literal = 0  # bytes of a literal still to pass through

    def line(self, line):
        if not FETCH_LINE.match(line):
            return line
        m = re.search(rb"[ (]UID (\d+)[ )]", line, re.I)
        if not m or int(m.group(1)) != self.uid:
            return line
        new = re.sub(rb"(RFC822\.SIZE )\d+", rb"\g<1>%d" % self.size, line, flags=re.I)
        if new != line:
            with open(os.path.join(self.dir, "rewritten"), "a") as f:
                f.write(new.decode("latin-1").rstrip("\r\n") + "\n")
        return new

    def feed(self, data):
        self.buf += data
        out = b""
        while self.buf:
            if self.literal:
                n = min(self.literal, len(self.buf))
                out += self.buf[:n]
                self.buf = self.buf[n:]
                self.literal -= n
                continue
            if b"\n" not in self.buf:
                break
            line, self.buf = self.buf.split(b"\n", 1)
            line += b"\n"
            m = LITERAL_END.search(line)
            if m:
                self.literal = int(m.group(1))
            out += self.line(line)
        return out


def relay_down(up, down, args):
    rw = SizeRewriter(args) if args.rewrite_size else None
    try:
        while True:
            data = up.recv(65536)
            if not data:
                break
            if rw:
                data = rw.feed(data)
            if data:
                down.sendall(data)
    except OSError:
        pass
    close_both(up, down)


def handle(client, args, pattern):
    up = socket.create_connection(("127.0.0.1", args.upstream))
    for s in (client, up):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=relay_down, args=(up, client, args), daemon=True).start()
    buf = b""
    try:
        while True:
            data = client.recv(65536)
            if not data:
                break
            buf += data
            out = b""
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line += b"\n"
                cmd = line.split(b" ", 1)[1] if b" " in line else b""
                cut = False
                if pattern and pattern.search(cmd.decode("latin-1")):
                    with lock:
                        if not state["cut"]:
                            state["seen"] += 1
                            if state["seen"] == args.nth:
                                state["cut"] = cut = True
                if cut:
                    if out:
                        up.sendall(out)
                    with open(os.path.join(args.dir, "cut"), "w") as f:
                        f.write(line.decode("latin-1").rstrip("\r\n") + "\n")
                    raise ConnectionAbortedError
                out += line
            if out:
                up.sendall(out)
    except OSError:
        pass
    close_both(client, up, close=True)


def uid_size(arg):
    uid, _, size = arg.partition("=")
    if not uid.isdigit() or not size.isdigit():
        raise argparse.ArgumentTypeError("expected UID=N, got %r" % arg)
    return int(uid), int(size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("upstream", type=int)
    ap.add_argument("--cut-at")
    ap.add_argument("--nth", type=int, default=1)
    ap.add_argument("--rewrite-size", type=uid_size, metavar="UID=N")
    args = ap.parse_args()
    pattern = re.compile(args.cut_at, re.I) if args.cut_at else None
    os.makedirs(args.dir, exist_ok=True)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    tmp = os.path.join(args.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, os.path.join(args.dir, "port"))
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c, args, pattern), daemon=True).start()


if __name__ == "__main__":
    main()
