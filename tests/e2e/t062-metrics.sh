#!/bin/bash
# t062-metrics.sh: `stockgate status --format prometheus` (issue 11): the figures of `status` in
# the Prometheus text format, read back by promtool and by tests/promcheck.py (one HELP and TYPE
# a family, samples together, names, escaped labels); --output replaces the file whole; a table
# a feature has not made yet leaves its family out.
. "$(dirname "$0")/../lib.sh"
KEY=0123456789abcdef0123456789abcdef
prom() { sg status --format prometheus "$@"; }
# value NAME{LABELS}: the value of one sample of $T/m.prom ("" when absent).
value() { K=$1 awk '$1 == ENVIRON["K"] { print $2 }' "$T/m.prom"; }
strict() { # FILE: both readers accept it
	promtool check metrics <"$1" >"$T/promtool.out" 2>&1 || { sed 's/^/#   /' "$T/promtool.out"; return 1; }
	$PY "$SG_TOP/tests/promcheck.py" <"$1" >/dev/null
}

write_config </dev/null
check "dealer and user" setup_dealer D1 $KEY
prom >"$T/m.prom"; rc=$?
is "$rc" 0 "a fresh db: exit 0"
check "a fresh db: the strict readers accept the output" strict "$T/m.prom"
is "$(value stockgate_deferred_messages)" 0 "no deferral yet"
is "$(value stockgate_last_poll_success)" "" "no poll yet: no last-poll sample"
is "$(value stockgate_receiver_unmatched_deliveries)" 0 "no delivery yet"

# Messages: applied, failed (a file with row_errors), a duplicate; then one deferred (the mirror is down).
for m in 01-warehouses 02-remains-error 03-remains 01-warehouses; do
	sg process "$FIX/demo/$m.eml" >/dev/null 2>&1
done
DEAD=$(free_port)
write_config <<EOF
[mirror]
url = http://127.0.0.1:$DEAD/restapi
tls = off
EOF
sed 's/demo-1@/metrics-deferred@/' "$FIX/demo/01-warehouses.eml" >"$T/d.eml"
sg process "$T/d.eml" >/dev/null 2>&1
is "$?" 75 "a message deferred (the mirror is down)"

# A poll that succeeded (an empty Maildir), then batch jobs and journal rows, one kind with a
# name that needs every escape of a label value.
mkdir -p "$T/Maildir/cur" "$T/Maildir/new" "$T/Maildir/tmp"
write_config <<EOF
[source]
url = maildir:$T/Maildir
EOF
sg poll >/dev/null 2>&1
sqlite3 "$T/stockgate.db" <<'SQL'
INSERT INTO jobs (kind, input_sha256, created, state) VALUES ('vin', 'a', 1, 'running'), ('vin', 'b', 1, 'running'), ('frame', 'c', 1, 'done');
INSERT INTO jobs (kind, input_sha256, created, state) VALUES ('we"ird\kind' || char(10) || 'x', 'd', 1, 'pending');
INSERT INTO journal (kind, input_sha256, row, state) VALUES ('vin', 'a', 2, 'ok'), ('vin', 'a', 3, 'sent'), ('vin', 'a', 4, 'ok');
SQL
prom >"$T/m.prom"; rc=$?
is "$rc" 0 "after a good poll: exit 0"
check "the strict readers accept the output" strict "$T/m.prom"
is "$(value 'stockgate_messages{outcome="applied",reason=""}')" 2 "two messages applied"
is "$(value 'stockgate_messages{outcome="failed",reason=""}')" 1 "one failed (its file rejected, row_errors)"
is "$(value 'stockgate_messages{outcome="deferred",reason="mirror_unavailable"}')" 1 "one deferred, mirror_unavailable"
is "$(value stockgate_duplicate_messages_total)" 1 "one duplicate"
is "$(value stockgate_deferred_messages)" 1 "one deferral"
is "$(value 'stockgate_reports_pending{kind="message"}')" 0 "no report pending (dir: outbox)"
is "$(value stockgate_last_poll_success)" 1 "the last poll succeeded"
like "$(value stockgate_last_poll_timestamp_seconds)" '^1[0-9]{9}$' "the last poll's time, in Unix seconds"
is "$(value 'stockgate_batch_jobs{kind="vin",state="running"}')" 2 "batch jobs by kind and state"
is "$(value 'stockgate_batch_jobs{kind="we\"ird\\kind\nx",state="pending"}')" 1 "a label value with a quote, a backslash and a line feed, escaped"
is "$(value 'stockgate_batch_rows{kind="vin",state="sent"}')" 1 "batch rows by state (sent: charged, no answer)"
is "$(value 'stockgate_batch_rows{kind="vin",state="ok"}')" 2 "batch rows ok"
is "$(grep -c '^# TYPE stockgate_reports_pending ' "$T/m.prom")" 1 "a family of two tables has one TYPE"

# --output: the same text, written whole, mode 644.
mkdir -p "$T/textfile"
prom --output "$T/textfile/stockgate.prom"
is "$?" 0 "--output: exit 0"
is "$(cat "$T/textfile/stockgate.prom")" "$(cat "$T/m.prom")" "--output writes what standard output shows"
is "$(stat -c %a "$T/textfile/stockgate.prom")" 644 "--output: mode 644 (node_exporter reads it)"
is "$(ls "$T/textfile")" "stockgate.prom" "--output leaves no temporary file"
sg status --format json --output "$T/x" >/dev/null 2>&1
is "$?" 64 "--output without --format prometheus: usage error"

# A failed poll: exit 69, and the file is still written, saying so.
write_config <<EOF
[source]
url = imap://127.0.0.1:$DEAD/INBOX
username = u
password = p
tls = off
timeout = 2
EOF
sg poll >/dev/null 2>&1
prom --output "$T/textfile/stockgate.prom"
is "$?" 69 "after a failed poll: exit 69"
cp "$T/textfile/stockgate.prom" "$T/m.prom"
is "$(value stockgate_last_poll_success)" 0 "… and the file says the last poll failed"

# A delivery that matched no row counts.
sqlite3 "$T/stockgate.db" "INSERT INTO deliveries (received, body_sha256) VALUES (0, 'x')"
prom >"$T/m.prom"
is "$(value stockgate_receiver_unmatched_deliveries)" 1 "an unmatched delivery counts"
check "… and the strict readers accept it" strict "$T/m.prom"

# The readers are strict: each refuses a broken text.
printf '# HELP a_x x\n# TYPE a_x gauge\na_x{k="1"} 1\n# HELP b y\n# TYPE b gauge\nb 1\na_x{k="2"} 2\n' >"$T/bad1"
$PY "$SG_TOP/tests/promcheck.py" <"$T/bad1" >/dev/null 2>&1
is "$?" 1 "promcheck refuses a family whose samples are apart"
printf '# HELP a x\n# TYPE a gauge\na{k="a\\q"} 1\n' >"$T/bad2"
$PY "$SG_TOP/tests/promcheck.py" <"$T/bad2" >/dev/null 2>&1
is "$?" 1 "promcheck refuses a bad escape"
printf '# HELP a x\n# TYPE a gauge\na 1\n# HELP a x\n# TYPE a gauge\na 2\n' >"$T/bad3"
promtool check metrics <"$T/bad3" >/dev/null 2>&1
is "$?" 1 "promtool refuses a family given twice"
done_testing
