#!/bin/bash
# batch-vin.sh: `stockgate batch vin` throughput against the emulator with 100 ms latency:
# 1,000 rows at concurrency 16; prints the measured time over the ideal (1000 × 0.1 / 16 s).
# Not a test: run it by hand (or from bench/run.sh) and compare the ratio with the target 1.2.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
STOCKGATE=${STOCKGATE:-$TOP/${BUILD:-build}/stockgate}
PY=/usr/bin/python3
ROWS=${ROWS:-1000} CONC=${CONC:-16} LAT=${LAT:-0.1}
T=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench.XXXXXX")
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$PY "$TOP/tests/servers/vin_server.py" "$PORT" --token bench-token --latency "$LAT" &
srv=$!
trap 'kill $srv 2>/dev/null; rm -rf "$T"' EXIT
for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
printf '[store]\npath = %s/s.db\n[vin]\nurl = http://127.0.0.1:%s/api/processing_queue\ntoken = bench-token\ntls = off\n' \
	"$T" "$PORT" >"$T/c.conf"
chmod 600 "$T/c.conf"
$PY - "$ROWS" >"$T/list.csv" <<'PY'
import random, sys
rnd = random.Random(7); chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
print("vin,check_type,brand,language")
for i in range(int(sys.argv[1])):
    print("%s,check_data_bmw_full,BMW,ru" % "".join(rnd.choice(chars) for _ in range(17)))
PY
t0=$(date +%s.%N)
"$STOCKGATE" -q -c "$T/c.conf" batch vin "$T/list.csv" --concurrency "$CONC" -o "$T/out.csv" 2>"$T/err" || true
t1=$(date +%s.%N)
ok=$(grep -c ',ok,' "$T/out.csv" || true)
awk -v a="$t0" -v b="$t1" -v n="$ROWS" -v c="$CONC" -v l="$LAT" -v ok="$ok" 'BEGIN {
	ideal = n * l / c; t = b - a
	printf "batch vin: %d rows (%d ok) at concurrency %d, %.0f ms latency: %.2f s, ideal %.2f s, ratio %.2f (target <= 1.2)\n",
		n, ok, c, l * 1000, t, ideal, t / ideal }'
