#!/bin/bash
# t031-smtp.sh: reports over SMTP to a capturing server (tests/servers/smtp_capture.py): the
# envelope, CRLF line ends and dot-stuffing on the wire, a single RCPT, and the failure mapping
# (4xx and a dropped connection defer, 5xx is final) with `stockgate process` (SPEC 5.6, 6; F9).
. "$(dirname "$0")/../lib.sh"
KEY=0123456789abcdef0123456789abcdef

# smtp_config PORT [extra report lines]: the config with an SMTP report transport.
smtp_config() {
	local port=$1; shift
	{
		printf '[store]\npath = %s/stockgate.db\n\n' "$T"
		printf '[report]\nurl = smtp://127.0.0.1:%s\ntls = off\n' "$port"
		printf 'from = "Stock API" <api@stock.example>\nlanguage = ru\n'
		printf '%s\n' "$@"
	} >"$CONF"
	chmod 600 "$CONF"
}

start_capture cap
smtp_config "$CAP_PORT"
check "dealer and user" setup_dealer D1 $KEY dealer@shop.example

out=$(sg process "$FIX/mail/01-outlook-warehouses.eml" 2>"$T/err"); rc=$?
is "$rc" 0 "process with an SMTP report exits 0"
is "$(jf "$out" .report)" sent "record says report: sent"
is "$(ls "$T/cap"/*.eml 2>/dev/null | wc -l)" 1 "one message captured"
env=$(cat "$T/cap/001.env" 2>/dev/null)
is "$(printf '%s' "$env" | head -1)" "MAIL FROM:<api@stock.example>" "MAIL FROM is the [report] from address"
is "$(printf '%s\n' "$env" | grep -c '^RCPT TO:')" 1 "exactly one RCPT"
is "$(printf '%s\n' "$env" | sed -n 2p)" "RCPT TO:<dealer@shop.example>" "RCPT is the registry address"
like "$(cat "$T/err")" "tls = off" "plaintext SMTP is logged as a warning"
# Every line of the captured DATA ends with CRLF.
bare=$($PY -c 'import re,sys; d=open(sys.argv[1],"rb").read(); print(len(re.findall(rb"(?<!\r)\n", d)) + len(re.findall(rb"\r(?!\n)", d)))' "$T/cap/001.eml" 2>/dev/null)
is "$bare" 0 "no bare LF or CR in the report on the wire"
like "$(head -c 20000 "$T/cap/001.eml" | tr -d '\r')" "Auto-Submitted: auto-replied" "captured report is the stockgate report"
check "no secret in the command log" grep -q '^MAIL FROM:<api@stock.example>' "$T/cap/commands.log"

# A 4xx at RCPT: the message is deferred (exit 75), nothing captured.
start_capture cap4 --fail rcpt --code 451
smtp_config "$CAP_PORT"
out=$(sg process "$FIX/mail/02-thunderbird-remains.eml" 2>"$T/err"); rc=$?
is "$rc" 75 "451 at RCPT: exit 75"
is "$(jf "$out" .outcome)" deferred "451 at RCPT: deferred"
is "$(jf "$out" .reason)" report_unavailable "451 at RCPT: reason report_unavailable"
is "$(ls "$T/cap4"/*.eml 2>/dev/null | wc -l)" 0 "451: nothing captured"

# A dropped connection at MAIL: deferred too.
start_capture capd --drop mail
smtp_config "$CAP_PORT"
out=$(sg process "$FIX/mail/02-thunderbird-remains.eml" 2>"$T/err"); rc=$?
is "$rc" 75 "connection dropped: exit 75"
is "$(jf "$out" .outcome)" deferred "connection dropped: deferred"

# A 5xx at DATA is final: the report is given up, not retried for ever.
start_capture cap5 --fail data --code 554
smtp_config "$CAP_PORT"
out=$(sg process "$FIX/mail/04-yandex-remains.eml" 2>"$T/err"); rc=$?
unlike "$(jf "$out" .report)" '^sent$' "554 at DATA: the record does not say sent"
is "$(ls "$T/cap5"/*.eml 2>/dev/null | wc -l)" 0 "554: nothing captured"

# Once the server is back, the message deferred above goes through and its report is sent.
start_capture capok
smtp_config "$CAP_PORT"
out=$(sg process "$FIX/mail/02-thunderbird-remains.eml" 2>"$T/err"); rc=$?
is "$rc" 0 "server back: exit 0"
is "$(jf "$out" .report)" sent "server back: report sent"

# smtp:// without STARTTLS and without tls = off is refused: no plaintext fallback.
start_capture capplain
smtp_config "$CAP_PORT"
sed -i '/^tls = off$/d' "$CONF"
out=$(sg process "$FIX/mail/03-gmail-remains.eml" 2>"$T/err"); rc=$?
is "$rc" 75 "no STARTTLS offered: exit 75"
is "$(ls "$T/capplain"/*.eml 2>/dev/null | wc -l)" 0 "no STARTTLS offered: nothing sent in plaintext"
like "$(cat "$T/err")" "STARTTLS" "the error names STARTTLS"

done_testing
