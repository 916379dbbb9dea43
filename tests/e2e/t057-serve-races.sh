#!/bin/bash
# t057-serve-races.sh: `stockgate serve` racing itself and `batch vin`: two deliveries of one
# row's report with different bytes (held at the named pause point serve-file-written) leave the
# row naming a file that holds the bytes of the delivery it records; a report the service
# delivers before it answers the request (so before `batch vin` records the row as waiting) is
# filed with its row, not left unknown; a chunked body past max_body is refused at once.
. "$(dirname "$0")/../lib.sh"

TOKEN=SGCANARYvin0123456789
SECRET=SGCANARYsecret0123456789abcdef0123456789
PORT=$(free_port) SPORT=$(free_port)
CB=http://127.0.0.1:$SPORT/vin/$SECRET
URL=http://127.0.0.1:$PORT
sg_bg $PY "$SG_TOP/tests/servers/vin_server.py" "$PORT" --token "$TOKEN" --callback "$CB"
wait_port "$PORT" || { notok "vin emulator started"; done_testing; exit 1; }
printf '%s\n' "$SECRET" >"$T/secret"; chmod 600 "$T/secret"
write_config <<EOF2
$(vin_serve_config)
# One connection a receiver thread (libmicrohttpd shares the limit among its 4): a delivery held
# at the pause point holds its thread, and the next connection goes to another.
max_connections = 4
EOF2
DB=$T/stockgate.db
q() { sqlite3 "$DB" "$1"; }
unknown() { sg status --format json | jq -r .deliveries_unknown; }
# one_row FILE VIN: a list of one row.
one_row() { printf 'vin,check_type,brand,language\n%s,check_data_bmw_full,BMW,ru\n' "$2" >"$1"; }
# row_sql FILE: the FROM and WHERE of the journal rows of the list FILE.
row_sql() { echo "FROM journal WHERE kind = 'vin' AND input_sha256 = '$(sha256sum "$1" | cut -d' ' -f1)'"; }
# post_report ID PDF: a multipart delivery of the report PDF for the queue's ID; prints the HTTP code.
post_report() {
	curl -s -o /dev/null -w '%{http_code}' -F "id=$1" -F status=ok \
		-F "file=@$2;type=application/pdf" "$CB"
}
# reached N: what the Nth passing of the pause point wrote into its FIFO (it is held there now).
reached() { timeout 60 cat "$T/pause.$1"; }
release() { timeout 60 sh -c 'echo go >"$1"' _ "$T/pause.$1"; }

# The first three deliveries are held at serve-file-written, each on its own FIFO; later ones
# pass (no FIFO for them).
mkfifo "$T/pause.1" "$T/pause.2" "$T/pause.3"
SG_PAUSE=serve-file-written SG_PAUSE_FIFO=$T/pause \
	"$STOCKGATE" -c "$CONF" serve 2>>"$T/serve.log" & SERVE_PID=$!
_pids+=($SERVE_PID)
wait_port "$SPORT" || { notok "serve started"; done_testing; exit 1; }
printf '%%PDF-1.4\nthe first delivery of the report\n%%%%EOF\n' >"$T/A.pdf"
printf '%%PDF-1.4\nthe second delivery of the report, other bytes\n%%%%EOF\n' >"$T/B.pdf"

# 1. Both deliveries have written their file, neither has filed it; the one let go first files
# the row, the other finds it filed. The row's file holds the bytes of the one it records.
one_row "$T/r1.csv" WBA5R1C53LA000011
sg batch vin "$T/r1.csv" >/dev/null 2>&1; rc=$?
is "$rc" 75 "a row waits for its report"
id=$(q "SELECT json_extract(answer, '\$.id') $(row_sql "$T/r1.csv")")
post_report "$id" "$T/A.pdf" >"$T/a.code" & A=$!
is "$(reached 1)" serve-file-written "the first delivery is held with its file written"
post_report "$id" "$T/B.pdf" >"$T/b.code" & B=$!
is "$(reached 2)" serve-file-written "the second too"
release 1; wait $A
is "$(cat "$T/a.code")" 200 "the first one let go is answered 200"
release 2; wait $B
is "$(cat "$T/b.code")" 200 "the second is answered 200 (a repeat of the row)"
is "$(q "SELECT state $(row_sql "$T/r1.csv")")" ok "the row is ok"
file=$(q "SELECT json_extract(answer, '\$.report_file') $(row_sql "$T/r1.csv")")
check "the row's file holds the bytes of the delivery it records (the first)" cmp -s "$file" "$T/A.pdf"
like "$(cat "$T/serve.log")" "delivery id $id .*: filed: $file" "serve logged the first as filed"
is "$(find "$T/reports" -type f | wc -l)" 1 "one file under reports, no temporary one left"

# 2. One delivery held between writing its file and filing it while a second completes: the
# second's file and record stay, the first leaves nothing.
one_row "$T/r2.csv" WBA5R1C53LA000022
sg batch vin "$T/r2.csv" >/dev/null 2>&1
id=$(q "SELECT json_extract(answer, '\$.id') $(row_sql "$T/r2.csv")")
post_report "$id" "$T/A.pdf" >"$T/a.code" & A=$!
is "$(reached 3)" serve-file-written "a delivery is held with its file written"
is "$(post_report "$id" "$T/B.pdf")" 200 "another delivery of the row completes meanwhile"
release 3; wait $A
is "$(cat "$T/a.code")" 200 "the held one is answered 200 (a repeat of the row)"
file=$(q "SELECT json_extract(answer, '\$.report_file') $(row_sql "$T/r2.csv")")
check "the row's file holds the bytes of the delivery it records (the second)" cmp -s "$file" "$T/B.pdf"
is "$(find "$T/reports" -type f | wc -l)" 2 "one more file, no temporary one left"

# 3. A fast service: the report reaches serve before the service answers the request, so before
# batch vin can record the row waiting. batch vin files it when it records the row.
before_unknown=$(unknown)
curl -s -o /dev/null -d '{"set_deliver_first":"multipart"}' "$URL/_control"
printf 'vin,check_type,brand,language\nWBA5R1C53LA000033,check_data_bmw_full,BMW,ru\nWBA5R1C53LA000044,check_data_bmw_full,BMW,ru\n' >"$T/fast.csv"
sg batch vin "$T/fast.csv" >"$T/fast.out" 2>"$T/fast.err"; rc=$?
is "$(curl -s "$URL/_stats" | jq -r .delivered_first)" 2 "the service delivered both reports before answering"
is "$rc" 0 "batch vin: exit 0, every row has its report"
is "$(grep -c ',ok,' "$T/fast.out")" 2 "both rows are ok"
for vin in WBA5R1C53LA000033 WBA5R1C53LA000044; do
	f=$(grep "^$vin," "$T/fast.out" | cut -d, -f11)
	like "$f" "^$T/reports/[0-9a-f]{16}/[23]-$vin\\.pdf\$" "$vin: its report is filed under its row's name"
	check "$vin: the file is the service's report for it" grep -q "for $vin" "$f"
done
is "$(unknown)" "$before_unknown" "the deliveries are not counted unknown (status)"
is "$(q 'SELECT count(*) FROM deliveries')" 0 "the deliveries table holds none of them"
is "$(find "$T/reports/unmatched" -type f 2>/dev/null | wc -l)" 0 "their files moved out of unmatched/"
sg batch vin "$T/fast.csv" >"$T/fast2.out" 2>/dev/null; rc=$?
is "$rc" 0 "a re-run exits 0"
check "and prints the same rows" cmp -s "$T/fast.out" "$T/fast2.out"
curl -s -o /dev/null -d '{"set_deliver_first":null}' "$URL/_control"

# 3b. A waiting row whose delivery was kept unknown (by an earlier stockgate, which did not look):
# a run of the list that finds it waiting files it.
one_row "$T/r3.csv" WBA5R1C53LA000055
sg batch vin "$T/r3.csv" >/dev/null 2>&1
id=$(q "SELECT json_extract(answer, '\$.id') $(row_sql "$T/r3.csv")")
q "INSERT INTO deliveries (received, body_sha256, delivery_id, vin, status, url) VALUES (1, 'feed', '$id', 'WBA5R1C53LA000055', 'ok', 'https://reports.example/kept.pdf')"
is "$(unknown)" $((before_unknown + 1)) "a delivery for the waiting row is kept unknown"
sg batch vin "$T/r3.csv" >"$T/r3.out" 2>/dev/null; rc=$?
is "$rc" 0 "a run of the list files it: exit 0"
like "$(sed -n 2p "$T/r3.out")" ',ok,.*,ok,https://reports.example/kept\.pdf,$' "the row is ok with the link it gave"
is "$(unknown)" "$before_unknown" "and it is no longer unknown"

kill -TERM $SERVE_PID; wait $SERVE_PID
is "$?" 0 "serve exits 0 on SIGTERM"

# 4. A chunked body (no Content-Length) past [serve] max_body is answered 413 as soon as it
# passes, and the connection closed: not read until the peer stops or the timeout. serve's
# timeout is 600 s and the client gives up after 60 s, so only an answer at once passes.
sed 's|^max_connections = 4$|max_connections = 4\nmax_body = 1K\ntimeout = 600|' "$CONF" >"$T/small.conf"
chmod 600 "$T/small.conf"
"$STOCKGATE" -c "$T/small.conf" serve 2>>"$T/serve.log" & SERVE_PID=$!
_pids+=($SERVE_PID)
wait_port "$SPORT"
out=$($PY - "$SPORT" "$SECRET" <<'PY'
import socket, sys, time
port, secret = sys.argv[1:3]
s = socket.create_connection(("127.0.0.1", int(port)))
s.settimeout(60)
s.sendall(("POST /vin/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Transfer-Encoding: chunked\r\n\r\n" % secret).encode())
chunk = b"x" * 4096
s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))  # past 1K; the body never ends
data, end = b"", "closed"
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
except socket.timeout:
    end = "timeout"
except ConnectionResetError:
    end = "reset"
print(data.split(b"\r\n")[0].decode() or "no answer", "/", end)
PY
)
like "$out" '^HTTP/1\.1 413 .* / (closed|reset)$' "a chunked body past max_body: 413 at once, the connection ended ($out)"
like "$(cat "$T/serve.log")" 'a body beyond \[serve\] max_body \(413\)' "the refusal is logged"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' \
	--data-binary '{"id":"none-small","status":"ok"}' "$CB")" 200 "a chunked body within max_body is received (200)"
kill -TERM $SERVE_PID; wait $SERVE_PID

unlike "$(cat "$T/serve.log" "$T/fast.err")" "$TOKEN|$SECRET" "neither the token nor the secret is logged"
done_testing
