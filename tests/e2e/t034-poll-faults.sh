#!/bin/bash
# t034-poll-faults.sh: `stockgate poll` against a private Dovecot when things go wrong:
# the SMTP server answering 4xx then back (deferred report_unavailable, exit 75, then sent and
# moved, applied once), answering 5xx (given up, not retried for ever), the IMAP server stopped
# between two polls and in the middle of one (exit 75, nothing lost, the next poll finishes), a
# message over max_message_size (failed too_large, answered only for a registered sender), the
# gmime issue-165 input (Failed, unparseable, no report, the poll goes on), a message older than
# max_age (Failed, stale, no report; its record names the sender), a server whose RFC822.SIZE
# understates a message over max_message_size (failed too_large all the same, the rest of the
# chunk handled). SPEC 3 (poll, status), 5.6, 5.7, 7, 10; catalogue F9.
. "$(dirname "$0")/../lib.sh"
MAIL=$FIX/poll/mail.py
KEY=0123456789abcdef0123456789abcdef
mkdir -p "$T/nocerts" "$T/msg"

stop_server() { # PID PORT: stop a server and wait until its port is closed
	local i
	kill "$1" 2>/dev/null
	for i in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/"$2") 2>/dev/null || break
		sleep 0.1
	done
	wait "$1" 2>/dev/null
}
inject() { doveadm -c "$T/dc/dovecot.conf" save -u u -m INBOX <"$1"; }
# where MID: the folders holding the message with that Message-ID, space-separated.
where() {
	doveadm -c "$T/dc/dovecot.conf" -f tab fetch -u u 'mailbox hdr.message-id' ALL 2>/dev/null |
		awk -F'\t' -v m="<$1>" 'NR > 1 && $2 == m {print $1}' | sort -u | paste -sd' '
}
count() {
	doveadm -c "$T/dc/dovecot.conf" mailbox status -u u messages "$1" 2>/dev/null |
		sed -n 's/.*messages=//p'
}
captured() { ls "$T/$1"/*.eml 2>/dev/null | wc -l; }
reports_for() { grep -l "^In-Reply-To: <$2>" "$T/$1"/*.eml 2>/dev/null | wc -l; }
# config [lines]: IMAP source on the current Dovecot, SMTP reports to CAP_PORT; the lines are
# appended after [source] (settings of it, or further sections).
config() {
	{
		printf '[store]\npath = %s/stockgate.db\n\n' "$T"
		printf '[report]\nurl = smtp://127.0.0.1:%s\ntls = off\n' "$CAP_PORT"
		printf 'from = "Stock API" <api@stock.example>\n\n'
		printf '[source]\nurl = imap://127.0.0.1:%s/INBOX\nusername = u\npassword = p\ntls = off\n' \
			"$IMAP_PORT"
		printf '%s\n' "$@"
	} >"$CONF"
	chmod 600 "$CONF"
}
# mk NAME KIND [mail.py make options]: a message in $T/msg/NAME.eml with Message-ID NAME@shop.example.
mk() { local n=$1 k=$2; shift 2; $PY "$MAIL" make "$k" --id "$n@shop.example" "$@" >"$T/msg/$n.eml"; }
rec_of() { printf '%s\n' "$1" | jq -c "select(.message_id == \"$2\")"; }
wh() { sg warehouses list --dealer D1 --format csv; }
rem() { sg remains export --dealer D1 --format csv; }

start_dovecot dc --no-tls
start_capture cap-ok
config
check "dealer and user" setup_dealer D1 $KEY dealer@shop.example
mk wh warehouses --warehouses D4R7WE,0101
inject "$T/msg/wh.eml"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc/$(jf "$out" .outcome)" "0/applied" "set-up: two warehouses applied"
WH=$(wh)

### A. The SMTP server answers 451, then comes back.
start_capture cap-451 --fail rcpt --code 451
config
mk a1 remains --rows D4R7WE:A1:11
inject "$T/msg/a1.eml"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 75 "451: poll exits 75"
is "$(jf "$out" .outcome)/$(jf "$out" .reason)" "deferred/report_unavailable" "451: deferred, report_unavailable"
is "$(where a1@shop.example)" INBOX "451: the message stays in INBOX"
is "$(captured cap-451)" 0 "451: nothing captured"
is "$(sg status --format json | jq .reports_pending)" 1 "451: status shows one report pending"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc/$(jf "$out" .outcome)" "75/deferred" "451 again: still deferred, exit 75"
is "$(where a1@shop.example)" INBOX "451 again: still in INBOX"
port=$CAP_PORT
stop_server "$CAP_PID" "$port"
start_capture cap-back --port "$port"
is "$CAP_PORT" "$port" "the SMTP server is back on the same port"
# After a failed retry the next waits (retry_interval, doubling): this poll is too early.
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc/$(jf "$out" .outcome)/$(jf "$out" .reason)" "75/deferred/report_unavailable" \
	"a poll right after the failed retry: the report waits (retry_interval)"
is "$(reports_for cap-back a1@shop.example)" 0 "not sent yet"
sqlite3 "$T/stockgate.db" "UPDATE ledger SET updated = updated - 3600 WHERE message_id = 'a1@shop.example'"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "SMTP back: poll exits 0"
is "$(jf "$out" .outcome)/$(jf "$out" .report)" "applied/sent" "SMTP back: applied, report sent"
is "$(jf "$out" '.files[0].added')" 1 "SMTP back: the record keeps the counts of the one apply"
is "$(where a1@shop.example)" Processed "SMTP back: moved to Processed"
is "$(reports_for cap-back a1@shop.example)" 1 "SMTP back: exactly one report"
is "$(rem)" "$(printf 'warehouse,article,quantity\nD4R7WE,A1,11')" "SMTP back: the remains applied once"
is "$(sg status --format json | jq -c '[.messages.applied, .reports_pending]')" "[2,0]" \
	"status: two applied, no report pending"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc/$out" "0/" "then a poll does nothing"

### A2. The SMTP server keeps answering 451: after max_attempts the deferred message becomes
### failed and goes to failed_folder (SPEC 7), and is not retried after that.
start_capture cap-451b --fail rcpt --code 451
config 'max_attempts = 2'
mk a2 remains --rows D4R7WE:A2:12
inject "$T/msg/a2.eml"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc/$(jf "$out" .outcome)/$(jf "$out" .reason)" "75/deferred/report_unavailable" "max_attempts = 2: first poll deferred"
out=$(sg poll 2>"$T/err"); rc=$?
is "$(jf "$out" .outcome)/$(jf "$out" .reason)" "failed/report_unavailable" \
	"max_attempts = 2: at the second attempt failed, report_unavailable (SPEC 7)"
is "$(where a2@shop.example)" Failed "max_attempts = 2: moved to Failed (SPEC 7)"
is "$rc" 0 "max_attempts = 2: the second poll defers nothing: exit 0"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc/$out" "0/" "max_attempts = 2: not tried again"
is "$(rem)" "$(printf 'warehouse,article,quantity\nD4R7WE,A2,12')" "max_attempts = 2: the file applied once"
is "$(sg status --format json | jq .reports_pending)" 0 "max_attempts = 2: no report left pending"
config

### B. The SMTP server answers 554 at DATA: final, the report is given up.
start_capture cap-554 --fail data --code 554
config
mk b1 remains --rows D4R7WE:B1:22
inject "$T/msg/b1.eml"
out=$(sg poll 2>"$T/err"); rc1=$?
unlike "$(jf "$out" .report)" '^sent$' "554: the record does not say sent"
is "$(rem)" "$(printf 'warehouse,article,quantity\nD4R7WE,B1,22')" "554: the file is applied"
echo "# 554: first poll exit $rc1, outcome $(jf "$out" .outcome), reason $(jf "$out" .reason)"
[ "$(where b1@shop.example)" = INBOX ] && { out=$(sg poll 2>"$T/err"); rc1=$?; }
is "$rc1" 0 "554: by the second poll at most, poll exits 0"
is "$(where b1@shop.example)" Processed "554: by the second poll at most, moved to Processed"
is "$(captured cap-554)" 0 "554: nothing captured"
is "$(sg status --format json | jq .reports_pending)" 0 "554: no report left pending"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc/$out" "0/" "554: then a poll does nothing (not retried for ever)"
is "$(rem)" "$(printf 'warehouse,article,quantity\nD4R7WE,B1,22')" "554: applied once"

### D. Over max_message_size (20K): failed too_large without fetching the body; answered only
### for a registered sender with the role; Processed (SPEC 5.6, 7).
start_capture cap-big
config '' '[limits]' 'max_message_size = 20K'
mk d1 remains --rows D4R7WE:D1:33 --pad 30000
mk d2 remains --rows D4R7WE:D2:44 --pad 30000 --from stranger@else.example
mk d3 remains --rows D4R7WE:D3:55
for m in d1 d2 d3; do inject "$T/msg/$m.eml"; done
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "too_large: poll exits 0"
is "$(printf '%s\n' "$out" | grep -c .)" 3 "too_large: three records"
# The records in UID order: d1, d2, d3 (an unfetched message may lack its Message-ID).
r=$(printf '%s\n' "$out" | sed -n 1p)
is "$(jf "$r" .outcome)/$(jf "$r" .reason)" "failed/too_large" "too_large from the dealer: failed, too_large"
is "$(jf "$r" .dealer)/$(jf "$r" .report)" "D1/sent" "too_large from the dealer: answered (SPEC 7, 5.7)"
is "$(reports_for cap-big d1@shop.example)" 1 "too_large from the dealer: one report captured"
r=$(printf '%s\n' "$out" | sed -n 2p)
is "$(jf "$r" .outcome)/$(jf "$r" .reason)/$(jf "$r" .report)" "failed/too_large/none" \
	"too_large from a stranger: failed, too_large, not answered"
is "$(reports_for cap-big d2@shop.example)" 0 "too_large from a stranger: no report captured"
is "$(where d1@shop.example) $(where d2@shop.example)" "Processed Processed" \
	"too_large: both in Processed (outcome failed)"
is "$(jf "$(printf '%s\n' "$out" | sed -n 3p)" .outcome)" applied "too_large: the next message is applied"
is "$(rem)" "$(printf 'warehouse,article,quantity\nD4R7WE,D3,55')" "too_large: nothing of the big files applied"

# Another too-large message that comes to the same UID of a re-created source folder (a new
# UIDVALIDITY) is not the same message: not a duplicate (SPEC 5.6: duplicate = the same bytes).
DA="doveadm -c $T/dc/dovecot.conf"
$DA mailbox create -u u Api
config '' '[limits]' 'max_message_size = 20K'
sed -i "s,/INBOX$,/Api," "$CONF"
mk d4 remains --rows D4R7WE:D4:1 --pad 30000 --from stranger@else.example
mk d5 remains --rows D4R7WE:D5:2 --pad 40000 --from other@else.example
$DA save -u u -m Api <"$T/msg/d4.eml"
out=$(sg poll 2>"$T/err")
is "$(jf "$out" .source)/$(jf "$out" .outcome)" "imap:Api/1/failed" "too_large in folder Api: failed"
$DA mailbox delete -u u Api && $DA mailbox create -u u Api
$DA save -u u -m Api <"$T/msg/d5.eml"
out=$(sg poll 2>"$T/err")
is "$(jf "$out" .source)/$(jf "$out" .outcome)/$(jf "$out" .reason)" "imap:Api/1/failed/too_large" \
	"another too-large message at the same UID of the re-created folder: failed too_large, not a duplicate"

### E. The gmime issue-165 input: quarantined in Failed, unparseable, no report; the poll goes on.
FAILED_BEFORE_E=$(count Failed); FAILED_BEFORE_E=${FAILED_BEFORE_E:-0}
start_capture cap-165
config '' '[limits]' 'parse_cpu_seconds = 1'
inject "$FIX/mail/57-gmime-issue-165.eml"
mk e1 remains --rows D4R7WE:E1:66
inject "$T/msg/e1.eml"
t0=$SECONDS
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "issue 165: poll exits 0"
check "issue 165: the poll ends promptly ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 20
first=$(printf '%s\n' "$out" | head -1)
is "$(jf "$first" .outcome)/$(jf "$first" .reason)/$(jf "$first" .report)" "failed/unparseable/none" \
	"issue 165: failed, unparseable, not answered"
failed_before=$FAILED_BEFORE_E
is "$(count Failed)" $((failed_before + 1)) "issue 165: quarantined in Failed"
is "$(jf "$(rec_of "$out" e1@shop.example)" .outcome)" applied "issue 165: the next message is applied"
is "$(where e1@shop.example)" Processed "issue 165: the next message in Processed"
is "$(captured cap-165)" 1 "issue 165: only the next message is answered"

### F. Older than max_age (default 7d, by INTERNALDATE): Failed, stale, no report.
start_capture cap-stale
config
mk f1 remains --rows D4R7WE:F1:77
mk f2 remains --rows D4R7WE:F2:88
check "an old message appended" $PY "$MAIL" append "$IMAP_PORT" INBOX --date '01-Jan-2020 00:00:00 +0000' "$T/msg/f1.eml"
inject "$T/msg/f2.eml"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "stale: poll exits 0"
r=$(printf '%s\n' "$out" | sed -n 1p)
is "$(jf "$r" .outcome)/$(jf "$r" .reason)/$(jf "$r" .report)" "failed/stale/none" "stale: failed, stale, not answered"
is "$(jf "$r" '[.from, .message_id, .dealer] | join(" ")')" "dealer@shop.example f1@shop.example D1" \
	"stale: the record names the sender, the Message-ID and the dealer (5.7)"
is "$(where f1@shop.example)" Failed "stale: moved to Failed"
is "$(reports_for cap-stale f1@shop.example)" 0 "stale: no report captured"
is "$(jf "$(printf '%s\n' "$out" | sed -n 2p)" .outcome)" applied "stale: the fresh message is applied"
is "$(rem)" "$(printf 'warehouse,article,quantity\nD4R7WE,F2,88')" "stale: the old file is not applied"
# max_age = 0 turns the check off (a fresh copy of the old message under another Message-ID).
sed 's/f1@shop.example/f3@shop.example/' "$T/msg/f1.eml" >"$T/msg/f3.eml"
$PY "$MAIL" append "$IMAP_PORT" INBOX --date '01-Jan-2020 00:00:00 +0000' "$T/msg/f3.eml"
config 'max_age = 0'
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc/$(jf "$out" .outcome)" "0/applied" "max_age = 0: an old message is processed"

### C1. The IMAP server stopped between two polls: exit 75, status 69; back: finishes.
start_capture cap-imap
config
mk c1 remains --rows D4R7WE:C1:99
inject "$T/msg/c1.eml"
stop_server "$DC_PID" "$IMAP_PORT"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 75 "IMAP server down: poll exits 75"
is "$out" "" "IMAP server down: no record"
like "$(cat "$T/err")" "127.0.0.1:$IMAP_PORT" "IMAP server down: the error names the server"
sg status >"$T/status" 2>&1; rc=$?
is "$rc" 69 "IMAP server down: status exits 69"
start_dovecot dc --no-tls
config
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc/$(jf "$out" .outcome)" "0/applied" "IMAP server back: the waiting message is applied"
is "$(where c1@shop.example)" Processed "IMAP server back: moved to Processed"
sg status >"$T/status" 2>&1; rc=$?
is "$rc" 0 "IMAP server back: status exits 0"

### C2. The connection to the IMAP server cut in the middle of a poll over 80 messages: a proxy
# cuts it at the second body FETCH (the poll has handled what it fetched before).
start_capture cap-mid
config
# A warehouses message (W00, W01), then 79 remains messages, with their expected end state.
check "80 messages appended" bash -c "$PY '$MAIL' backlog $IMAP_PORT INBOX 80 --warehouses 2 >'$T/expected.csv'"
# start_proxy NAME [imap_proxy.py options]: tests/servers/imap_proxy.py in front of the Dovecot;
# sets PX_PORT.
start_proxy() {
	local d=$T/$1; shift
	sg_bg $PY "$SG_TOP/tests/servers/imap_proxy.py" "$d" "$IMAP_PORT" "$@" >/dev/null 2>"$d.log"
	for i in $(seq 100); do [ -s "$d/port" ] && break; sleep 0.1; done
	PX_PORT=$(cat "$d/port" 2>/dev/null)
	wait_port "$PX_PORT"
}
start_proxy px-mid --cut-at '^UID FETCH .*BODY\.PEEK\[' --nth 2
IMAP_PORT=$PX_PORT config
sg poll >"$T/mid1" 2>"$T/mid1.err"; rc=$?
n1=$(grep -c . "$T/mid1")
like "$(cat "$T/px-mid/cut" 2>/dev/null)" "UID FETCH" "IMAP connection cut mid-poll: cut at the second body fetch"
is "$rc" 75 "IMAP connection cut mid-poll: exit 75"
check "IMAP connection cut mid-poll: some handled ($n1), not all" test "$n1" -ge 1 -a "$n1" -lt 80
config
sg poll >"$T/mid2" 2>"$T/mid2.err"; rc=$?
is "$rc" 0 "after the cut: the next poll exits 0"
is "$(count INBOX)" 0 "after the cut: INBOX empty"
is "$(cat "$T/mid1" "$T/mid2" | jq -r 'select(.outcome != "duplicate") | .message_id' | sort | uniq -d)" "" \
	"no message handled twice"
is "$(cat "$T/mid1" "$T/mid2" | jq -r 'select(.outcome == "applied") | .message_id' | sort -u | wc -l)" 80 \
	"every one of the 80 messages applied"
is "$(rem)" "$(cat "$T/expected.csv")" "the store holds the last file of each warehouse"
is "$(grep -h '^In-Reply-To:' "$T/cap-mid"/*.eml | tr -d '\r' | sort | uniq -c | awk '$1 == 1' | wc -l)" 80 \
	"one report per message (none missing, none twice)"

### C3. The connection cut at the move of a chunk: every message of the chunk is recorded and
# answered before it; the next poll moves them, each applied and answered once.
start_capture cap-move
config
for n in 1 2 3 4 5; do mk mv$n remains --rows W00:MV$n:$n --date "Sun, 22 Nov 2026 08:0$n:00 +0000"; inject "$T/msg/mv$n.eml"; done
start_proxy px-move --cut-at '^UID (MOVE|COPY) '
IMAP_PORT=$PX_PORT config
sg poll >"$T/mv1" 2>"$T/mv1.err"; rc=$?
like "$(cat "$T/px-move/cut" 2>/dev/null)" "UID (MOVE|COPY)" "cut at the move: the proxy cut the set move"
is "$rc" 75 "cut at the move: exit 75"
is "$(jq -r .outcome <"$T/mv1" | sort | uniq -c | awk '{print $1 "/" $2}')" "5/applied" \
	"cut at the move: the five messages applied"
is "$(count INBOX)" 5 "cut at the move: the five still in INBOX"
config
sg poll >"$T/mv2" 2>"$T/mv2.err"; rc=$?
is "$rc" 0 "cut at the move: the next poll exits 0"
is "$(count INBOX)/$(where mv5@shop.example)" "0/Processed" "cut at the move: INBOX empty, moved to Processed"
is "$(cat "$T/mv1" "$T/mv2" | jq -r 'select(.outcome == "applied" and .resumed != true) | .message_id' | sort -u | wc -l)/$(cat "$T/mv1" "$T/mv2" | jq -r 'select(.outcome == "applied" and .resumed != true)' | jq -s length)" \
	"5/5" "cut at the move: each message applied once"
is "$(rem | grep '^W00,')" "W00,MV5,5" "cut at the move: the store holds the last file"
is "$(grep -h '^In-Reply-To:' "$T/cap-move"/*.eml | tr -d '\r' | sort | uniq -c | awk '$1 == 1' | wc -l)" 5 \
	"cut at the move: one report per message"

### G. A server whose RFC822.SIZE understates a message over max_message_size (the proxy says
# 400 bytes for a 30K message): its literal in the chunk's body FETCH is refused and the
# connection dropped. The chunk is fetched again one message at a time on a new connection: the
# others are handled, the liar fails too_large as if its size had been told (D: answered for the
# dealer, Processed), and the next poll has nothing left. Before, every poll failed on it and
# nothing after it in the chunk was handled.
start_capture cap-lie
D='Sun, 22 Nov 2026'
mk g1 remains --rows W00:G1:1 --date "$D 09:01:00 +0000"
mk g2 remains --rows W00:G2:2 --date "$D 09:02:00 +0000" --pad 30000
mk g3 remains --rows W00:G3:3 --date "$D 09:03:00 +0000"
mk g4 remains --rows W00:G4:4 --date "$D 09:04:00 +0000" --pad 30000 --from stranger@else.example
for m in g1 g2 g3 g4; do inject "$T/msg/$m.eml"; done
uid=$(doveadm -c "$T/dc/dovecot.conf" -f tab fetch -u u 'uid hdr.message-id' mailbox INBOX ALL |
	awk -F'\t' '$2 == "<g2@shop.example>" {print $1}')
start_proxy px-lie --rewrite-size "$uid=400"
IMAP_PORT=$PX_PORT config '' '[limits]' 'max_message_size = 20K'
sg poll >"$T/lie1" 2>"$T/lie1.err"; rc=$?
like "$(cat "$T/px-lie/rewritten" 2>/dev/null)" "UID $uid .*RFC822.SIZE 400|RFC822.SIZE 400 .*UID $uid" \
	"size lie: the proxy told RFC822.SIZE 400 for UID $uid"
is "$rc" 0 "size lie: poll exits 0"
is "$(grep -c . "$T/lie1")" 4 "size lie: four records"
out=$(cat "$T/lie1")
is "$(jf "$(rec_of "$out" g1@shop.example)" .outcome)/$(jf "$(rec_of "$out" g3@shop.example)" .outcome)" \
	"applied/applied" "size lie: the messages around the liar are applied"
r=$(rec_of "$out" g2@shop.example)
is "$(jf "$r" .outcome)/$(jf "$r" .reason)/$(jf "$r" .dealer)/$(jf "$r" .report)" "failed/too_large/D1/sent" \
	"size lie: the liar failed too_large, answered for the dealer (SPEC 7, 5.7)"
is "$(reports_for cap-lie g2@shop.example)" 1 "size lie: one report for the liar"
r=$(rec_of "$out" g4@shop.example)
is "$(jf "$r" .outcome)/$(jf "$r" .reason)/$(jf "$r" .report)" "failed/too_large/none" \
	"size lie: an honest big message of the chunk failed too_large, not answered"
like "$(cat "$T/lie1.err")" "UID $uid: .*RFC822.SIZE 400" "size lie: the log names the liar and its told size"
is "$(where g1@shop.example) $(where g2@shop.example) $(where g3@shop.example) $(where g4@shop.example)" \
	"Processed Processed Processed Processed" "size lie: all four moved out of INBOX"
is "$(rem | grep '^W00,')" "W00,G3,3" "size lie: nothing of the liar applied"
sg poll >"$T/lie2" 2>"$T/lie2.err"; rc=$?
is "$rc/$(cat "$T/lie2")" "0/" "size lie: the next poll does nothing"

done_testing
