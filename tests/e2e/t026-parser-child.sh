#!/bin/bash
# t026-parser-child.sh: the parser worker ends with its parent (issue 12): a `process` killed
# with SIGKILL while its worker parses (SG_CRASH=message-spin: the worker spins toward a CPU limit
# of 60 s) leaves no worker running; a spinning worker is still stopped at its own limit.
. "$(dirname "$0")/../lib.sh"
write_config <<'CONF'
[limits]
parse_cpu_seconds = 60
CONF
setup_dealer D1 0123456789abcdef0123456789abcdef dealer@shop.example

# children PID: the pids whose parent is PID.
children() { ps -o pid= --ppid "$1" | tr -d ' '; }
alive() { kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" | cut -c1)" != Z ]; }

SG_CRASH=message-spin "$STOCKGATE" -c "$CONF" process "$FIX/demo/03-remains.eml" \
	>"$T/out" 2>"$T/err" &
parent=$!
child=
for i in $(seq 200); do child=$(children "$parent"); [ -n "$child" ] && break; sleep 0.05; done
check "the parsing child runs (pid ${child:-none})" test -n "$child"
kill -KILL "$parent"
wait "$parent"; rc=$?
is "$rc" 137 "the parent is killed (SIGKILL)"
# The kernel ends the child when its parent dies; without that it spins for its 60 s of CPU.
for i in $(seq 100); do alive "$child" || break; sleep 0.05; done
if alive "$child"; then
	notok "the child ended with its parent (still running)"
	kill -KILL "$child"
else
	ok "the child ended with its parent"
fi
is "$(cat "$T/out")" "" "nothing recorded for the killed run"

# The same message processed normally afterwards is applied: nothing was half-done.
out=$(sg process "$FIX/demo/01-warehouses.eml" 2>>"$T/err"); rc=$?
is "$rc/$(jf "$out" .outcome)" "0/applied" "a following process applies"
done_testing
