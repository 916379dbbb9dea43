#!/usr/bin/python3
"""hang_server.py: a peer that stops answering, for stockgate's timeout tests.

usage: hang_server.py DIR MODE
  MODE silent       accept connections and never say anything (no greeting)
       imap-login   an IMAP server that greets, lists its capabilities, accepts any login,
                    then answers no command (SELECT and the rest hang)
       smtp-data    an SMTP server that takes the envelope and the data, then never answers
                    the end of the data
Writes its port to DIR/port and one line per connection to DIR/log. Stops on SIGTERM.
"""
import os
import socket
import sys
import threading
import time


def send(c, text):
    c.sendall(text.encode())


def lines(c):
    buf = b""
    while True:
        data = c.recv(65536)
        if not data:
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line.rstrip(b"\r").decode("utf-8", "replace")


def hang():
    while True:
        time.sleep(3600)


def imap_login(c):
    send(c, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] test server ready\r\n")
    it = lines(c)
    for line in it:
        tag, _, rest = line.partition(" ")
        cmd = rest.split(" ")[0].upper()
        if cmd == "CAPABILITY":
            send(c, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n%s OK done\r\n" % tag)
        elif cmd == "LOGIN":
            send(c, "%s OK logged in\r\n" % tag)
        elif cmd == "AUTHENTICATE":
            if len(rest.split(" ")) < 3:       # no initial response: ask for it
                send(c, "+ \r\n")
                next(it, None)
            send(c, "%s OK logged in\r\n" % tag)
        else:
            hang()


def smtp_data(c):
    send(c, "220 test ESMTP\r\n")
    in_data = False
    for line in lines(c):
        if in_data:
            if line == ".":
                hang()
            continue
        cmd = line.split(" ")[0].upper()
        if cmd in ("EHLO", "HELO"):
            send(c, "250-test\r\n250 8BITMIME\r\n")
        elif cmd == "DATA":
            send(c, "354 go on\r\n")
            in_data = True
        elif cmd == "QUIT":
            send(c, "221 bye\r\n")
            return
        else:
            send(c, "250 ok\r\n")


def serve(c, mode, log):
    with open(log, "a") as f:
        f.write(mode + "\n")
    try:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if mode == "silent":
            hang()
        elif mode == "imap-login":
            imap_login(c)
        elif mode == "smtp-data":
            smtp_data(c)
    except OSError:
        pass


def main():
    d, mode = sys.argv[1], sys.argv[2]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    with open(os.path.join(d, "port.tmp"), "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, mode, os.path.join(d, "log")),
                         daemon=True).start()


if __name__ == "__main__":
    main()
