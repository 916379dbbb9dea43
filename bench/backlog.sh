#!/bin/bash
# backlog.sh: the backlog benchmark (make bench, issue 12): 1,000 waiting messages (each a ~20 KB
# windows-1251 remains CSV from a registered user) on a private loopback Dovecot, handled by
# `stockgate poll` (reports to a dir: outbox), against `mbsync` (isync, FSync yes) pulling the
# same mailbox into a Maildir. Runs alternate, each on a fresh Dovecot holding the same files;
# prints the median times, messages/s and the median ratio (target <= 3). Then the same backlog
# from a maildir: source. Nothing is removed between runs (bench_fresh in setup.sh says why).
# A benchmark, not a test: always exits 0.
set -u
cd "$(dirname "$0")/.."
TOP=$PWD
BUILD=${BUILD:-build}
SG=${SG:-$TOP/$BUILD/stockgate}
B=$TOP/$BUILD/bench/backlog
PY=/usr/bin/python3
N=${BENCH_BACKLOG:-1000}
RUNS=${BENCH_BACKLOG_RUNS:-3}
KEY=0123456789abcdef0123456789abcdef
USER=dealer@shop.example
WH=Склад1
say() { printf '%s\n' "$*"; }
mkdir -p "$B"
command -v mbsync >/dev/null || { say "backlog: mbsync not installed (isync): skipped"; exit 0; }
[ -x "$SG" ] || { say "backlog: $SG not built"; exit 0; }

if [ "$(cat "$B/mail.count" 2>/dev/null)" != "$N" ] || [ bench/gen-backlog.py -nt "$B/mail.count" ]; then
	rm -rf "$B/mail"
	$PY bench/gen-backlog.py "$B/mail" --count "$N" --user "$USER" --key "$KEY" --warehouse "$WH" ||
		{ say "backlog: generator failed"; exit 0; }
	echo "$N" >"$B/mail.count"
fi

DC_PID=
dc_stop() {
	[ -n "$DC_PID" ] || return 0
	kill "$DC_PID" 2>/dev/null; wait "$DC_PID" 2>/dev/null; DC_PID=
}
trap 'dc_stop; bench_trash_empty' EXIT
# dc_start DIR: a fresh private Dovecot whose INBOX holds the backlog; sets PORT.
dc_start() {
	local d=$1 i
	bench_fresh "$d"; mkdir -p "$d/mail/u" "$d/nocerts"
	cp -r "$B/mail/new" "$B/mail/cur" "$B/mail/tmp" "$d/mail/u/"
	tests/servers/dovecot.sh "$d" --no-tls --certs "$d/nocerts" >/dev/null 2>"$d.log" &
	DC_PID=$!
	for i in $(seq 100); do [ -s "$d/ports" ] && break; sleep 0.1; done
	read -r PORT _ <"$d/ports"
	for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
# sg_setup DIR URL: a fresh store with the dealer, the user and the warehouse, polling URL.
. bench/setup.sh
sg_setup() {
	bench_store "$1" <<CONF
[source]
url = $2
username = u
password = p
tls = off
max_messages_per_poll = 10000000
max_age = 0
CONF
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
applied() { grep -c '"outcome":"applied"' "$1" 2>/dev/null; }

# One stockgate poll over the backlog; prints its seconds, or nothing when it did not apply all.
run_sg() {
	local d=$B/sg t0 t1
	dc_start "$B/dc" || return 1
	sg_setup "$d" "imap://127.0.0.1:$PORT/INBOX" || { say "backlog: setup failed: $(tail -c 300 "$B/setup.log")" >&2; return 1; }
	t0=$EPOCHREALTIME
	"$SG" -c "$d/stockgate.conf" poll >"$B/sg.out" 2>"$B/sg.err"
	t1=$EPOCHREALTIME
	dc_stop
	[ "$(applied "$B/sg.out")" = "$N" ] || { say "backlog: poll applied $(applied "$B/sg.out") of $N: $(tail -c 300 "$B/sg.err")" >&2; return 1; }
	secs "$t0" "$t1"
}
# One mbsync pull of the backlog into a fresh Maildir.
run_mbsync() {
	local d=$B/mbsync t0 t1
	dc_start "$B/dc" || return 1
	bench_fresh "$d"; mkdir -p "$d/local"
	cat >"$d/mbsyncrc" <<RC
FSync yes

IMAPAccount bench
Host 127.0.0.1
Port $PORT
User u
Pass p
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path $d/local/
Inbox $d/local/INBOX

Channel backlog
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
RC
	t0=$EPOCHREALTIME
	mbsync -q -c "$d/mbsyncrc" backlog >"$B/mbsync.out" 2>&1
	t1=$EPOCHREALTIME
	dc_stop
	local got
	got=$(find "$d/local/INBOX" -type f -path '*/new/*' -o -type f -path '*/cur/*' | wc -l)
	[ "$got" = "$N" ] || { say "backlog: mbsync pulled $got of $N: $(tail -c 300 "$B/mbsync.out")" >&2; return 1; }
	secs "$t0" "$t1"
}
# One stockgate poll of the backlog in a local Maildir (maildir: source).
run_maildir() {
	local d=$B/md t0 t1
	bench_fresh "$B/md-src"; mkdir -p "$B/md-src"
	cp -r "$B/mail/new" "$B/mail/cur" "$B/mail/tmp" "$B/md-src/"
	sg_setup "$d" "maildir:$B/md-src" || return 1
	t0=$EPOCHREALTIME
	"$SG" -c "$d/stockgate.conf" poll >"$B/md.out" 2>"$B/md.err"
	t1=$EPOCHREALTIME
	[ "$(applied "$B/md.out")" = "$N" ] || { say "backlog: maildir poll applied $(applied "$B/md.out") of $N: $(tail -c 300 "$B/md.err")" >&2; return 1; }
	secs "$t0" "$t1"
}

: >"$B/t.sg"; : >"$B/t.mbsync"; : >"$B/t.md"; : >"$B/t.ratio"
for i in $(seq "$RUNS"); do
	a=$(run_sg) || break
	m=$(run_mbsync) || break
	l=$(run_maildir) || break
	echo "$a" >>"$B/t.sg"; echo "$m" >>"$B/t.mbsync"; echo "$l" >>"$B/t.md"
	awk -v a="$a" -v m="$m" 'BEGIN { if (m > 0) printf "%.2f\n", a / m }' >>"$B/t.ratio"
	say "$(printf 'backlog run %d: poll %ss, mbsync %ss, maildir poll %ss' "$i" "$a" "$m" "$l")"
done
if [ "$(grep -c . "$B/t.ratio")" -lt "$RUNS" ]; then
	say "$(printf '%-44s %10s   %s' "backlog: poll / mbsync ($N messages)" n/a "SKIP (could not run)")"
	exit 0
fi
S=$(median <"$B/t.sg") M=$(median <"$B/t.mbsync") L=$(median <"$B/t.md") R=$(median <"$B/t.ratio")
rate() { awk -v n="$N" -v t="$1" 'BEGIN { if (t > 0) printf "%.0f", n / t }'; }
say "$(printf '%-44s %10s   %s msg/s' "backlog: stockgate poll (imap, median)" "${S}s" "$(rate "$S")")"
say "$(printf '%-44s %10s   %s msg/s' "backlog: mbsync FSync yes (median)" "${M}s" "$(rate "$M")")"
say "$(printf '%-44s %10s   %s msg/s' "backlog: stockgate poll (maildir:, median)" "${L}s" "$(rate "$L")")"
say "$(printf '%-44s %10s   %s (target <= 3)' "backlog: median ratio poll / mbsync" "$R" \
	"$(awk -v r="$R" 'BEGIN { print r <= 3 ? "PASS" : "OVER" }')")"
say "$(printf '%-44s %10s' "backlog: ratio maildir poll / mbsync" "$(awk -v a="$L" -v m="$M" 'BEGIN { if (m > 0) printf "%.2f", a / m }')")"
exit 0
