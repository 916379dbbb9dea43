#!/bin/bash
# run.sh: runs every unit test binary and every end-to-end scenario, and ends with "N passed, N failed".
# Each test prints TAP lines ("ok N - …" / "not ok N - …"); a test that exits non-zero without
# a failing line counts as one failure. TESTS='pattern' runs only the matching files.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export SG_TOP=$PWD SG_BUILD=$PWD/$BUILD STOCKGATE=$PWD/$BUILD/stockgate
pass=0 fail=0 failed_names=()
logdir=$PWD/$BUILD/test-logs
rm -rf "$logdir"; mkdir -p "$logdir"

run_one() { # name, command…
	local name=$1; shift
	local log="$logdir/$(echo "$name" | tr '/' '_').log" rc p f
	"$@" >"$log" 2>&1 </dev/null; rc=$?
	p=$(grep -c '^ok ' "$log" 2>/dev/null); f=$(grep -c '^not ok ' "$log" 2>/dev/null)
	p=${p:-0}; f=${f:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $name exited $rc" >>"$log"; fi
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $name ran no check" >>"$log"; fi
	pass=$((pass + p)); fail=$((fail + f))
	if [ "$f" -gt 0 ]; then
		failed_names+=("$name")
		printf 'FAIL %-40s %4d passed, %d failed\n' "$name" "$p" "$f"
		grep -A3 '^not ok' "$log" | head -40 | sed 's/^/    /'
	else
		printf 'ok   %-40s %4d passed\n' "$name" "$p"
	fi
}

pat=${TESTS:-}
for t in "$BUILD"/tests/test-*; do
	[ -x "$t" ] || continue
	[ -n "$pat" ] && [[ $t != *$pat* ]] && continue
	run_one "unit/$(basename "$t")" "$t"
done
for t in tests/e2e/t*.sh; do
	[ -f "$t" ] || continue
	[ -n "$pat" ] && [[ $t != *$pat* ]] && continue
	run_one "e2e/$(basename "$t" .sh)" bash "$t"
done
echo
[ "${#failed_names[@]}" -gt 0 ] && echo "failed: ${failed_names[*]} (logs in $logdir)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
