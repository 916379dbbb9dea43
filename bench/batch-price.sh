#!/bin/bash
# batch-price.sh: `stockgate batch price` throughput against the emulator with 100 ms latency:
# 1,000 rows through both stages (get_price_info, then get_price within --max-cost) at
# concurrency 16; prints the measured time over the ideal (2 × 1000 × 0.1 / 16 s).
# Not a test: run it by hand (or from bench/run.sh) and compare the ratio with the target 1.2.
. "$(dirname "$0")/batch-lib.sh"
bench_server price_server.py --s-sn bench-code
bench_config "$(printf '[price]\nurl = http://127.0.0.1:%s/api/\ns_sn = bench-code\ntls = off' "$PORT")"
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
bench_report "batch price (both stages)" "$t0" "$t1" 2 \
	"$(grep -cE ',ok,,1,[0-9]+,1,[0-9]+,' "$T/out.csv" || true)"
