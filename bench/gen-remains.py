#!/usr/bin/env python3
"""gen-remains.py: writes a deterministic remains file for the benchmark (windows-1251, ';', CRLF).

usage: gen-remains.py OUT.csv [--rows N] [--warehouse CODE] [--seed S]
The header is "Код склада;Артикул;Остаток"; every article is distinct, so the file is valid
remains for one warehouse. 1,000,000 rows make about 21 MB.
"""
import argparse
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--warehouse", default="Склад1")
    ap.add_argument("--seed", type=int, default=20261122)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    wh = a.warehouse
    with open(a.out, "w", encoding="cp1251", newline="") as f:
        f.write("Код склада;Артикул;Остаток\r\n")
        chunk = []
        for i in range(a.rows):
            # Cyrillic article prefixes, so the decoder really converts every row.
            art = "%s%07d" % ("КЗ" if i % 3 else "АБ", i)
            chunk.append("%s;%s;%d\r\n" % (wh, art, rnd.randrange(0, 1000)))
            if len(chunk) == 10000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))


if __name__ == "__main__":
    main()
