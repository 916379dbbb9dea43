#!/usr/bin/python3
"""promcheck.py: a strict reader of the Prometheus text format (0.0.4) for stockgate's tests.

usage: promcheck.py < FILE   exit 0 and print "families N samples M", or exit 1 naming the line.
What it holds the text to (promtool's parser, plus what it lets pass): metric and label names
match [a-zA-Z_:][a-zA-Z0-9_:]* / [a-zA-Z_][a-zA-Z0-9_]*; a label value escapes only \\\\, \\" and
\\n; each family has one HELP and one TYPE, before its samples, and its samples come together
(one family once); a type is counter, gauge, summary, histogram or untyped; a counter's name
ends in _total; no sample repeats its labels; values are numbers.
"""
import re
import sys

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*')
TYPES = {"counter", "gauge", "summary", "histogram", "untyped"}


def fail(n, why):
    sys.exit("promcheck: line %d: %s" % (n, why))


def labels(s, n):
    """Parses '{a="x",b="y"}' at the start of s; returns (tuple of pairs, rest)."""
    out, i = [], 1
    while True:
        if s[i] == '}':
            return tuple(out), s[i + 1:]
        m = LABEL.match(s, i)
        if not m:
            fail(n, "bad label name at %r" % s[i:])
        name, i = m.group(0), m.end()
        if s[i:i + 2] != '="':
            fail(n, "label %s: expected =\"" % name)
        i += 2
        val = []
        while s[i] != '"':
            if s[i] == '\\':
                if s[i + 1] not in '\\"n':
                    fail(n, "label %s: bad escape \\%s" % (name, s[i + 1]))
                val.append({'\\': '\\', '"': '"', 'n': '\n'}[s[i + 1]])
                i += 2
            elif s[i] == '\n':
                fail(n, "label %s: raw line feed" % name)
            else:
                val.append(s[i])
                i += 1
        i += 1
        if name in dict(out):
            fail(n, "label %s given twice" % name)
        out.append((name, "".join(val)))
        if s[i] == ',':
            i += 1
        elif s[i] != '}':
            fail(n, "expected , or } after label %s" % name)


def main():
    help_, type_, done, seen = {}, {}, set(), set()
    current, samples = None, 0
    text = sys.stdin.read()
    if text and not text.endswith("\n"):
        fail(text.count("\n") + 1, "the last line has no line feed")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, rest = line[2:6], line[7:]
            name, _, arg = rest.partition(" ")
            if not NAME.fullmatch(name):
                fail(n, "bad metric name %r" % name)
            table = help_ if kind == "HELP" else type_
            if name in table:
                fail(n, "second %s for %s" % (kind, name))
            if name in done or (current and current != name and name in help_):
                fail(n, "%s for %s after its samples or another family" % (kind, name))
            if kind == "TYPE":
                if arg not in TYPES:
                    fail(n, "unknown type %r" % arg)
                if arg == "counter" and not name.endswith("_total"):
                    fail(n, "counter %s does not end in _total" % name)
            elif not arg:
                fail(n, "empty HELP for %s" % name)
            table[name] = arg
            if current and current != name:
                done.add(current)
            current = name
            continue
        if line.startswith("#") or not line.strip():
            fail(n, "a comment or blank line that is not HELP or TYPE")
        m = NAME.match(line)
        if not m:
            fail(n, "bad metric name in %r" % line)
        name, rest = m.group(0), line[m.end():]
        lab = ()
        if rest.startswith("{"):
            lab, rest = labels(rest, n)
        if not rest.startswith(" "):
            fail(n, "no space before the value")
        parts = rest[1:].split(" ")
        try:
            float(parts[0])
            if len(parts) > 2 or (len(parts) == 2 and not parts[1].lstrip("-").isdigit()):
                raise ValueError
        except ValueError:
            fail(n, "bad value %r" % rest[1:])
        if name != current:
            fail(n, "sample of %s outside its family (HELP/TYPE of it first, samples together)" % name)
        if name not in type_ or name not in help_:
            fail(n, "%s has no HELP or TYPE" % name)
        if (name, lab) in seen:
            fail(n, "%s%s twice" % (name, dict(lab)))
        seen.add((name, lab))
        samples += 1
    print("families %d samples %d" % (len(type_), samples))


main()
