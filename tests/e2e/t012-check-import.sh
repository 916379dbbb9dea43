#!/bin/bash
# t012-check-import.sh: `check` judges a CSV offline; `import` applies it; exports show the result.
. "$(dirname "$0")/../lib.sh"
A=$FIX/csv/admin
write_config </dev/null

# check needs no configuration and changes nothing
out=$(STOCKGATE_CONFIG=$T/none.conf "$STOCKGATE" check warehouses "$A/warehouses-cp1251.csv"); rc=$?
is "$rc" 0 "check of a valid cp1251 file exits 0"
like "$out" "encoding windows-1251" "names the encoding"
like "$out" "delimiter ';'" "names the delimiter"
like "$out" "2 rows" "counts the rows"
json=$(sg check remains --format json "$A/remains-w1-cp1251.csv"); rc=$?
is "$rc" 0 "check --format json exits 0"
is "$(jf "$json" '.status + " " + .warehouse + " " + .encoding + " " + .delimiter + " " + (.rows|tostring)')" \
	"applied W1 windows-1251 ; 3" "the JSON record of the file"
out=$(sg check remains "$A/remains-bad.csv" 2>&1); rc=$?
is "$rc" 65 "check of a bad file exits 65"
like "$out" "remains-bad\\.csv:3: column 'quantity': " "a row error as file:line: column"
like "$out" "remains-bad\\.csv:5: column 'warehouse': " "every row error is listed"
like "$out" "rejected: row_errors" "the verdict"
json=$(sg check remains --format json "$A/remains-bad.csv")
is "$(jf "$json" '[.errors[].line]|map(tostring)|join(",")')" "3,4,5" "JSON lists the errors' lines"
sg check remains "$T/none.csv" 2>/dev/null; is "$?" 66 "check of a missing file exits 66"
sg check stock "$A/remains-bad.csv" 2>/dev/null; is "$?" 64 "check of an unknown kind exits 64"
is "$(sqlite3 "$T/stockgate.db" 'select count(*) from sqlite_master' 2>/dev/null || echo 0)" "0" \
	"check did not create the store"

# import
setup_dealer
sg import remains --dealer D1 "$A/remains-w1-cp1251.csv" >/dev/null 2>&1; rc=$?
is "$rc" 65 "remains for a warehouse the dealer lacks: 65"
json=$(sg import warehouses --dealer D1 "$A/warehouses-cp1251.csv" 2>/dev/null); rc=$?
is "$rc" 0 "import warehouses exits 0"
is "$(jf "$json" '.status + " " + (.added|tostring)')" "applied 2" "two warehouses added"
json=$(sg import remains --dealer D1 --dry-run "$A/remains-w1-cp1251.csv" 2>/dev/null); rc=$?
is "$rc" 0 "import --dry-run exits 0"
is "$(sg remains export --dealer D1)" "warehouse,article,quantity" "--dry-run changed nothing"
json=$(sg import remains --dealer D1 "$A/remains-w1-cp1251.csv" 2>/dev/null); rc=$?
is "$rc" 0 "import remains exits 0"
is "$(jf "$json" '.status + " " + .warehouse + " " + (.rows|tostring) + " " + (.added|tostring)')" \
	"applied W1 3 3" "the file result"
is "$(sg remains export --dealer D1)" "$(cat "$A/remains-w1.expected.csv")" "remains CSV export"
is "$(sg remains export --dealer D1 --format json)" "$(cat "$A/remains-w1.expected.json")" \
	"remains JSON export"
is "$(sg warehouses list --dealer D1)" "$(cat "$A/warehouses.expected.csv")" "warehouses CSV export"
json=$(sg import remains --dealer D1 "$A/remains-bad.csv" 2>"$T/err"); rc=$?
is "$rc" 65 "import of a bad file exits 65"
is "$(jf "$json" '.status + " " + .reason')" "rejected row_errors" "rejected row_errors"
like "$(cat "$T/err")" "remains-bad\\.csv:3: column 'quantity'" "errors on stderr with line and column"
is "$(sg remains export --dealer D1)" "$(cat "$A/remains-w1.expected.csv")" "a rejected file changes nothing"
sg import remains --dealer D9 "$A/remains-w1-cp1251.csv" 2>/dev/null; is "$?" 66 "unknown dealer: 66"
sg import remains --dealer D1 "$T/none.csv" 2>/dev/null; is "$?" 66 "missing file: 66"
sg import remains "$A/remains-w1-cp1251.csv" 2>/dev/null; is "$?" 64 "no --dealer: 64"
done_testing
