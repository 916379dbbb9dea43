#!/bin/bash
# batch-rental.sh: `stockgate batch rental` throughput against the emulator with 100 ms latency:
# 1,000 rows over 250 contracts of 4 commands each (start, update, update, stop, each contract's
# rows together as a desk exports them) at concurrency 16. The ideal the ordering allows is the
# run's one generate_token plus max(rows × latency / concurrency, 4 × latency): prints the
# measured time over it. Not a test: run it by hand (or from bench/run.sh); the target is 1.3.
CONTRACTS=${CONTRACTS:-250}
. "$(dirname "$0")/batch-lib.sh"
bench_server rental_server.py --login bench --password bench-pass
printf 'bench-pass\n' >"$T/pass"
chmod 600 "$T/pass"
bench_config "$(printf '[rental]\nurl = http://127.0.0.1:%s/backend/app/contracts.php\nlogin = bench\npassword_file = %s/pass\ntls = off' "$PORT" "$T")"
$PY - "$CONTRACTS" >"$T/list.csv" <<'PY'
import sys
print("cmd,mva,ra,plate_number,driver_name,driver_phone,ts_expected,te_expected,start_address,end_address,mileage_limit")
for i in range(int(sys.argv[1])):
    ra = 50000 + i
    print("start,%d,%d,A%03dBC,Driver %d,+7 900 %07d,1740812400,1740848400,Moscow,," % (100 + i, ra, i % 1000, i, i))
    print("update,,%d,,,,,,,,%d" % (ra, 1000 + i))
    print("update,,%d,,,+7 901 %07d,,,,," % (ra, i))
    print("stop,,%d,,,,,,,Ilino 2c," % ra)
PY
rows=$((CONTRACTS * 4))
t0=$(date +%s.%N)
"$STOCKGATE" -q -c "$T/c.conf" batch rental "$T/list.csv" --concurrency "$CONC" -o "$T/out.csv" 2>"$T/err" || true
t1=$(date +%s.%N)
ok=$(grep -c ',ok,' "$T/out.csv" || true)
awk -v a="$t0" -v b="$t1" -v n="$rows" -v c="$CONC" -v l="$LAT" -v ok="$ok" 'BEGIN {
	ideal = l + (n * l / c > 4 * l ? n * l / c : 4 * l); t = b - a
	printf "batch rental: %d rows (%d ok) over %d contracts at concurrency %d, %.0f ms latency: %.2f s, ideal %.2f s, ratio %.2f (target <= 1.3)\n",
		n, ok, n / 4, c, l * 1000, t, ideal, t / ideal }'
