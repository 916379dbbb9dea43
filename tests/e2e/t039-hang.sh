#!/bin/bash
# t039-hang.sh: a hung peer never hangs stockgate (issue 3, catalogue F8): an IMAP server that
# never greets, or stops answering after the login, and an SMTP server that never greets, or
# never answers the end of the data, are given up after [source]/[report] timeout, and the
# message is deferred, never lost.
. "$(dirname "$0")/../lib.sh"
SRV=$SG_TOP/tests/servers

# start_hang NAME MODE: sets HANG_PORT.
start_hang() {
	local d=$T/$1 i
	mkdir -p "$d"
	sg_bg $PY "$SRV/hang_server.py" "$d" "$2"
	for i in $(seq 100); do [ -s "$d/port" ] && break; sleep 0.1; done
	HANG_PORT=$(cat "$d/port")
	wait_port "$HANG_PORT"
}

write_config </dev/null
check "dealer and user" setup_dealer

# IMAP: silent, then hung after the login. With timeout = 2 a pass gives up in seconds.
for mode in silent imap-login; do
	start_hang "imap-$mode" "$mode"
	write_config <<CONF
[source]
url = imap://127.0.0.1:$HANG_PORT/INBOX
username = u
password = p
tls = off
timeout = 2
CONF
	t0=$SECONDS
	out=$(timeout 60 "$STOCKGATE" -c "$CONF" poll 2>"$T/err-$mode"); rc=$?
	took=$((SECONDS - t0))
	is "$rc" 75 "IMAP $mode: the poll gives up with exit 75"
	check "IMAP $mode: within the timeouts, not hung ($took s)" test "$took" -le 15
	is "$out" "" "IMAP $mode: no message handled"
	like "$(cat "$T/err-$mode")" "[Tt]ime|stall" "IMAP $mode: the error says it timed out"
	check "IMAP $mode: the server was reached" grep -q "$mode" "$T/imap-$mode/log"
done
check "status after a hung mailbox: exit 69" bash -c '! "$0" -c "$1" status >/dev/null 2>&1 || false; "$0" -c "$1" status >/dev/null 2>&1; test $? -eq 69' "$STOCKGATE" "$CONF"

# SMTP: silent, then hung at the end of the data. The files are applied, the report waits.
n=0
for mode in silent smtp-data; do
	n=$((n + 1))
	start_hang "smtp-$mode" "$mode"
	write_config <<CONF
CONF
	sed -i "s|^url = dir:.*|url = smtp://127.0.0.1:$HANG_PORT\ntls = off\ntimeout = 2|" "$CONF"
	sed "s/demo-1@/hang-$mode@/" "$FIX/demo/01-warehouses.eml" >"$T/m-$mode.eml"
	t0=$SECONDS
	out=$(timeout 60 "$STOCKGATE" -c "$CONF" process "$T/m-$mode.eml" 2>"$T/serr-$mode"); rc=$?
	took=$((SECONDS - t0))
	is "$rc" 75 "SMTP $mode: process exits 75"
	check "SMTP $mode: within the timeouts, not hung ($took s)" test "$took" -le 20
	is "$(jf "$out" .outcome)/$(jf "$out" .reason)" "deferred/report_unavailable" \
		"SMTP $mode: deferred, report_unavailable"
	is "$(sg warehouses list --dealer D1 --format csv | wc -l)" 3 "SMTP $mode: the files were applied all the same"
	like "$(cat "$T/serr-$mode")" "[Tt]ime" "SMTP $mode: the error says it timed out"
done

done_testing
