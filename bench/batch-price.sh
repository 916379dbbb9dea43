#!/bin/bash
# batch-price.sh: `stockgate batch price` throughput against the emulator with 100 ms latency:
# 1,000 rows through both stages (get_price_info, then get_price within --max-cost) at
# concurrency 16; prints the measured time over the ideal (2 × 1000 × 0.1 / 16 s).
# Not a test: run it by hand (or from bench/run.sh) and compare the ratio with the target 1.2.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
STOCKGATE=${STOCKGATE:-$TOP/${BUILD:-build}/stockgate}
PY=/usr/bin/python3
ROWS=${ROWS:-1000} CONC=${CONC:-16} LAT=${LAT:-0.1}
T=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench.XXXXXX")
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$PY "$TOP/tests/servers/price_server.py" "$PORT" --s-sn bench-code --latency "$LAT" &
srv=$!
trap 'kill $srv 2>/dev/null; rm -rf "$T"' EXIT
for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
printf '[store]\npath = %s/s.db\n[price]\nurl = http://127.0.0.1:%s/api/\ns_sn = bench-code\ntls = off\n' \
	"$T" "$PORT" >"$T/c.conf"
chmod 600 "$T/c.conf"
$PY - "$ROWS" >"$T/list.csv" <<'PY'
import sys
print("marka,model,name,F_R")
for i in range(int(sys.argv[1])):
    print("toyota,ipsum,фара %d,перед" % i)
PY
t0=$(date +%s.%N)
"$STOCKGATE" -q -c "$T/c.conf" batch price "$T/list.csv" --concurrency "$CONC" \
	--max-cost "$ROWS" -o "$T/out.csv" 2>"$T/err" || true
t1=$(date +%s.%N)
ok=$(grep -cE ',ok,,1,[0-9]+,1,[0-9]+,' "$T/out.csv" || true)
awk -v a="$t0" -v b="$t1" -v n="$ROWS" -v c="$CONC" -v l="$LAT" -v ok="$ok" 'BEGIN {
	ideal = 2 * n * l / c; t = b - a
	printf "batch price: %d rows (%d priced) through both stages at concurrency %d, %.0f ms latency: %.2f s, ideal %.2f s, ratio %.2f (target <= 1.2)\n",
		n, ok, c, l * 1000, t, ideal, t / ideal }'
