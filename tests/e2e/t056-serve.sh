#!/bin/bash
# t056-serve.sh: `stockgate serve` receives the VIN service's deliveries: every form files its
# report with its row, repeats and unknown ids are harmless, a crash before the answer is
# healed by the service's retry, hostile requests are answered and leave nothing, a slow peer is
# cut, and poll runs beside it on the same db for the whole scenario.
. "$(dirname "$0")/../lib.sh"

TOKEN=SGCANARYvin0123456789
SECRET=SGCANARYsecret0123456789abcdef0123456789
PORT=$(free_port) SPORT=$(free_port)
CB=http://127.0.0.1:$SPORT/vin/$SECRET
sg_bg $PY "$SG_TOP/tests/servers/vin_server.py" "$PORT" --token "$TOKEN" --callback "$CB"
wait_port "$PORT" || { notok "vin emulator started"; done_testing; exit 1; }
URL=http://127.0.0.1:$PORT
printf '%s\n' "$SECRET" >"$T/secret"; chmod 600 "$T/secret"
mkdir -p "$T/Maildir/new" "$T/Maildir/cur" "$T/Maildir/tmp"
write_config <<EOF2
[source]
url = maildir:$T/Maildir
poll_interval = 1

$(vin_serve_config)
timeout = 2
EOF2
# Room for two of the emulator's reports (about 475 bytes each) in a results mail.
sed -i '/^\[report\]/a max_attachment_size = 1000' "$CONF"
deliver() { curl -s -X POST -d "$1" "$URL/_deliver"; }
reports() { find "$T/reports" -type f 2>/dev/null | wc -l; }
unknown() { sg status --format json | jq -r .deliveries_unknown; }
start_serve() {
	"$STOCKGATE" -c "$CONF" serve 2>>"$T/serve.log" & SERVE_PID=$!
	_pids+=($SERVE_PID)
	wait_port "$SPORT"
}
# A list of N rows of distinct VINs (SEED N FILE).
make_list() {
	$PY - "$1" "$2" "$3" <<'PY'
import random, sys
rnd = random.Random(int(sys.argv[1]))
chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
with open(sys.argv[3], "w") as f:
    f.write("vin,check_type,brand,language\n")
    for i in range(int(sys.argv[2])):
        f.write("WBA" + "".join(rnd.choice(chars) for _ in range(14)) + ",check_data_bmw_full,BMW,ru\n")
PY
}

KEY=0123456789abcdef0123456789abcdef
setup_dealer D1 "$KEY" dealer@shop.example 2>/dev/null
sg user add vin@shop.example --dealer D1 --role batch_vin >/dev/null 2>&1
charged() { curl -s "$URL/_stats" | jq -r .charged; }
# wait_for DESC COMMAND…: up to 60 s for the command to succeed (poll runs every second).
wait_for() { local i; for i in $(seq 600); do "$@" && return 0; sleep 0.1; done; return 1; }
outbox_ge() { [ "$(outbox_count)" -ge "$1" ]; }
charged_is() { [ "$(charged)" -eq "$1" ]; }
# body_text EML: the text of a report.
body_text() {
	$PY - "$1" <<'PY'
import sys, email, email.policy
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
print(m.get_body(preferencelist=("plain",)).get_content())
PY
}
# attachments EML: the names of a report's attachments, one a line.
attachments() {
	$PY - "$1" <<'PY'
import sys, email, email.policy
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
for p in m.iter_attachments():
    print(p.get_filename(), p.get_content_type(), len(p.get_payload(decode=True)))
PY
}

# poll runs beside serve on the same state db for the whole scenario.
"$STOCKGATE" -c "$CONF" poll --daemon >/dev/null 2>"$T/poll.log" & POLL_PID=$!
_pids+=($POLL_PID)
start_serve || { notok "serve started"; done_testing; exit 1; }

# 0. The URL to give the service.
is "$(sg serve --print-url)" "http://127.0.0.1:$SPORT/vin/$SECRET" "--print-url prints the delivery URL"
sed 's|^\[serve\]$|[serve]\npublic_url = https://gw.example.com/|' "$CONF" >"$T/pub.conf"; chmod 600 "$T/pub.conf"
is "$("$STOCKGATE" -c "$T/pub.conf" serve --print-url)" "https://gw.example.com/vin/$SECRET" \
	"a public_url ending in / gives one slash before vin/"

# 1. A CLI list: queued rows are pending until their reports come, in every form.
make_list 1 5 "$T/a.csv"
sg batch vin "$T/a.csv" >"$T/a1.out" 2>"$T/a1.err"; rc=$?
is "$rc" 75 "queued rows: exit 75 (pending)"
is "$(grep -c ',pending,waiting for the report' "$T/a1.out")" 5 "every row is pending, waiting for its report"
is "$(tail -n +2 "$T/a1.out" | cut -d, -f7 | sort -n | tr '\n' ' ')" "1 2 3 4 5 " "the queue's ids are filled"
sg batch vin "$T/a.csv" --wait --poll-interval 0.1 -o "$T/a2.out" 2>"$T/a2.err" & WAIT_PID=$!
d=$(deliver '{"form":"cycle"}')
is "$(jf "$d" .delivered)" 5 "the service delivered 5 reports (JSON, form, multipart, nested, JSON string)"
wait $WAIT_PID; rc=$?
is "$rc" 0 "batch vin --wait ends when every report arrived: exit 0"
is "$(grep -c ',ok,' "$T/a2.out")" 5 "every row is ok"
is "$(cut -d, -f9 "$T/a2.out" | tail -n +2 | sort -u)" ok "report_status ok"
is "$(tail -n +2 "$T/a2.out" | awk -F, '$10 == "https://reports.example/" $7 ".pdf"' | wc -l)" 5 \
	"each row keeps the report_url of its own id"
row=$(grep ',ok,,3,' "$T/a2.out" | head -1)
file=$(printf '%s' "$row" | cut -d, -f11)
vin=$(printf '%s' "$row" | cut -d, -f1)
line=$(grep -n "^$vin," "$T/a.csv" | cut -d: -f1)
like "$file" "^$T/reports/[0-9a-f]{16}/$line-$vin\\.pdf\$" "the multipart report is filed as reports/JOB/ROW-VIN.pdf"
check "the filed report is the service's PDF" grep -q "Report 3 for $vin" "$file"
is "$(reports)" 1 "one report file (the other forms gave a link)"
sg batch vin "$T/a.csv" >"$T/a3.out" 2>/dev/null; rc=$?
is "$rc" 0 "a re-run exits 0"
check "a re-run prints the arrived reports" cmp -s "$T/a2.out" "$T/a3.out"

# 1b. An e-mailed list: acknowledged with a word that the reports follow; the results mail goes
# once every report is filed, the reports attached.
make_list 5 3 "$T/m.csv"
$PY - "$KEY" "$T/m.csv" "$T/Maildir/tmp/m1" <<'PY'
import sys
from email.message import EmailMessage
from email.utils import make_msgid, formatdate
m = EmailMessage()
m["From"], m["To"], m["Subject"] = "vin@shop.example", "api@stock.example", "vin"
m["Date"], m["Message-ID"] = formatdate(), make_msgid(domain="shop.example")
m.set_content(sys.argv[1] + "\n")
m.add_attachment(open(sys.argv[2], "rb").read(), maintype="text", subtype="csv", filename="m.csv")
open(sys.argv[3], "wb").write(bytes(m))
PY
mv "$T/Maildir/tmp/m1" "$T/Maildir/new/m1"
before=$(charged)
check "poll accepts the mailed list" wait_for outbox_ge 1
ack=$(ls -t "$OUTBOX"/*.eml | head -1)
like "$(body_text "$ack")" 'Отчёты придут вместе с результатами' "the acknowledgement says the reports will follow"
check "poll queues the 3 rows" wait_for charged_is $((before + 3))
is "$(outbox_count)" 1 "no results mail while the reports are awaited"
d=$(deliver '{"form":"multipart"}')
is "$(jf "$d" .delivered)" 3 "the service delivers the 3 reports"
check "the results mail goes once every report is filed" wait_for outbox_ge 2
res=$(ls -t "$OUTBOX"/*.eml | head -1)
is "$(attachments "$res" | grep -c ' application/pdf ')" 2 "two reports are attached as PDF ([report] max_attachment_size)"
is "$(attachments "$res" | grep -c '^m-results.csv ')" 1 "with the results list"
$PY - "$res" >"$T/m-results.csv" <<'PY'
import sys, email, email.policy
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
for p in m.iter_attachments():
    if p.get_filename() == "m-results.csv":
        sys.stdout.buffer.write(p.get_payload(decode=True))
PY
is "$(tail -n +2 "$T/m-results.csv" | cut -d, -f5 | tr '\n' ' ')" "ok ok ok " "every row of the mailed list is ok"
third=$(tail -n +2 "$T/m-results.csv" | cut -d, -f11 | while read -r f; do b=$(basename "$f"); attachments "$res" | grep -q "^$b " || echo "$f"; done)
check "the report beyond the cap is named in the list ($third)" test -f "$third"
is "$(reports)" 4 "the reports are filed as well"

# 2. Repeated deliveries are harmless.
d=$(deliver '{"again":true,"repeat":2,"form":"multipart"}')
is "$(jf "$d" '[(.codes | length) > 0, (.codes | all(. == 200))] | join(" ")')" "true true" "repeats are answered 200"
is "$(reports)" 4 "no second file"
sg batch vin "$T/a.csv" >"$T/a4.out" 2>/dev/null
check "the rows are unchanged" cmp -s "$T/a2.out" "$T/a4.out"

# 3. Ids nobody asked for: 200, kept for the operator, once each.
d=$(deliver '{"unknown":2,"form":"json"}')
is "$(jf "$d" .delivered)" 2 "unknown ids are answered 2xx"
is "$(unknown)" 2 "status counts 2 unknown deliveries"
deliver '{"unknown":2,"form":"json"}' >/dev/null
is "$(unknown)" 2 "the same unknown deliveries again add nothing"
like "$(sg status)" 'unknown reports: +2' "status (text) shows them"

# 4. A failed report comes as a callback with an error status.
make_list 2 2 "$T/b.csv"
sg batch vin "$T/b.csv" >/dev/null 2>&1
deliver '{"status":"error","form":"form"}' >/dev/null
sg batch vin "$T/b.csv" >"$T/b.out" 2>/dev/null; rc=$?
is "$rc" 65 "rows with a failed report: exit 65"
is "$(grep -c ',failed,the service reported a failure' "$T/b.out")" 2 "both rows are failed with the service's reason"
deliver '{"status":"ok","form":"multipart","again":true}' >/dev/null
sg batch vin "$T/b.csv" >"$T/b2.out" 2>/dev/null; rc=$?
is "$rc" 0 "the reports that came after the error status: exit 0"
is "$(grep -c ',ok,.*\.pdf$' "$T/b2.out")" 2 "… both filed, their rows ok"

# 4b. A delivery as a GET with a query.
make_list 7 1 "$T/g.csv"
sg batch vin "$T/g.csv" >/dev/null 2>&1
d=$(deliver '{"form":"get"}')
is "$(jf "$d" .delivered)" 1 "a GET delivery is answered 200"
sg batch vin "$T/g.csv" >"$T/g.out" 2>/dev/null; rc=$?
is "$rc" 0 "its row is ok"
like "$(sed -n 2p "$T/g.out")" ',ok,.*,ok,https://reports.example/[0-9]+\.pdf,$' "with the link it gave"

# 5. serve killed between filing and answering: the service's retry files the report once.
kill -TERM $SERVE_PID; wait $SERVE_PID; rc=$?
is "$rc" 0 "SIGTERM: serve exits 0"
SG_CRASH=serve-before-answer "$STOCKGATE" -c "$CONF" serve 2>>"$T/serve.log" & SERVE_PID=$!
_pids+=($SERVE_PID)
wait_port "$SPORT"
make_list 3 1 "$T/c.csv"
sg batch vin "$T/c.csv" >/dev/null 2>&1
d=$(deliver '{"form":"multipart"}')
is "$(jf "$d" .failed)" 1 "the delivery got no answer (serve died)"
wait $SERVE_PID; rc=$?
is "$rc" 137 "serve was killed at serve-before-answer"
start_serve
d=$(deliver '{"form":"multipart"}')
is "$(jf "$d" .delivered)" 1 "the service's retry is answered 200"
sg batch vin "$T/c.csv" >"$T/c.out" 2>/dev/null; rc=$?
is "$rc" 0 "the row is ok"
is "$(reports)" 7 "its report is filed once"
is "$(find "$T/reports" -name '.*' | wc -l)" 0 "no temporary file is left"

# 6. Hostile requests: each answered, nothing left behind.
before_files=$(reports) before_unknown=$(unknown)
is "$(curl -s -o /dev/null -w '%{http_code}' -d '{"id":"1","status":"ok"}' "http://127.0.0.1:$SPORT/vin/wrong$SECRET")" 404 "a wrong secret: 404"
is "$(curl -s -o /dev/null -w '%{http_code}' -d '{"id":"1"}' "http://127.0.0.1:$SPORT/vin/")" 404 "no secret: 404"
unlike "$(cat "$T/serve.log")" "$SECRET" "the secret is never logged"
head -c 30000000 /dev/zero >"$T/big"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$T/big" "$CB")" 413 "a 30 MB body: 413"
rm -f "$T/big"
is "$(curl -s -w ' %{http_code}' -H 'Content-Type: multipart/form-data; boundary=zz' \
	--data-binary $'--zz\r\nContent-Disposition: form-data; name="id"\r\n\r\n1' "$CB")" \
	'{"ok":false,"error":"bad_multipart"} 400' "a malformed multipart: 400 bad_multipart"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{"status":"ok"' "$CB")" 400 "malformed JSON: 400"
is "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -d x "$CB")" 405 "PUT: 405"
is "$(reports) $(unknown)" "$before_files $before_unknown" "none of these stored anything"
make_list 4 1 "$T/e.csv"
sg batch vin "$T/e.csv" >/dev/null 2>&1
d=$(deliver '{"form":"multipart","filename":"../../etc/passwd"}')
is "$(jf "$d" .delivered)" 1 "a report named ../../etc/passwd is answered 200"
sg batch vin "$T/e.csv" >"$T/e.out" 2>/dev/null
like "$(cut -d, -f11 "$T/e.out" | tail -1)" "^$T/reports/[0-9a-f]{16}/2-WBA[A-Z0-9]{14}\\.pdf\$" "it is filed under the row's own name"
is "$(find "$T" -name passwd | wc -l)" 0 "no file named after the request"

# 6b. A row whose report never comes is unknown (no_report) after report_wait, never sent again.
make_list 6 1 "$T/f.csv"
sg batch vin "$T/f.csv" >/dev/null 2>&1
later=$(( $(date +%s) + 7200 ))
before=$(charged)
SG_NOW=$later sg batch vin "$T/f.csv" >"$T/f.out" 2>/dev/null; rc=$?
is "$rc" 75 "past report_wait: exit 75"
like "$(sed -n 2p "$T/f.out")" ',unknown,no_report' "the row is unknown with no_report"
SG_NOW=$later sg batch vin "$T/f.csv" --wait --poll-interval 0.1 >/dev/null 2>&1; rc=$?
is "$rc" 75 "--wait ends at once when report_wait has passed"
is "$(charged)" "$before" "the row is never sent again"

# 6c. The secret is the only authentication: a short one stops start-up.
printf 'short-secret\n' >"$T/short"; chmod 600 "$T/short"
sed "s|^callback_secret_file = .*|callback_secret_file = $T/short|" "$CONF" >"$T/short.conf"; chmod 600 "$T/short.conf"
"$STOCKGATE" -c "$T/short.conf" serve 2>"$T/short.err"; rc=$?
is "$rc" 78 "a secret of 12 characters: exit 78"
like "$(cat "$T/short.err")" 'callback_secret_file.*at least 32' "the message names the setting and the minimum"
unlike "$(cat "$T/short.err")" 'short-secret' "and does not quote the secret"
# a secret that is not one plain segment of the URL (a / or a ?) is refused too
printf 'abcdefghijklmnop/qrstuvwxyz0123456789?x=1\n' >"$T/short"
"$STOCKGATE" -c "$T/short.conf" serve 2>"$T/short.err"; rc=$?
is "$rc" 78 "a secret with / and ? in it: exit 78"
like "$(cat "$T/short.err")" 'callback_secret_file.*letters, digits' "the message says which characters"
unlike "$(cat "$T/short.err")" 'qrstuvwxyz' "and does not quote the secret"

# 7. A slow peer (one byte a second) does not hold the receiver and is cut after [serve] timeout.
$PY - "$SPORT" "$SECRET" "$T/slow" <<'PY' & SLOW=$!
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
req = ("POST /vin/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" % sys.argv[2]).encode()
s.send(req[:1])
open(sys.argv[3] + ".connected", "w").close()
t0 = time.monotonic()
for b in req[1:] + b"x" * 100:
    time.sleep(1)
    try:
        s.send(bytes([b]))
        if s.recv(1, socket.MSG_DONTWAIT) == b"":
            break
    except BlockingIOError:
        pass
    except OSError:
        break
open(sys.argv[3], "w").write("%d\n" % (time.monotonic() - t0))
PY
for i in $(seq 100); do [ -e "$T/slow.connected" ] && break; sleep 0.1; done
is "$(curl -s -o /dev/null -w '%{http_code}' -d '{"id":"none-1","status":"ok"}' -H 'Content-Type: application/json' "$CB")" 200 \
	"another delivery is served while the slow peer is connected"
wait $SLOW
cut_after=$(cat "$T/slow" 2>/dev/null || echo none)
check "the slow peer is cut after the timeout (2s), not after its 160 bytes ($cut_after s)" \
	test "$cut_after" != none -a "$cut_after" -ge 1 -a "$cut_after" -lt 60

# 8. SIGTERM with a delivery in flight: it is finished and answered, then serve exits 0.
make_list 8 1 "$T/h.csv"
sg batch vin "$T/h.csv" >/dev/null 2>&1
hid=$(sqlite3 "$T/stockgate.db" "SELECT json_extract(answer, '\$.id') FROM journal WHERE state = 'waiting' ORDER BY sent_at DESC LIMIT 1")
$PY - "$SPORT" "$SECRET" "$hid" "$T/inflight" <<'PY' & INFLIGHT=$!
import os, socket, sys, time
port, secret, rid, base = sys.argv[1:5]
body = ('{"id":"%s","status":"ok","url":"https://reports.example/late.pdf"}' % rid).encode()
s = socket.create_connection(("127.0.0.1", int(port)))
s.sendall(("POST /vin/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: %d\r\n\r\n" % (secret, len(body))).encode() + body[:10])
open(base + ".half", "w").close()
while not os.path.exists(base + ".go"):
    time.sleep(0.05)
s.sendall(body[10:])
open(base, "w").write(s.recv(4096).split(b"\r\n")[0].decode())
PY
for i in $(seq 100); do [ -e "$T/inflight.half" ] && break; sleep 0.1; done
kill -TERM $SERVE_PID
touch "$T/inflight.go"
wait $INFLIGHT
wait $SERVE_PID; rc=$?
is "$(cat "$T/inflight" 2>/dev/null)" "HTTP/1.1 200 OK" "a delivery in flight at SIGTERM is finished and answered 200"
is "$rc" 0 "serve stops on SIGTERM with exit 0"
sg batch vin "$T/h.csv" >"$T/h.out" 2>/dev/null
like "$(sed -n 2p "$T/h.out")" ',ok,.*late\.pdf' "and its report is filed"

# 8b. [serve] max_connections: one connection held open, the next is refused; then served.
sed "s|^timeout = 2|timeout = 30\nmax_connections = 1|" "$CONF" >"$T/one.conf"; chmod 600 "$T/one.conf"
"$STOCKGATE" -c "$T/one.conf" serve 2>>"$T/serve.log" & SERVE_PID=$!
_pids+=($SERVE_PID)
$PY - "$SPORT" "$T/held" <<'PY' & HELD=$!
import os, socket, sys, time
# The first connection serve accepts is this one: no wait_port before it (that would be one).
for i in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
        break
    except ConnectionRefusedError:
        time.sleep(0.05)
s.send(b"P")
open(sys.argv[2], "w").close()
while os.path.exists(sys.argv[2]):
    time.sleep(0.05)
PY
for i in $(seq 100); do [ -e "$T/held" ] && break; sleep 0.1; done
curl -s -o /dev/null -d '{"id":"none-2"}' -H 'Content-Type: application/json' "$CB"; rc=$?
check "a connection beyond max_connections is refused (curl $rc)" test "$rc" -ne 0
rm -f "$T/held"; wait $HELD
# The receiver learns of the close asynchronously: try until it has (at most 10 s).
served() { [ "$(curl -s -o /dev/null -w '%{http_code}' -d '{"id":"none-2"}' -H 'Content-Type: application/json' "$CB")" = 200 ]; }
for i in $(seq 100); do served && break; sleep 0.1; done
check "once it closed, the next is served" served
like "$(cat "$T/serve.log")" 'max_connections \(1\) are open' "the refusal is logged"

# 8c. A repeat of an unknown delivery as a multipart with a boundary of its own (curl, like most
# clients, draws one per request) is the same delivery: kept once, its file once.
printf '%%PDF-1.4\nunmatched report\n%%%%EOF\n' >"$T/um.pdf"
before_unknown=$(unknown) before_files=$(reports)
for i in 1 2; do
	curl -s -o /dev/null -F id=none-multi -F status=ok -F "file=@$T/um.pdf;type=application/pdf" "$CB"
done
is "$(( $(unknown) - before_unknown )) $(( $(reports) - before_files ))" "1 1" \
	"an unknown multipart delivery sent twice is kept once, one file"

# 8d. Two rows wait for one VIN (two checks of one car); the service's delivery names only the
# VIN. Its repeat is a repeat: the other row goes on waiting for its own report.
printf 'vin,check_type,brand,language\nWBA5R1C53LA654321,check_data_bmw_full,BMW,ru\nWBA5R1C53LA654321,check_CarVertical,BMW,ru\n' >"$T/twice.csv"
sg batch vin "$T/twice.csv" >/dev/null 2>&1
for i in 1 2; do
	curl -s -o /dev/null -H 'Content-Type: application/json' \
		-d '{"vin":"WBA5R1C53LA654321","status":"ok","url":"https://reports.example/twice.pdf"}' "$CB"
done
sg batch vin "$T/twice.csv" >"$T/twice.out" 2>/dev/null
is "$(grep -c ',ok,' "$T/twice.out") $(grep -c ',pending,' "$T/twice.out")" "1 1" \
	"a repeated delivery by VIN files one row; the other still waits"
kill -TERM $SERVE_PID; wait $SERVE_PID

# 9. poll and serve shared the db all along.
check "poll is still running" kill -0 $POLL_PID
kill -TERM $POLL_PID; wait $POLL_PID
unlike "$(cat "$T/serve.log" "$T/poll.log")" 'database is locked|busy' "no 'database is locked' in poll's or serve's log"
unlike "$(cat "$T/serve.log" "$T/a1.err" "$T/a2.err")" "$TOKEN" "the token is never logged"
done_testing
