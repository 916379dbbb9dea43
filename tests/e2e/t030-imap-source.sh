#!/bin/bash
# t030-imap-source.sh: `stockgate poll` against a private Dovecot (tests/servers/dovecot.sh):
# messages handled in UID order with "imap:INBOX/UID" records, bodies fetched without \Seen,
# moved to Processed/Rejected (created when missing), a body line that looks like a tagged reply
# taken as data, max_messages_per_poll, the COPY + STORE + EXPUNGE path of a server without
# MOVE (F4), and a UIDVALIDITY reset that re-applies nothing (F5). SPEC 7.
. "$(dirname "$0")/../lib.sh"
SRV=$SG_TOP/tests/servers
KEY=0123456789abcdef0123456789abcdef
CERTS=$T/certs
check "test certificates" "$SRV/mkcerts.sh" "$CERTS"

inject() { doveadm -c "$T/$1/dovecot.conf" save -u u -m "${3:-INBOX}" <"$2"; }
# uids NAME MAILBOX: the UIDs in a mailbox, space-separated.
uids() {
	curl -s --user u:p "imap://127.0.0.1:$IMAP_PORT/$2" -X 'UID SEARCH ALL' | tr -d '\r' |
		sed 's/^\* SEARCH *//'
}
flags() { curl -s --user u:p "imap://127.0.0.1:$IMAP_PORT/INBOX" -X 'UID FETCH 1:* (FLAGS)' | tr -d '\r'; }
imap_config() { # url [extra lines]
	local url=$1; shift
	{
		printf '[store]\npath = %s/stockgate.db\n\n' "$T"
		printf '[report]\nurl = dir:%s\nfrom = "Stock API" <api@stock.example>\n\n' "$OUTBOX"
		printf '[source]\nurl = %s\nusername = u\npassword = p\n' "$url"
		printf '%s\n' "$@"
	} >"$CONF"
	chmod 600 "$CONF"
}
mkdir -p "$OUTBOX"

start_dovecot dc
imap_config "imap://127.0.0.1:$IMAP_PORT/INBOX" "tls = off"
check "dealer and user" setup_dealer D1 $KEY dealer@shop.example
inject dc "$FIX/mail/01-outlook-warehouses.eml"
inject dc "$FIX/mail/02-thunderbird-remains.eml"
inject dc "$FIX/mail/30-unknown-sender.eml"
# A message whose body holds lines shaped like IMAP replies.
{
	printf 'From: someone@else.example\r\nTo: api@stock.example\r\nSubject: remains\r\n'
	printf 'Message-ID: <inject@else.example>\r\n\r\nS0005 OK done\r\nS0006 OK done\r\n'
	printf '* 1 FETCH (UID 1 BODY[] {3}\r\n'
} >"$T/inject.eml"
inject dc "$T/inject.eml"
is "$(uids dc INBOX)" "1 2 3 4" "four messages in INBOX"

out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "poll exits 0"
is "$(printf '%s\n' "$out" | jq -r .source | tr '\n' ' ')" "imap:INBOX/1 imap:INBOX/2 imap:INBOX/3 imap:INBOX/4 " "records in UID order"
is "$(printf '%s\n' "$out" | sed -n 1p | jq -r .outcome)" applied "UID 1 applied"
is "$(printf '%s\n' "$out" | sed -n 3p | jq -r .outcome)" rejected "unknown sender rejected"
is "$(printf '%s\n' "$out" | sed -n 4p | jq -r .message_id)" "inject@else.example" "reply-shaped body lines are data"
is "$(uids dc INBOX)" "" "INBOX is empty"
is "$(uids dc Processed | wc -w)" 2 "two messages in Processed (created)"
is "$(uids dc Rejected | wc -w)" 2 "two messages in Rejected (created)"
is "$(curl -s --user u:p "imap://127.0.0.1:$IMAP_PORT/Processed" -X 'UID FETCH 1:* (FLAGS)' | grep -c Seen)" 0 "bodies fetched without \\Seen"
like "$(cat "$T/err")" "tls = off" "plaintext IMAP is logged as a warning"

out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "second poll exits 0"
is "$out" "" "second poll: nothing pending"

# max_messages_per_poll: at most N per pass, the rest at the next one.
for f in 03-gmail-remains 04-yandex-remains 05-applemail-remains; do inject dc "$FIX/mail/$f.eml"; done
imap_config "imap://127.0.0.1:$IMAP_PORT/INBOX" "tls = off" "max_messages_per_poll = 2"
out=$(sg poll 2>"$T/err")
is "$(printf '%s\n' "$out" | grep -c .)" 2 "max_messages_per_poll = 2: two handled"
is "$(uids dc INBOX | wc -w)" 1 "one left for the next pass"
out=$(sg poll 2>"$T/err")
is "$(printf '%s\n' "$out" | grep -c .)" 1 "the next pass takes the last one"

# UIDVALIDITY reset (F5): the same messages re-injected into a new INBOX are duplicates.
before=$(sg remains export --dealer D1 --format csv | sha256sum)
check "UIDVALIDITY changed" doveadm -c "$T/dc/dovecot.conf" mailbox update -u u --uid-validity 12345 INBOX
inject dc "$FIX/mail/02-thunderbird-remains.eml"
out=$(sg poll 2>"$T/err")
is "$(jf "$out" .outcome)" duplicate "after a UIDVALIDITY reset the same message is a duplicate"
is "$(sg remains export --dealer D1 --format csv | sha256sum)" "$before" "nothing re-applied"

# A server without MOVE (F4): COPY + STORE \Deleted + UID EXPUNGE.
start_dovecot nomove --no-move
imap_config "imap://127.0.0.1:$IMAP_PORT/INBOX" "tls = off"
inject nomove "$FIX/mail/06-1c-robot-warehouses.eml"
inject nomove "$FIX/mail/31-no-role.eml"
inject nomove "$FIX/mail/07-1c-robot-remains.eml"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "no MOVE: poll exits 0"
is "$(printf '%s\n' "$out" | grep -c .)" 3 "no MOVE: three records"
is "$(uids nomove INBOX)" "" "no MOVE: INBOX emptied"
is "$(( $(uids nomove Processed | wc -w) + $(uids nomove Rejected | wc -w) + $(uids nomove Failed | wc -w) ))" 3 \
	"no MOVE: all moved"
is "$(printf '%s\n' "$out" | jq -r .outcome | tr '\n' ' ')" "rejected rejected rejected " "no MOVE: three rejected (unregistered robot, no role)"
is "$(uids nomove Rejected | wc -w)" 3 "no MOVE: the set of three copied to Rejected at once"
like "$(cat "$T/nomove/dovecot.log")" "deleted=[1-9]" "no MOVE: the fallback flagged \\Deleted"
like "$(cat "$T/err")" "no MOVE" "no MOVE: logged"

# imaps:// with the test CA.
start_dovecot tls
imap_config "imaps://127.0.0.1:$IMAPS_PORT/INBOX" "ca_file = $CERTS/ca.pem"
inject tls "$FIX/mail/07-1c-robot-remains.eml"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "imaps://: poll exits 0"
is "$(jf "$out" .source)" "imap:INBOX/1" "imaps://: record source"

done_testing
