#!/usr/bin/python3
"""imap_proxy.py: a loopback TCP proxy in front of an IMAP server that cuts the connection at a
named command, so that a scenario breaks a poll at a known point instead of "after a while".

usage: imap_proxy.py DIR UPSTREAM_PORT --cut-at REGEX [--nth N]
  Listens on 127.0.0.1 (a free port, written to DIR/port) and relays every connection to
  127.0.0.1:UPSTREAM_PORT. The Nth command line from a client (counted over all connections)
  that matches REGEX (case-insensitive, searched in the line after its tag) is not forwarded:
  both sockets are closed there, and DIR/cut records the line. Later matches pass: the cut
  comes once. Replies are relayed as they arrive, each in one write, with TCP_NODELAY.
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


def relay_down(up, down):
    try:
        while True:
            data = up.recv(65536)
            if not data:
                break
            down.sendall(data)
    except OSError:
        pass
    close_both(up, down)


def handle(client, args, pattern):
    up = socket.create_connection(("127.0.0.1", args.upstream))
    for s in (client, up):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=relay_down, args=(up, client), daemon=True).start()
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
                if pattern.search(cmd.decode("latin-1")):
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("upstream", type=int)
    ap.add_argument("--cut-at", required=True)
    ap.add_argument("--nth", type=int, default=1)
    args = ap.parse_args()
    pattern = re.compile(args.cut_at, re.I)
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
