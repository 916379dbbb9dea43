#!/bin/bash
# t028-poll-syncs.sh: which sync protects what in `stockgate poll` (HACKING.md, issue 12), read
# off the system calls: every message's record is in a WAL synced before the chunk's UID MOVE
# (the move is the one effect that must follow the records: a record lost after it would lose
# the message), the dir: outbox is synced (one syncfs) after the chunk's last report and before
# that MOVE, and a message costs at most three syncs (here none of its own: the records and the
# reports are synced once a chunk, not once a message). The fetched bodies go to
# files kept for the poll, one a place in a chunk, not a file made and removed a message; none
# is left after it. SPEC 7.
. "$(dirname "$0")/../lib.sh"
MAIL=$FIX/poll/mail.py
KEY=0123456789abcdef0123456789abcdef
N=120
mkdir -p "$T/nocerts" "$OUTBOX"
command -v strace >/dev/null || { echo "not ok - strace is not installed (make deps)"; done_testing; exit 1; }

start_dovecot dc --no-tls
check "Dovecot listens" wait_port "$IMAP_PORT"
write_imap_config </dev/null
check "dealer and user" setup_dealer D1 $KEY dealer@shop.example
check "$N messages appended" bash -c "$PY '$MAIL' backlog $IMAP_PORT INBOX $N --warehouses 2 >/dev/null"

# -y names each descriptor's file; -s keeps the start of what goes to Dovecot. LeakSanitizer
# cannot run under ptrace: the sanitizer build checks leaks everywhere else.
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -y -s 64 -o "$T/trace" -e trace=fsync,fdatasync,syncfs,pwrite64,write,sendto,openat,unlink,link,linkat \
	"$STOCKGATE" -c "$CONF" poll >"$T/out" 2>"$T/err"
rc=$?
is "$rc" 0 "poll exits 0 under strace"
is "$(jq -r .outcome "$T/out" | sort | uniq -c | sed 's/^ *//')" "$N applied" "all $N applied"
is "$(outbox_count)" "$N" "$N reports in the outbox"

# order TRACE: whether, in the trace, the WAL is synced after its last write before the first
# UID MOVE and before that MOVE: "synced", "not synced", "no move" or "no WAL write".
order() {
	awk '
		/UID MOVE/ && !move { move = NR; exit }
		/pwrite64\([0-9]+<[^>]*stockgate\.db-wal>/ { write = NR; synced = 0 }
		/(fsync|fdatasync)\([0-9]+<[^>]*stockgate\.db-wal>/ && write { synced = 1 }
		END { print !move ? "no move" : !write ? "no WAL write" : synced ? "synced" : "not synced" }
	' "$1"
}
is "$(order "$T/trace")" synced "the WAL is synced after its last write and before the UID MOVE"
# outbox_order TRACE: the same for the reports named into the outbox and a syncfs.
outbox_order() {
	awk '
		/UID MOVE/ && !move { move = NR; exit }
		/link(at)?\(.*\/outbox\/[^"]*\.eml"/ { write = NR; synced = 0 }
		/syncfs\(/ && write { synced = 1 }
		END { print !move ? "no move" : !write ? "no report" : synced ? "synced" : "not synced" }
	' "$1"
}
is "$(outbox_order "$T/trace")" synced "the outbox is synced after its last report and before the UID MOVE"

syncs=$(grep -cE '^[0-9]+ +(fsync|fdatasync)\(' "$T/trace")
wal_syncs=$(grep -cE '^[0-9]+ +(fsync|fdatasync)\([0-9]+<[^>]*stockgate\.db-wal>' "$T/trace")
echo "# $syncs syncs for $N messages, $wal_syncs of the WAL"
is "$(awk -v s="$syncs" -v n="$N" 'BEGIN { print (s <= 3 * n) ? "at most 3" : "more than 3" }')" \
	"at most 3" "at most three syncs a message ($syncs for $N)"
outbox_syncs=$(grep -cE '^[0-9]+ +(fsync|fdatasync|syncfs)\([0-9]+<[^>]*/outbox' "$T/trace")
is "$(awk -v s="$outbox_syncs" -v n="$N" 'BEGIN { print (s > 0 && s < n / 2) ? "a chunk" : s }')" \
	"a chunk" "the reports are synced once a chunk, not once a report ($outbox_syncs outbox syncs)"
is "$(awk -v s="$wal_syncs" -v n="$N" 'BEGIN { print (s < n / 2) ? "a chunk" : "a message" }')" \
	"a chunk" "the records are synced once a chunk, not once a message ($wal_syncs WAL syncs)"
made=$(grep -E 'openat\(.*/stockgate-[0-9]+/[0-9]+/imap-[^"]*".*O_CREAT' "$T/trace" |
	sed 's/.*"\([^"]*\)".*/\1/' | sort -u | wc -l)
is "$made" 50 "the $N bodies went to 50 files, one a place in a chunk of 50"
is "$(grep -cE 'unlink\(".*/stockgate-[0-9]+/[0-9]+/imap-' "$T/trace")" 50 "removed once, when the poll ends"
scratch=$(grep -oE '"[^"]*/stockgate-[0-9]+/[0-9]+/imap-' "$T/trace" | head -1 | sed 's,^",,; s,/imap-$,,')
is "$(ls "$scratch" 2>/dev/null | wc -l)" 0 "no fetched body is left in the poll's scratch directory"
is "$(curl -s --user u:p "imap://127.0.0.1:$IMAP_PORT/" -X 'STATUS INBOX (MESSAGES)' | tr -d '\r' |
	sed -n 's/.*MESSAGES \([0-9]*\).*/\1/p')" 0 "INBOX is empty"

# Another connection (serve, the metrics timer) holding a read snapshot taken on an emptied WAL
# keeps a checkpoint from syncing anything: the WAL itself must be synced before the move.
mkfifo "$T/hold"
$PY - "$T/stockgate.db" "$T/hold" >"$T/reader" <<'PY' &
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.execute("BEGIN")
print(db.execute("SELECT count(*) FROM ledger").fetchone()[0], flush=True)
open(sys.argv[2]).read()  # until the test writes to the fifo
db.execute("COMMIT")
PY
READER=$!
for i in $(seq 100); do [ -s "$T/reader" ] && break; sleep 0.1; done
is "$(cat "$T/reader")" "$N" "a reader holds a snapshot of the $N records"
mkdir -p "$T/late"
for i in $(seq 10); do
	$PY "$MAIL" make remains --id "late-$i@shop.example" --rows "W00:LATE$i:$i" \
		--date "Wed, 02 Dec 2026 00:00:$(printf %02d "$i") +0000" >"$T/late/$(printf %02d "$i").eml"
done
check "10 more messages appended" $PY "$MAIL" append "$IMAP_PORT" INBOX "$T"/late/*.eml
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -y -s 64 -o "$T/trace2" -e trace=fsync,fdatasync,pwrite64,write,sendto \
	"$STOCKGATE" -c "$CONF" poll >"$T/out2" 2>"$T/err2"
is "$?/$(jq -r .outcome "$T/out2" | sort | uniq -c | sed 's/^ *//')" "0/10 applied" \
	"the poll beside the reader applies the 10"
is "$(order "$T/trace2")" synced "beside the reader's snapshot too, the WAL is synced before the move"
echo >"$T/hold"
wait "$READER"

done_testing
