#!/bin/bash
# batch-vin.sh: `stockgate batch vin` throughput against the emulator with 100 ms latency:
# 1,000 rows at concurrency 16; prints the measured time over the ideal (1000 × 0.1 / 16 s).
# Not a test: run it by hand (or from bench/run.sh) and compare the ratio with the target 1.2.
. "$(dirname "$0")/batch-lib.sh"
bench_server vin_server.py --token bench-token
bench_config "$(printf '[vin]\nurl = http://127.0.0.1:%s/api/processing_queue\ntoken = bench-token\ntls = off' "$PORT")"
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
bench_report "batch vin" "$t0" "$t1" 1 "$(grep -c ',ok,' "$T/out.csv" || true)"
