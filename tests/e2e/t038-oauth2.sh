#!/bin/bash
# t038-oauth2.sh: OAuth2 bearer tokens from oauth2_token_command. IMAP: `stockgate poll` against a
# private Dovecot whose oauth2 passdb asks an introspection endpoint
# (tests/servers/oauth2_introspect.py) about the token; SMTP: `stockgate process` against the
# capturing server offering AUTH XOAUTH2 (tests/servers/smtp_capture.py --xoauth2). A good token
# logs in and the message or report goes through; a wrong one fails the pass (exit 75) and
# handles nothing; a token never reaches stderr. SPEC 7 (source), 5.6 (report).
. "$(dirname "$0")/../lib.sh"
SRV=$SG_TOP/tests/servers
KEY=0123456789abcdef0123456789abcdef
CERTS=$T/certs
TOKEN=ya29.$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
BAD=ya29.$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
TOKFILE=$T/token
printf '%s\n' "$TOKEN" >"$TOKFILE"
mkdir -p "$OUTBOX"
check "test certificates" "$SRV/mkcerts.sh" "$CERTS"

# The introspection endpoint: active only for $TOKEN, as user u.
mkdir -p "$T/introspect"
sg_bg $PY "$SRV/oauth2_introspect.py" "$T/introspect" --token "$TOKEN" --user u \
	>/dev/null 2>"$T/introspect.log"
for i in $(seq 100); do [ -s "$T/introspect/port" ] && break; sleep 0.1; done
INTRO_PORT=$(cat "$T/introspect/port")
check "introspection endpoint up" wait_port "$INTRO_PORT"
INTRO=http://127.0.0.1:$INTRO_PORT/introspect

inject() { doveadm -c "$T/$1/dovecot.conf" save -u u -m "${3:-INBOX}" <"$2"; }
# PLAIN u:p still works beside the oauth2 passdb: the helpers look with it.
uids() {
	curl -s --user u:p "imap://127.0.0.1:$IMAP_PORT/$1" -X 'UID SEARCH ALL' | tr -d '\r' |
		sed 's/^\* SEARCH *//'
}
imap_config() { # [extra source lines]
	{
		printf '[store]\npath = %s/stockgate.db\n\n' "$T"
		printf '[report]\nurl = dir:%s\nfrom = "Stock API" <api@stock.example>\n\n' "$OUTBOX"
		printf '[source]\nurl = imap://127.0.0.1:%s/INBOX\ntls = off\nusername = u\n' "$IMAP_PORT"
		printf '%s\n' "$@"
	} >"$CONF"
	chmod 600 "$CONF"
}
logins() { grep -c "Login: user=<u>, method=$2" "$T/$1/dovecot.log"; }

# --- IMAP, a server offering XOAUTH2 only (as Outlook.com) ---
start_dovecot xo --no-tls --oauth2 "$INTRO" --oauth2-mechs xoauth2
imap_config "oauth2_token_command = cat $TOKFILE"
check "dealer and user" setup_dealer D1 $KEY dealer@shop.example
like "$(curl -s "imap://127.0.0.1:$IMAP_PORT" -X CAPABILITY | tr -d '\r')" "AUTH=XOAUTH2" \
	"Dovecot offers AUTH=XOAUTH2"
inject xo "$FIX/mail/01-outlook-warehouses.eml"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "IMAP XOAUTH2, good token: poll exits 0"
is "$(jf "$out" .source)" "imap:INBOX/1" "IMAP XOAUTH2: the message is handled"
is "$(jf "$out" .outcome)" applied "IMAP XOAUTH2: applied"
is "$(uids INBOX)" "" "IMAP XOAUTH2: INBOX emptied"
is "$(uids Processed | wc -w)" 1 "IMAP XOAUTH2: moved to Processed"
is "$(logins xo XOAUTH2)" 1 "Dovecot logged one XOAUTH2 login"
is "$(grep -cx 'POST active' "$T/introspect/requests.log")" 1 "the token was introspected once"
unlike "$(cat "$T/err")" "$TOKEN" "IMAP XOAUTH2: the token is not in stderr"

# A wrong token: the login is refused, the pass fails, nothing is handled or moved.
printf '%s\n' "$BAD" >"$TOKFILE"
inject xo "$FIX/mail/02-thunderbird-remains.eml"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 75 "IMAP XOAUTH2, wrong token: poll exits 75"
is "$out" "" "IMAP XOAUTH2, wrong token: no record"
is "$(uids INBOX | wc -w)" 1 "IMAP XOAUTH2, wrong token: the message stays in INBOX"
like "$(cat "$T/err")" "login was refused" "IMAP XOAUTH2, wrong token: the error says so"
unlike "$(cat "$T/err")" "$BAD" "IMAP XOAUTH2, wrong token: the token is not in stderr"
is "$(grep -cx 'POST inactive' "$T/introspect/requests.log")" 1 "the wrong token was introspected"

# A token command that fails: no connection attempt worth the name, exit 75.
imap_config "oauth2_token_command = echo no token here >&2; exit 3"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 75 "failing oauth2_token_command: poll exits 75"
like "$(cat "$T/err")" "oauth2_token_command failed" "failing oauth2_token_command: named in stderr"

# Back to the good token: the waiting message goes through.
printf '%s\n' "$TOKEN" >"$TOKFILE"
imap_config "oauth2_token_command = cat $TOKFILE"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "IMAP XOAUTH2, token fixed: poll exits 0"
is "$(jf "$out" .source)" "imap:INBOX/2" "IMAP XOAUTH2, token fixed: the waiting message handled"

# --- IMAP, a server offering XOAUTH2 and OAUTHBEARER (as Gmail) ---
start_dovecot both --no-tls --oauth2 "$INTRO"
imap_config "oauth2_token_command = cat $TOKFILE"
inject both "$FIX/mail/03-gmail-remains.eml"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "IMAP, both mechanisms offered: poll exits 0"
is "$(uids Processed | wc -w)" 1 "IMAP, both mechanisms offered: moved"
# LOGIN_OPTIONS "AUTH=XOAUTH2" holds even when OAUTHBEARER is offered (libcurl would take
# OAUTHBEARER first). The curl tool's --oauth2-bearer also sets CURLOPT_HTTPAUTH = CURLAUTH_BEARER,
# with which libcurl 7.80+ ignores AUTH= and sends OAUTHBEARER (curl issue #10259).
is "$(logins both XOAUTH2) $(logins both OAUTHBEARER)" "1 0" \
	"IMAP, both mechanisms offered: XOAUTH2 used, not OAUTHBEARER"

smtp_config() { # [extra report lines]
	{
		printf '[store]\npath = %s/stockgate.db\n\n' "$T"
		printf '[report]\nurl = smtp://127.0.0.1:%s\ntls = off\n' "$CAP_PORT"
		printf 'from = "Stock API" <api@stock.example>\nlanguage = ru\n'
		printf 'username = api@stock.example\n'
		printf '%s\n' "$@"
	} >"$CONF"
	chmod 600 "$CONF"
}
start_capture smtp --xoauth2 "api@stock.example:$TOKEN"
like "$(printf 'EHLO t\r\nQUIT\r\n' | curl -s telnet://127.0.0.1:$CAP_PORT | tr -d '\r')" \
	"AUTH.*XOAUTH2" "capture server offers AUTH XOAUTH2"
smtp_config "oauth2_token_command = cat $TOKFILE"
out=$(sg process "$FIX/mail/04-yandex-remains.eml" 2>"$T/err"); rc=$?
is "$rc" 0 "SMTP XOAUTH2, good token: process exits 0"
is "$(jf "$out" .report)" sent "SMTP XOAUTH2: report sent"
is "$(ls "$T/smtp"/*.eml 2>/dev/null | wc -l)" 1 "SMTP XOAUTH2: the report is captured"
is "$(cat "$T/smtp/auth.log" 2>/dev/null)" "XOAUTH2 ok" "SMTP XOAUTH2: authenticated with XOAUTH2"
check "SMTP XOAUTH2: AUTH XOAUTH2 on the wire" grep -q '^AUTH XOAUTH2 ' "$T/smtp/commands.log"
unlike "$(cat "$T/err")" "$TOKEN" "SMTP XOAUTH2: the token is not in stderr"

printf '%s\n' "$BAD" >"$TOKFILE"
out=$(sg process "$FIX/mail/05-applemail-remains.eml" 2>"$T/err"); rc=$?
is "$rc" 75 "SMTP XOAUTH2, wrong token: exit 75"
is "$(jf "$out" .outcome)" deferred "SMTP XOAUTH2, wrong token: deferred"
is "$(jf "$out" .reason)" report_unavailable "SMTP XOAUTH2, wrong token: report_unavailable"
is "$(ls "$T/smtp"/*.eml 2>/dev/null | wc -l)" 1 "SMTP XOAUTH2, wrong token: nothing more captured"
is "$(tail -1 "$T/smtp/auth.log")" "XOAUTH2 refused" "SMTP XOAUTH2, wrong token: refused by the server"
like "$(cat "$T/err")" "login was refused" "SMTP XOAUTH2, wrong token: the error says so"
unlike "$(cat "$T/err")" "$BAD" "SMTP XOAUTH2, wrong token: the token is not in stderr"

done_testing
