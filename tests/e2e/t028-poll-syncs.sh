#!/bin/bash
# t028-poll-syncs.sh: which sync protects what in `stockgate poll` (HACKING.md, issue 12), read
# off the system calls: every message's record is in a WAL synced before the chunk's UID MOVE
# (the move is the one effect that must follow the records: a record lost after it would lose
# the message), and a message costs at most three syncs (here two, the dir: outbox's file and
# directory; the records are synced once a chunk, not once a message). The fetched bodies go to
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
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -y -s 64 -o "$T/trace" -e trace=fsync,fdatasync,pwrite64,write,sendto,openat,unlink \
	"$STOCKGATE" -c "$CONF" poll >"$T/out" 2>"$T/err"
rc=$?
is "$rc" 0 "poll exits 0 under strace"
is "$(jq -r .outcome "$T/out" | sort | uniq -c | sed 's/^ *//')" "$N applied" "all $N applied"
is "$(outbox_count)" "$N" "$N reports in the outbox"

# The line numbers, in the trace, of the first MOVE sent, of the last write to the WAL before
# it, and of the WAL syncs.
move=$(grep -n 'UID MOVE' "$T/trace" | head -1 | cut -d: -f1)
OK_MOVE=${move:+yes}
is "${OK_MOVE:-no}" yes "the poll sends a UID MOVE"
move=${move:-0}
last_wal_write=$(awk -v m="$move" 'NR < m && /pwrite64\([0-9]+<[^>]*stockgate\.db-wal>/ { n = NR } END { print n + 0 }' "$T/trace")
wal_sync=$(awk -v a="$last_wal_write" -v m="$move" 'NR > a && NR < m && /(fsync|fdatasync)\([0-9]+<[^>]*stockgate\.db-wal>/ { n++ } END { print n + 0 }' "$T/trace")
OK_WRITE=$([ "$last_wal_write" -gt 0 ] && echo yes)
is "${OK_WRITE:-no}" yes "the records are written to the WAL before the move"
is "$(awk -v w="$wal_sync" 'BEGIN { print (w >= 1) ? "synced" : "not synced" }')" synced \
	"the WAL is synced after its last write and before the UID MOVE"

syncs=$(grep -cE '^[0-9]+ +(fsync|fdatasync)\(' "$T/trace")
wal_syncs=$(grep -cE '^[0-9]+ +(fsync|fdatasync)\([0-9]+<[^>]*stockgate\.db-wal>' "$T/trace")
echo "# $syncs syncs for $N messages, $wal_syncs of the WAL"
is "$(awk -v s="$syncs" -v n="$N" 'BEGIN { print (s <= 3 * n) ? "at most 3" : "more than 3" }')" \
	"at most 3" "at most three syncs a message ($syncs for $N)"
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

done_testing
