#!/usr/bin/env python3
"""gen-backlog.py: writes the backlog benchmark's mailbox: N distinct messages from a registered
user, each carrying a ~20 KB windows-1251 remains CSV (';', CRLF, base64), as Maildir files.

usage: gen-backlog.py DIR [--count N] [--user ADDR] [--key KEY] [--warehouse CODE] [--rows R]
Writes DIR/new/NNNNNN.bench (DIR is created). Message i has Message-ID <backlog-i@shop.example>,
a Date one second after message i-1, and its own articles, so that no two are duplicates.
"""
import argparse
import base64
import os
import time

BASE_DATE = 1795327200  # 2026-11-22 06:00:00 +0000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--user", default="dealer@shop.example")
    ap.add_argument("--key", default="0123456789abcdef0123456789abcdef")
    ap.add_argument("--warehouse", default="Склад1")
    ap.add_argument("--rows", type=int, default=800)
    a = ap.parse_args()
    new = os.path.join(a.dir, "new")
    os.makedirs(new, exist_ok=True)
    os.makedirs(os.path.join(a.dir, "cur"), exist_ok=True)
    os.makedirs(os.path.join(a.dir, "tmp"), exist_ok=True)
    b = "sg-backlog-boundary"
    for i in range(a.count):
        rows = ["Код склада;Артикул;Остаток"]
        rows += ["%s;КЗ%05d-%04d;%d" % (a.warehouse, i, r, (i * 7 + r) % 1000)
                 for r in range(a.rows)]
        csv = ("\r\n".join(rows) + "\r\n").encode("cp1251")
        body = base64.encodebytes(csv).decode("ascii").replace("\n", "\r\n")
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(BASE_DATE + i))
        msg = "\r\n".join([
            "Return-Path: <%s>" % a.user,
            "From: Dealer <%s>" % a.user,
            "To: api@stock.example",
            "Subject: remains",
            "Date: %s" % date,
            "Message-ID: <backlog-%d@shop.example>" % i,
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="%s"' % b,
            "",
            "--" + b,
            "Content-Type: text/plain; charset=utf-8",
            "",
            a.key,
            "",
            "--" + b,
            'Content-Type: text/csv; charset=windows-1251; name="remains.csv"',
            'Content-Disposition: attachment; filename="remains.csv"',
            "Content-Transfer-Encoding: base64",
            "",
            body.rstrip("\r\n"),
            "--" + b + "--",
            "",
        ])
        with open(os.path.join(new, "%06d.bench" % i), "wb") as f:
            f.write(msg.encode("ascii"))


if __name__ == "__main__":
    main()
