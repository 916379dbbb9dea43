#!/bin/bash
# t023-reports.sh: the report message (SPEC 6): language, threading, Auto-Submitted, recipient, body
# with the first 50 errors, errors.csv (UTF-8 BOM, ';', formula cells neutralised with a leading ').
. "$(dirname "$0")/../lib.sh"
MAIL=$FIX/mail
write_config </dev/null
setup_dealer D1 0123456789abcdef0123456789abcdef dealer@shop.example
printf 'Адрес;Контакты;Код склада\nКурск;;D4R7WE\nТула;;СКЛАД-1\n' >"$T/wh.csv"
check "import warehouses" sg import warehouses --dealer D1 "$T/wh.csv" >/dev/null

# A python reader for one report: prints KEY<TAB>VALUE lines.
cat >"$T/rep.py" <<'PYEOF'
import email, email.policy, sys, csv, io
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
def out(k, v): print("%s\t%s" % (k, str(v).replace("\n", "\\n").replace("\t", "\\t")))
out("to", ",".join(a.addr_spec for h in m.get_all("to", []) for a in h.addresses))
out("cc", m.get_all("cc")); out("bcc", m.get_all("bcc"))
for h in ("subject", "in-reply-to", "references", "auto-submitted", "from"):
    out(h, (m[h] or "").strip())
out("own", any(k.lower().startswith("x-stockgate") for k in m.keys()))
body = m.get_body(("plain",))
out("body", body.get_content() if body else "")
csvs = [p for p in m.iter_attachments() if (p.get_filename() or "") == "errors.csv"]
out("ncsv", len(csvs))
if csvs:
    raw = csvs[0].get_payload(decode=True)
    out("bom", raw.startswith(b"\xef\xbb\xbf"))
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    out("csvrows", len(rows))
    out("csvhead", rows[0] if rows else "")
    out("csvall", " || ".join(";".join(r) for r in rows[1:]))
PYEOF
# rep FILE KEY: one value from the reader
rep() { $PY "$T/rep.py" "$1" | awk -F'\t' -v k="$2" '$1 == k { sub(/^[^\t]*\t/, ""); print; exit }'; }
# cyr TEXT: the number of Cyrillic words of 4+ letters (bash ranges depend on the locale; python does not)
cyr() { printf '%s' "$1" | $PY -c 'import re,sys; print(len(re.findall("[\u0400-\u04ff]{4,}", sys.stdin.read())))'; }
newest() { ls -t "$OUTBOX"/*.eml | head -1; }
run() { timeout 30 "$STOCKGATE" -c "$CONF" process "$1" 2>>"$T/stderr"; }

# 1. a Russian report for an applied file (Reply-To set to a third party)
j=$(run "$MAIL/25-reply-to.eml")
is "$(jf "$j" .outcome)/$(jf "$j" .report)" "applied/written" "25-reply-to: applied, report written"
r=$(newest)
is "$(rep "$r" to)" "dealer@shop.example" "To is the registry address, not Reply-To"
is "$(rep "$r" cc)/$(rep "$r" bcc)" "None/None" "no Cc, no Bcc"
is "$(rep "$r" in-reply-to)" "<corpus-25.20250303@shop.example>" "In-Reply-To is the original Message-ID"
like "$(rep "$r" references)" "<corpus-25.20250303@shop.example>" "References carries the original Message-ID"
is "$(rep "$r" auto-submitted)" "auto-replied" "Auto-Submitted: auto-replied"
is "$(rep "$r" own)" "True" "an X-Stockgate-* header marks the report as stockgate's own"
like "$(rep "$r" from)" "api@stock.example" "From is [report] from"
like "$(cyr "$(rep "$r" subject)$(rep "$r" body)")" "^([3-9]|[1-9][0-9]+)$" "Russian by default (3+ Russian words)"
like "$(rep "$r" subject)" "(remains|остатки|Остатки)" "subject names the method"
like "$(rep "$r" body)" "sklad1\\.csv" "body names the file"

# the report fed back in is recognised as stockgate's own: no reply, no loop
n=$(outbox_count)
j=$(run "$r")
is "$(jf "$j" .outcome)/$(jf "$j" .reason)" "rejected/own_report" "own report looping back: rejected own_report"
is "$(outbox_count)" "$n" "own report looping back: no reply"

# 2. formula cells: errors.csv neutralises them
j=$(run "$MAIL/45-formula-cells.eml")
r=$(newest)
is "$(rep "$r" ncsv)" "1" "errors.csv attached"
is "$(rep "$r" bom)" "True" "errors.csv starts with a UTF-8 BOM"
all=$(rep "$r" csvall)
like "$all" "'=HYPERLINK" "=HYPERLINK cell prefixed with '"
like "$all" "'@SUM\\(A1:A9\\)" "@SUM cell prefixed with '"
like "$all" "'-1" "-1 cell prefixed with '"
like "$all" "'\\+1\\.5" "+1.5 cell prefixed with '"
unlike "$all" "(^|;)[=+@-]" "no cell starts with = + - @"
like "$(rep "$r" csvhead)" "^\[.*,.*,.*\]$" "errors.csv header splits on ; into several columns"
like "$(rep "$r" body)" "formula\\.csv" "body names formula.csv"

# 3. sixty row errors: 50 in the body, 60 in errors.csv
j=$(run "$MAIL/48-sixty-errors.eml")
r=$(newest)
is "$(rep "$r" csvrows)" "61" "errors.csv: a header and all 60 errors"
body=$(rep "$r" body)
like "$body" "x50([^0-9]|$)" "body lists error 50 (value x50)"
unlike "$body" "x51([^0-9]|$)" "body stops at 50 errors (no x51)"
like "$body" "(^|[^0-9])51([^0-9]|$)" "body lists line 51 (error 50)"
like "$(rep "$r" csvall)" "x60" "errors.csv holds the 60th error"
like "$(rep "$r" csvall)" "sixty\\.csv" "errors.csv rows name the file"

# 4. English with language = en
write_config <<'CONF'
CONF
sed -i 's/^language = ru/language = en/' "$CONF"
j=$(run "$MAIL/43-header-only.eml")
r=$(newest)
is "$(jf "$j" .files[0].reason)" "empty_file" "43-header-only: empty_file"
is "$(cyr "$(rep "$r" subject)$(rep "$r" body)")" "0" "language = en: no Russian words"
like "$(rep "$r" body)" "[A-Za-z]{4,}" "language = en: English text"
is "$(rep "$r" in-reply-to)" "<corpus-43.20250303@shop.example>" "en: In-Reply-To"

# 5. a failure at message level is answered too, in the same way
j=$(run "$MAIL/41-unknown-subject.eml")
r=$(newest)
is "$(jf "$j" .reason)" unknown_method "41: unknown_method"
is "$(rep "$r" to)" "dealer@shop.example" "41: report to the registry address"
like "$(rep "$r" body)" "(warehouses|remains)" "41: the report says which subjects are understood"

# 6. a key never appears in a report
unlike "$(cat "$OUTBOX"/*.eml)" "0123456789abcdef0123456789abcdef" "no report contains the API key"
done_testing
