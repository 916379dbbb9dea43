#!/bin/bash
# serve.sh: the receiver benchmark: 10,000 multipart deliveries of a 200 KB report from 32
# concurrent clients on loopback, to `stockgate serve` (each filed: a file fsynced and renamed,
# its journal row committed) and to a bare libmicrohttpd handler that only reads and discards
# the body (the floor), built and run in the same run. Prints deliveries/s and peak RSS of each
# and their ratios. Not a test: always exits 0. BENCH_DELIVERIES and BENCH_CLIENTS override.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
SG=$TOP/$BUILD/stockgate
B=$TOP/$BUILD/bench
N=${BENCH_DELIVERIES:-10000} C=${BENCH_CLIENTS:-32} SIZE=${BENCH_REPORT_BYTES:-204800}
CC=${CC:-cc}
PY=/usr/bin/python3
mkdir -p "$B"
say() { printf '%s\n' "$*"; }
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { local i; for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

$CC -O2 -o "$B/deliver-load" "$TOP/bench/deliver-load.c" -lpthread &&
	$CC -O2 -o "$B/mhd-floor" "$TOP/bench/mhd-floor.c" $(pkg-config --cflags --libs libmicrohttpd) ||
	{ say "serve bench: cannot build the load or the floor"; exit 0; }
[ -x "$SG" ] || { say "serve bench: $SG not built"; exit 0; }

T=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench-serve.XXXXXX")
pids=()
trap 'for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT
SECRET=benchsecret0123456789abcdef0123456789
PORT=$(free_port)
printf '%s\n' "$SECRET" >"$T/secret"; chmod 600 "$T/secret"
cat >"$T/c.conf" <<CONF
[store]
path = $T/stockgate.db
[vin]
callback_secret_file = $T/secret
[serve]
listen = 127.0.0.1:$PORT
CONF
chmod 600 "$T/c.conf"
# N rows of a list waiting for their reports, as `batch vin` leaves them.
"$SG" -q -c "$T/c.conf" status >/dev/null 2>&1
sqlite3 "$T/stockgate.db" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
  INSERT INTO journal (kind, input_sha256, row, state, sent_at, answer)
  SELECT 'vin', 'bench0000000000000000', i + 1, 'waiting', 0, json_object('id', CAST(i AS TEXT),
    'message', '', 'vin', printf('WBA%014d', i), 'wait_until', 9000000000) FROM n;" ||
	{ say "serve bench: cannot fill the journal"; exit 0; }

# run NAME CMD…: starts a receiver, loads it, reads its peak RSS (VmHWM), stops it with SIGTERM.
run() {
	local name=$1; shift
	"$@" 2>"$T/$name.log" & local pid=$!
	pids+=($pid)
	wait_port "$PORT" || { say "serve bench: $name did not start: $(head -c 300 "$T/$name.log")"; return 1; }
	read -r RATE SECS FAILS < <("$B/deliver-load" "$PORT" "/vin/$SECRET" "$N" "$C" "$SIZE")
	RSS=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null)
	kill -TERM $pid; wait $pid
	printf -v "${name}_rate" '%s' "$RATE"
	printf -v "${name}_rss" '%s' "$RSS"
	say "$(printf '%-44s %9s deliveries/s (%ss, %s failed), peak RSS %s MB' "receiver: $name" "$RATE" "$SECS" "$FAILS" "$RSS")"
}
say "receiver: $N deliveries of a ${SIZE}-byte report from $C clients on loopback"
run floor "$B/mhd-floor" "$PORT" || exit 0
run serve "$SG" -q -c "$T/c.conf" serve || exit 0
filed=$(sqlite3 "$T/stockgate.db" "SELECT count(*) FROM journal WHERE state = 'ok'")
files=$(find "$T/reports" -type f | wc -l)
say "$(printf '%-44s %9s rows ok, %s files' "receiver: serve filed" "$filed" "$files")"
say "$(printf '%-44s %9s' "receiver: ratio serve / floor (deliveries/s)" "$(awk -v a="$serve_rate" -v b="$floor_rate" 'BEGIN { if (b > 0) printf "%.2f", a / b }')")"
say "$(printf '%-44s %9s' "receiver: ratio serve / floor (peak RSS)" "$(awk -v a="$serve_rss" -v b="$floor_rss" 'BEGIN { if (b > 0) printf "%.2f", a / b }')")"
exit 0
