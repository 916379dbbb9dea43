# batch-lib.sh: what the batch benchmarks share (sourced): an emulator from tests/servers on a
# free port with LAT seconds of latency, a private temp dir, a config, and the ratio line.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
STOCKGATE=${STOCKGATE:-$TOP/${BUILD:-build}/stockgate}
PY=/usr/bin/python3
ROWS=${ROWS:-1000} CONC=${CONC:-16} LAT=${LAT:-0.1}
T=$(mktemp -d "${TMPDIR:-/tmp}/sg-bench.XXXXXX")
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# bench_server SERVER.py ARGS…: starts the emulator, killed with the temp dir at exit.
bench_server() {
	$PY "$TOP/tests/servers/$1" "$PORT" "${@:2}" --latency "$LAT" &
	srv=$!
	trap 'kill $srv 2>/dev/null; rm -rf "$T"' EXIT
	for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
}

# bench_config SECTION-TEXT: the config, [store] in the temp dir, then the kind's section.
bench_config() {
	printf '[store]\npath = %s/s.db\n%s\n' "$T" "$1" >"$T/c.conf"
	chmod 600 "$T/c.conf"
}

# bench_report WHAT T0 T1 CALLS-PER-ROW GOOD: the measured time over the ideal
# (ROWS x CALLS-PER-ROW x LAT / CONC).
bench_report() {
	awk -v w="$1" -v a="$2" -v b="$3" -v k="$4" -v ok="$5" -v n="$ROWS" -v c="$CONC" -v l="$LAT" 'BEGIN {
		ideal = k * n * l / c; t = b - a
		printf "%s: %d rows (%d ok) at concurrency %d, %.0f ms latency: %.2f s, ideal %.2f s, ratio %.2f (target <= 1.2)\n",
			w, n, ok, c, l * 1000, t, ideal, t / ideal }'
}
