#!/bin/bash
# t033-poll-crash.sh: SPEC 7's order of effects (apply + record → report → move) through
# `stockgate poll` against a private Dovecot, with reports over SMTP to the capture server: a
# SIGKILL at after_apply, after_report or before_move, then a normal poll, ends in the state of a
# crash-free run: the same store, every message in Processed, one report per message (two at
# most for after_report, with the same Message-ID), the spool empty, a further poll a no-op.
# Also a crash at every message in turn (after_apply, after_report), and at points inside a chunk
# of messages (after_apply:2, after_report:2, before_set_move, after_set_move). Catalogue F1, P1,
# P2, P16.
. "$(dirname "$0")/../lib.sh"
KEY=0123456789abcdef0123456789abcdef
# Three messages from D1: warehouses (applied), remains with a row error (failed, answered),
# the corrected remains (applied). All three end in Processed.
MSGS=("$FIX/demo/01-warehouses.eml" "$FIX/demo/02-remains-error.eml" "$FIX/demo/03-remains.eml")
MIDS=(demo-1@shop.example demo-2@shop.example demo-3@shop.example)
mkdir -p "$T/nocerts"

inject() { doveadm -c "$T/$1/dovecot.conf" save -u u -m INBOX <"$2"; }
# uids MAILBOX: the UIDs in a mailbox of the current Dovecot, space-separated.
uids() {
	curl -s --user u:p "imap://127.0.0.1:$IMAP_PORT/$1" -X 'UID SEARCH ALL' | tr -d '\r' |
		sed 's/^\* SEARCH *//'
}
# poll_config NAME: config with its own store $T/NAME.db, the Dovecot and capture of NAME.
poll_config() {
	{
		printf '[store]\npath = %s/%s.db\n\n' "$T" "$1"
		printf '[report]\nurl = smtp://127.0.0.1:%s\ntls = off\n' "$CAP_PORT"
		printf 'from = "Stock API" <api@stock.example>\nlanguage = ru\n\n'
		printf '[source]\nurl = imap://127.0.0.1:%s/INBOX\nusername = u\npassword = p\ntls = off\n' \
			"$IMAP_PORT"
	} >"$CONF"
	chmod 600 "$CONF"
}
# setup NAME: Dovecot, capture server, config, dealer, the three messages injected.
setup() {
	start_dovecot "dc-$1" --no-tls
	start_capture "cap-$1"
	poll_config "$1"
	setup_dealer D1 $KEY dealer@shop.example 2>/dev/null || notok "$1: dealer and user"
	local f
	for f in "${MSGS[@]}"; do inject "dc-$1" "$f"; done
}
store_state() {
	sg warehouses list --dealer D1 --format csv
	sg remains export --dealer D1 --format csv
}
# reports_for NAME MID: the number of captured reports in reply to MID.
reports_for() { grep -l "^In-Reply-To: <$2>" "$T/cap-$1"/*.eml 2>/dev/null | wc -l; }
captured() { ls "$T/cap-$1"/*.eml 2>/dev/null | wc -l; }
# spooled NAME: reports waiting in the spool (rows of the state db, files of an older stockgate).
spooled() {
	echo $(( $(find "$T/$1.db.spool" -type f 2>/dev/null | wc -l) +
		$(sqlite3 "$T/$1.db" 'SELECT count(*) FROM report_spool' 2>/dev/null || echo 100) ))
}

# The crash-free run: the reference.
setup golden
out=$(sg poll 2>"$T/err-golden"); rc=$?
is "$rc" 0 "crash-free poll exits 0"
is "$(printf '%s\n' "$out" | jq -r .outcome | tr '\n' ' ')" "applied failed applied " \
	"crash-free: applied, failed (row errors), applied"
GOLDEN=$(store_state)
like "$GOLDEN" "D4R7WE,00123" "crash-free: the remains are in the store"
is "$(captured golden)" 3 "crash-free: three reports captured"
is "$(uids Processed | wc -w)" 3 "crash-free: three messages in Processed"

# check_end NAME POINT MAXREPORTS: the state after the crash and the recovery.
check_end() {
	local name=$1 point=$2 max=$3 i n
	is "$(store_state)" "$GOLDEN" "$point: the store equals the crash-free run's"
	is "$(uids INBOX)" "" "$point: INBOX is empty"
	is "$(uids Processed | wc -w)" 3 "$point: every message in Processed"
	is "$(uids Failed | wc -w)$(uids Rejected | wc -w)" "00" "$point: nothing in Failed or Rejected"
	for i in 0 1 2; do
		n=$(reports_for "$name" "${MIDS[$i]}")
		check "$point: ${MIDS[$i]}: $n report(s), 1..$max" test "$n" -ge 1 -a "$n" -le "$max"
	done
	is "$(spooled "$name")" 0 "$point: no report left in the spool"
	out=$(sg poll 2>>"$T/err-$name"); rc=$?
	is "$rc/$out" "0/" "$point: a further poll exits 0 and does nothing"
	is "$(store_state)" "$GOLDEN" "$point: the store is unchanged by the further poll"
}

# One crash at the first message, then a normal poll.
for point in after_apply after_report before_move; do
	name=one-$point
	setup "$name"
	SG_CRASH=$point sg poll >"$T/crash-$name.out" 2>"$T/crash-$name.err"; rc=$?
	is "$rc" 137 "$point: the poll is killed (SIGKILL)"
	is "$(uids INBOX | wc -w)" 3 "$point: every message still in INBOX after the crash"
	case $point in
	after_apply) is "$(captured "$name")" 0 "$point: no report sent before the crash" ;;
	*) is "$(captured "$name")" 1 "$point: the first report was sent before the crash" ;;
	esac
	out=$(sg poll 2>"$T/err-$name"); rc=$?
	is "$rc" 0 "$point: the next poll exits 0"
	is "$(printf '%s\n' "$out" | grep -c .)" 3 "$point: the next poll gives three records"
	unlike "$(printf '%s\n' "$out" | jq -r .outcome | tr '\n' ' ')" "deferred" \
		"$point: nothing deferred in the next poll"
	# The rerun's record of the crashed message tells what happened to it: applied, and its
	# report sent (by the crashed run or by this one), the same message resumed (SPEC 5.6),
	# not a duplicate; the two messages the crash never reached are not marked resumed.
	first=$(printf '%s\n' "$out" | head -1)
	is "$(jf "$first" .outcome)/$(jf "$first" .report)" "applied/sent" \
		"$point: the rerun's record of ${MIDS[0]}: applied/sent"
	is "$(jf "$first" .resumed)/$(jf "$first" .message_id)" "true/${MIDS[0]}" \
		"$point: the rerun's record of ${MIDS[0]} says resumed"
	is "$(printf '%s\n' "$out" | tail -n +2 | jq -r .resumed | tr '\n' ' ')" "null null " \
		"$point: the messages the crash did not reach are not resumed"
	max=1; [ $point = after_report ] && max=2
	check_end "$name" "$point" "$max"
	# Each message counted once, under its outcome: no duplicate came.
	is "$(sg status --format json | jq -c '.messages | [.applied, .failed, .duplicate]')" \
		"[2,1,0]" "$point: status counts 2 applied, 1 failed, 0 duplicates"
	if [ $point = after_report ] && [ "$(reports_for "$name" "${MIDS[0]}")" -eq 2 ]; then
		is "$(grep -hi '^Message-ID:' $(grep -l "^In-Reply-To: <${MIDS[0]}>" "$T/cap-$name"/*.eml) |
			sort -u | wc -l)" 1 "$point: the report sent twice keeps its Message-ID"
	fi
done

# The same over a Maildir: a crash before the move, then a poll: the message (known by its
# Maildir name) is resumed, not a duplicate, and moved to .Processed; a copy of its bytes under
# another name is a duplicate.
MD=$T/maildir
mkdir -p "$MD/new" "$MD/cur" "$MD/tmp"
printf '[source]\nurl = maildir:%s\n' "$MD" | write_config
rm -f "$T/stockgate.db"*
setup_dealer D1 $KEY dealer@shop.example 2>/dev/null || notok "maildir: dealer and user"
cp "${MSGS[0]}" "$MD/new/1700000000.1_1.test"
SG_CRASH=before_move sg poll >"$T/crash-md.out" 2>"$T/crash-md.err"; rc=$?
is "$rc/$(jf "$(cat "$T/crash-md.out")" .outcome)" "137/applied" "maildir before_move: applied, then killed"
out=$(sg poll 2>"$T/err-md"); rc=$?
is "$rc/$(jf "$out" .outcome)/$(jf "$out" .resumed)" "0/applied/true" \
	"maildir before_move: the next poll gives its record again, resumed"
is "$(jf "$out" .source)" "maildir:1700000000.1_1.test" "maildir before_move: the same source"
is "$(find "$MD/new" "$MD/cur" -type f | wc -l)" 0 "maildir before_move: moved out of new/ and cur/"
is "$(find "$MD/.Processed" -type f -name '1700000000.1_1.test*' | wc -l)" 1 \
	"maildir before_move: moved to .Processed"
is "$(outbox_count)" 1 "maildir before_move: one report"
cp "${MSGS[0]}" "$MD/new/1700000001.2_2.test"
out=$(sg poll 2>>"$T/err-md")
is "$(jf "$out" .outcome)/$(jf "$out" .resumed)" "duplicate/null" \
	"maildir: the same bytes under another name are a duplicate"
is "$(sg status --format json | jq -c '.messages | [.applied, .duplicate]')" "[1,1]" \
	"maildir: status counts the message once and the copy as a duplicate"

# The dir: outbox is synced once a chunk, before its moves (HACKING.md): a report written and not
# synced yet stays spooled, marked with the boot it was written in. A kill once all three are
# written (before_move:3) and a poll in the same boot: the files are in the page cache, so none
# is sent again; the poll syncs them (syncfs) before it moves the messages, and drops their
# spooled copies. The same kill after two (before_move:2), then a poll after another boot
# (SG_BOOT_ID stands for it): the two files may be gone, so both go again (SPEC 7: at worst
# twice), the third once.
# md_reports MID: the reports in the outbox in reply to MID.
md_reports() { grep -l "^In-Reply-To: <$1>" "$OUTBOX"/*.eml 2>/dev/null | wc -l; }
# md_setup: an empty store, outbox and Maildir holding the three messages.
md_setup() {
	rm -rf "$T/stockgate.db"* "$OUTBOX" "$MD"
	mkdir -p "$OUTBOX" "$MD/new" "$MD/cur" "$MD/tmp"
	setup_dealer D1 $KEY dealer@shop.example 2>/dev/null || notok "outbox: dealer and user"
	for i in 0 1 2; do cp "${MSGS[$i]}" "$MD/new/170000001$i.${i}_$i.test"; done
}
md_setup
SG_CRASH=before_move:3 sg poll >"$T/crash-ob.out" 2>"$T/crash-ob.err"; rc=$?
is "$rc/$(grep -c . "$T/crash-ob.out")/$(outbox_count)" "137/3/3" \
	"outbox before_move:3: three records, three reports written, then killed"
is "$(sqlite3 "$T/stockgate.db" "SELECT count(*) FROM report_spool WHERE unsynced IS NOT NULL")" 3 \
	"outbox before_move:3: the three reports stay spooled, not synced yet"
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -o "$T/trace-ob" \
	-e trace=syncfs,fsync,rename,renameat,renameat2 "$STOCKGATE" -c "$CONF" poll >"$T/ob.out" 2>"$T/ob.err"
is "$?/$(jq -r .resumed "$T/ob.out" | tr '\n' ' ')" "0/true true true " \
	"outbox, same boot: the next poll gives the three records again, resumed"
is "$(outbox_count)/$(md_reports "${MIDS[0]}")$(md_reports "${MIDS[1]}")$(md_reports "${MIDS[2]}")" \
	"3/111" "outbox, same boot: no report sent again, one each"
is "$(awk '/syncfs\(/ && !m { s = 1 } /rename.*\.Processed/ && !m { m = NR; print s ? "synced" : "not synced" }' \
	"$T/trace-ob")" synced "outbox, same boot: the outbox is synced before the first move"
is "$(spooled stockgate)" 0 "outbox, same boot: no report left in the spool"
is "$(find "$MD/.Processed" -type f | wc -l)" 3 "outbox, same boot: the three moved to .Processed"

md_setup
SG_CRASH=before_move:2 sg poll >"$T/crash-ob2.out" 2>"$T/crash-ob2.err"; rc=$?
is "$rc/$(outbox_count)" "137/2" "outbox before_move:2: two reports written, then killed"
out=$(SG_BOOT_ID=another-boot sg poll 2>"$T/ob2.err"); rc=$?
is "$rc/$(printf '%s\n' "$out" | jq -r '.outcome + "/" + .report' | tr '\n' ' ')" \
	"0/applied/written failed/written applied/written " "outbox, another boot: the next poll exits 0"
is "$(md_reports "${MIDS[0]}")$(md_reports "${MIDS[1]}")$(md_reports "${MIDS[2]}")" 221 \
	"outbox, another boot: the two unsynced reports sent again, the third once"
like "$(cat "$T/ob2.err")" "may be lost: sent again" "outbox, another boot: the log says why they went again"
is "$(spooled stockgate)/$(find "$MD/.Processed" -type f | wc -l)" 0/3 \
	"outbox, another boot: the spool empty, the three in .Processed"
out=$(SG_BOOT_ID=another-boot sg poll 2>>"$T/ob2.err")
is "$out/$(outbox_count)" "/5" "outbox, another boot: a further poll does nothing"

# The outbox's sync refused (SG_CRASH=outbox-sync: the disk's error): the chunk is not moved and
# its reports are marked to go again; the next poll sends each once more and moves them.
md_setup
SG_CRASH=outbox-sync sg poll >"$T/ob3.out" 2>"$T/ob3.err"
is "$(grep -c . "$T/ob3.out")/$(outbox_count)/$(find "$MD/new" "$MD/cur" -type f | wc -l)" "3/3/3" \
	"outbox sync refused: three records and reports, the three left in the Maildir"
like "$(cat "$T/ob3.err")" "sync failed" "outbox sync refused: the log says so"
out=$(sg poll 2>"$T/ob3b.err"); rc=$?
is "$rc/$(md_reports "${MIDS[0]}")$(md_reports "${MIDS[1]}")$(md_reports "${MIDS[2]}")" "0/222" \
	"outbox sync refused: the next poll sends each report again"
is "$(spooled stockgate)/$(find "$MD/.Processed" -type f | wc -l)" 0/3 \
	"outbox sync refused: the spool empty, the three in .Processed"

# A crash at every message in turn: each crashing poll finishes the previous message and dies
# in the next one; then a normal poll.
for point in after_apply after_report; do
	name=each-$point
	setup "$name"
	kills=0
	for i in 1 2 3 4 5; do
		SG_CRASH=$point sg poll >>"$T/crash-$name.out" 2>>"$T/crash-$name.err"; rc=$?
		[ "$rc" -eq 137 ] || break
		kills=$((kills + 1))
	done
	is "$kills" 3 "$point at every message: three polls killed, one per message"
	out=$(sg poll 2>"$T/err-$name"); rc=$?
	is "$rc" 0 "$point at every message: the next poll exits 0"
	max=1; [ $point = after_report ] && max=2
	check_end "$name" "$point at every message" "$max"
done

# Crash points inside a chunk (the three messages are one chunk, fetched at once and moved as a
# set): after_apply:2 (the first message recorded and answered, the second recorded, none
# moved), after_report:2 (two answered), before_set_move (all recorded and answered, no move),
# after_set_move (the set moved, the poll not finished); then a normal poll.
for point in after_apply:2 after_report:2 before_set_move after_set_move; do
	name=chunk-${point/:/-}
	setup "$name"
	SG_CRASH=$point sg poll >"$T/crash-$name.out" 2>"$T/crash-$name.err"; rc=$?
	is "$rc" 137 "$point: the poll is killed (SIGKILL)"
	case $point in
	after_apply:2) want=1/1/3 ;;
	after_report:2) want=1/2/3 ;;
	before_set_move) want=3/3/3 ;;
	after_set_move) want=3/3/0 ;;
	esac
	is "$(grep -c . "$T/crash-$name.out")/$(captured "$name")/$(uids INBOX | wc -w)" "$want" \
		"$point: records printed / reports sent / left in INBOX before the crash: $want"
	out=$(sg poll 2>"$T/err-$name"); rc=$?
	is "$rc" 0 "$point: the next poll exits 0"
	unlike "$(printf '%s\n' "$out" | jq -r .outcome | tr '\n' ' ')" "deferred" \
		"$point: nothing deferred in the next poll"
	max=1; [ $point = after_report:2 ] && max=2
	check_end "$name" "$point" "$max"
done

done_testing
