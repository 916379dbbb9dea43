#!/bin/bash
# t029-parser-worker.sh: one parser worker takes the messages of a poll one after another; a
# message that kills it (SG_CRASH=message-child:2) or spins to its CPU limit
# (SG_CRASH=message-spin:2) fails alone as unparseable, and the messages after it in the same
# poll are parsed by a fresh worker and applied (issue 12).
. "$(dirname "$0")/../lib.sh"
MAIL=$FIX/poll/mail.py
KEY=0123456789abcdef0123456789abcdef
MD=$T/maildir
mkdir -p "$MD/new" "$MD/cur" "$MD/tmp"
write_config <<CONF
[source]
url = maildir:$MD
[limits]
parse_cpu_seconds = 1
CONF
check "dealer and user" setup_dealer D1 $KEY dealer@shop.example
n=0
base=$(($(date +%s) - 600))
# drop KIND [options]: a message in new/, named and dated (mtime: arrival) after the ones before.
drop() {
	local k=$1; shift
	n=$((n + 1))
	$PY "$MAIL" make "$k" --id "m$n@shop.example" "$@" >"$MD/tmp/$n"
	touch -d "@$((base + n))" "$MD/tmp/$n"
	mv "$MD/tmp/$n" "$MD/new/$((base + n)).$n.test"
}
records() { jq -r '[.message_id // "-", .outcome, .reason // "-"] | join(" ")' "$1" | paste -sd,; }

for hook in message-child:2 message-spin:2; do
	drop warehouses --warehouses W1,W2,W3
	drop remains --rows W1:A1:1
	drop remains --rows W2:A2:2
	drop remains --rows W3:A3:3
	SG_CRASH=$hook sg poll >"$T/out" 2>"$T/err"; rc=$?
	is "$rc" 0 "$hook: the poll exits 0"
	first=$((n - 3))
	is "$(records "$T/out")" \
		"m$first@shop.example applied -,- failed unparseable,m$((n - 1))@shop.example applied -,m$n@shop.example applied -" \
		"$hook: only the second message fails; the ones after it are applied"
	is "$(sg remains export --dealer D1 --format csv | grep -c 'A[23]')" 2 \
		"$hook: the remains of the messages after it are stored"
	sg remains export --dealer D1 --format csv >"$T/export"
	check "$hook: nothing of the failed message is stored" bash -c "! grep -q A1 '$T/export'"
	is "$(ls "$MD/new" | wc -l)" 0 "$hook: new/ is empty"
	rm -f "$T/stockgate.db"*
	setup_dealer D1 $KEY dealer@shop.example
done
done_testing
