#!/bin/bash
# t032-tls.sh: TLS is required and verified for the mail source and the report transport
# (SPEC 4; P14, K5): a wrong host name, an unknown CA and an expired certificate are refused
# for IMAP (imaps:// and STARTTLS) and SMTP (smtps:// and STARTTLS); the test CA given as
# ca_file is accepted; imap:// without STARTTLS fails unless tls = off.
. "$(dirname "$0")/../lib.sh"
SRV=$SG_TOP/tests/servers
KEY=0123456789abcdef0123456789abcdef
CERTS=$T/certs
check "test certificates" "$SRV/mkcerts.sh" "$CERTS"

inject() { doveadm -c "$T/$1/dovecot.conf" save -u u -m INBOX <"$2"; }

# SMTP: smtps:// and smtp:// (STARTTLS) with each bad certificate.
smtp_try() { # mode url-scheme cert → prints "rc report captured"
	start_capture "s-$1-$3" --tls "$1" --cert "$CERTS/$3.pem" --key "$CERTS/$3.key"
	{
		printf '[store]\npath = %s/stockgate.db\n\n' "$T"
		printf '[report]\nurl = %s://127.0.0.1:%s\nca_file = %s/ca.pem\n' "$2" "$CAP_PORT" "$CERTS"
		printf 'from = "Stock API" <api@stock.example>\n'
	} >"$CONF"
	chmod 600 "$CONF"
	local out rc
	# A message of its own for each try (distinct bytes, so no try is a duplicate).
	sed "s/demo-1@/tls-$1-$3@/" "$FIX/demo/01-warehouses.eml" >"$T/m-$1-$3.eml"
	out=$(sg process "$T/m-$1-$3.eml" 2>>"$T/err"); rc=$?
	echo "$rc $(jf "$out" .report) $(ls "$T/s-$1-$3"/*.eml 2>/dev/null | wc -l)"
	# This runs in $(…), a subshell the EXIT trap does not cover: stop its server here.
	kill "${_pids[-1]}" 2>/dev/null
}
write_config </dev/null
check "dealer and user" setup_dealer D1 $KEY dealer@shop.example
for mode in implicit starttls; do
	scheme=smtps; [ $mode = starttls ] && scheme=smtp
	for cert in wronghost unknown expired; do
		is "$(smtp_try $mode $scheme $cert)" "75 none 0" "SMTP $scheme: $cert certificate refused (deferred, nothing sent)"
	done
	is "$(smtp_try $mode $scheme good)" "0 sent 1" "SMTP $scheme: the test CA's certificate is accepted"
done

# IMAP through `stockgate poll`.
imap_config() { # url [extra lines]
	local url=$1; shift
	{
		printf '[store]\npath = %s/stockgate.db\n\n' "$T"
		printf '[report]\nurl = dir:%s\nfrom = "Stock API" <api@stock.example>\n\n' "$OUTBOX"
		printf '[source]\nurl = %s\nusername = u\npassword = p\nca_file = %s/ca.pem\n' "$url" "$CERTS"
		printf '%s\n' "$@"
	} >"$CONF"
	chmod 600 "$CONF"
}
for cert in wronghost unknown expired; do
	start_dovecot "d-$cert" --cert $cert
	inject "d-$cert" "$FIX/mail/02-thunderbird-remains.eml"
	imap_config "imaps://127.0.0.1:$IMAPS_PORT/INBOX"
	sg poll >"$T/out" 2>"$T/err"; rc=$?
	unlike "$rc" '^0$' "IMAP imaps://: $cert certificate refused (exit $rc)"
	is "$(wc -c <"$T/out")" 0 "IMAP imaps://: $cert: no message handled"
	imap_config "imap://127.0.0.1:$IMAP_PORT/INBOX"
	sg poll >"$T/out" 2>"$T/err"; rc=$?
	unlike "$rc" '^0$' "IMAP STARTTLS: $cert certificate refused (exit $rc)"
	like "$(cat "$T/err")" "SSL|certificate" "IMAP STARTTLS: $cert: the error names the certificate"
done

start_dovecot d-good
inject d-good "$FIX/mail/02-thunderbird-remains.eml"
imap_config "imaps://127.0.0.1:$IMAPS_PORT/INBOX"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "IMAP imaps:// with the test CA: poll exits 0"
is "$(jf "$out" .source)" "imap:INBOX/1" "IMAP imaps://: the message is handled"

# A server without STARTTLS: imap:// fails unless tls = off.
start_dovecot d-plain --no-tls
inject d-plain "$FIX/mail/03-gmail-remains.eml"
imap_config "imap://127.0.0.1:$IMAP_PORT/INBOX"
sg poll >"$T/out" 2>"$T/err"; rc=$?
unlike "$rc" '^0$' "imap:// without STARTTLS is refused (exit $rc)"
is "$(wc -c <"$T/out")" 0 "imap:// without STARTTLS: no login, no message"
like "$(cat "$T/err")" "STARTTLS|SSL" "the error names STARTTLS"
check "no login attempted in plaintext" bash -c "! grep -q 'Login: user=<u>' '$T/d-plain/dovecot.log'"
imap_config "imap://127.0.0.1:$IMAP_PORT/INBOX" "tls = off"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "imap:// with tls = off: poll exits 0"
is "$(jf "$out" .source)" "imap:INBOX/1" "imap:// with tls = off: the message is handled"
like "$(cat "$T/err")" "tls = off" "tls = off is logged as a warning"

done_testing
