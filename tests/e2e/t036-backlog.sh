#!/bin/bash
# t036-backlog.sh: a backlog of 1,000 messages in a private Dovecot INBOX, handled by
# `stockgate poll` with max_messages_per_poll = 300: four passes (300, 300, 300, 100), each
# message applied once and answered once, the store as expected, INBOX empty, a fifth pass a
# no-op (SPEC 7; catalogue L1, single poller).
. "$(dirname "$0")/../lib.sh"
SRV=$SG_TOP/tests/servers
MAIL=$FIX/poll/mail.py
KEY=0123456789abcdef0123456789abcdef
N=1000
mkdir -p "$T/nocerts" "$OUTBOX"

sg_bg "$SRV/dovecot.sh" "$T/dc" --no-tls --certs "$T/nocerts" >/dev/null 2>"$T/dc.log"
for i in $(seq 100); do [ -s "$T/dc/ports" ] && break; sleep 0.1; done
read -r IMAP_PORT _ <"$T/dc/ports"
check "Dovecot listens" wait_port "$IMAP_PORT"
# count MAILBOX: messages in a mailbox (STATUS MESSAGES).
count() {
	curl -s --user u:p "imap://127.0.0.1:$IMAP_PORT/" -X "STATUS $1 (MESSAGES)" | tr -d '\r' |
		sed -n 's/.*MESSAGES \([0-9]*\).*/\1/p'
}
write_imap_config <<CONF
max_messages_per_poll = 300
CONF
check "dealer and user" setup_dealer D1 $KEY dealer@shop.example

# One warehouses message (W00…W09), then 999 remains messages, all appended in one session.
t0=$(date +%s.%N)
check "1,000 messages appended" bash -c "$PY '$MAIL' backlog $IMAP_PORT INBOX $N --warehouses 10 >'$T/expected.csv'"
t1=$(date +%s.%N)
echo "# append: $(echo "$t1 - $t0" | bc) s"
is "$(count INBOX)" "$N" "INBOX holds $N messages"

: >"$T/records"
want=(300 300 300 100)
for pass in 1 2 3 4; do
	sg poll >"$T/out$pass" 2>"$T/err$pass"; rc=$?
	is "$rc" 0 "pass $pass exits 0"
	is "$(grep -c . "$T/out$pass")" "${want[$((pass - 1))]}" "pass $pass handles ${want[$((pass - 1))]} messages"
	cat "$T/out$pass" >>"$T/records"
done
echo "# polls: $(echo "$(date +%s.%N) - $t1" | bc) s"
is "$(count INBOX)" 0 "INBOX is empty after four passes"
is "$(count Processed)" "$N" "all $N messages in Processed"
is "$(jq -r .outcome "$T/records" | sort | uniq -c | sed 's/^ *//')" "$N applied" "every record says applied"
is "$(jq -r .message_id "$T/records" | sort -u | wc -l)" "$N" "$N distinct messages, none handled twice"
is "$(jq -r .source "$T/records" | sed 's,imap:INBOX/,,' | paste -sd' ')" "$(seq -s' ' 1 $N)" \
	"records in UID order across the passes"
is "$(sg remains export --dealer D1 --format csv)" "$(cat "$T/expected.csv")" \
	"remains export equals the last file of each warehouse"
is "$(sg warehouses list --dealer D1 --format csv | wc -l)" 11 "ten warehouses"
is "$(outbox_count)" "$N" "one report per message"
is "$(sg status --format json | jq -c .messages)" \
	"{\"applied\":$N,\"partial\":0,\"failed\":0,\"rejected\":0,\"duplicate\":0,\"deferred\":0}" \
	"status counts $N applied, nothing else"
out=$(sg poll 2>"$T/err5"); rc=$?
is "$rc/$out" "0/" "a fifth pass exits 0 and does nothing"

done_testing
