#!/bin/bash
# t061-config-check.sh: `stockgate config check [--connect]` (issue 11): the effective settings
# with secrets masked; 78 with the line at fault; with --connect one line a peer against the test
# servers (Dovecot, smtp_capture, keaz, vin, frame, price, rental), and each failure kind once:
# certificate, DNS, refused, login, timeout. Nothing is sent, nothing is charged.
. "$(dirname "$0")/../lib.sh"
SRV=$SG_TOP/tests/servers
CERTS=$T/certs
SMTPPW=SGCANARYsmtp0123 VTOKEN=SGCANARYvin0123 FKEY=SGCANARYframe0123
SSN=SGCANARYssn0123 RPW=SGCANARYrental0123
check "test certificates" "$SRV/mkcerts.sh" "$CERTS"
# line WORD FILE: the line of FILE starting with "WORD: ".
line() { grep "^$1: " "$2"; }
cc() { sg config check "$@" >"$T/out" 2>"$T/err"; echo $?; }

# ---- offline: settings, masking, the line at fault
write_config <<EOF
[source]
url = maildir:$T/Maildir
poll_interval = 30
[vin]
url = https://vin.example/api
token = $VTOKEN
EOF
mkdir -p "$T/Maildir/cur" "$T/Maildir/new" "$T/Maildir/tmp"
is "$(cc)" 0 "a valid configuration: exit 0"
like "$(cat "$T/out")" $'\\[source\\]\nurl = maildir:' "the effective settings, by section"
like "$(cat "$T/out")" $'poll_interval = 30\n' "a setting of the file"
like "$(cat "$T/out")" $'max_attempts = 10\n' "a default"
like "$(cat "$T/out")" $'token = \\(set\\)\n' "a secret is shown as (set)"
unlike "$(cat "$T/out" "$T/err")" 'SGCANARY' "no secret in the output"

write_config <<EOF
[source]
url = maildir:$T/Maildir
poll_interval = soon
EOF
is "$(cc)" 78 "a bad value: exit 78"
like "$(cat "$T/err")" "$CONF:$(grep -n '^poll_interval' "$CONF" | cut -d: -f1): \\[source\\] poll_interval: 'soon'" "… naming the file, the line and the key"
write_config <<EOF
[mirror]
url = https://user:SGCANARYurl@dealer.example/restapi
EOF
is "$(cc)" 0 "a URL with a password"
like "$(cat "$T/out")" $'url = https://\\*\\*\\*@dealer.example/restapi\n' "… is shown masked"
unlike "$(cat "$T/out" "$T/err")" 'SGCANARY' "… without the password"
write_config <<EOF
[source]
url = imaps://u:SGCANARYsrc@mail.example/INBOX
EOF
is "$(cc)" 78 "a login inside the source URL: 78, as at start-up"
like "$(cat "$T/err")" "not in the URL" "… saying where the login goes"
unlike "$(cat "$T/out" "$T/err")" 'SGCANARY' "… without the password"
write_config <<EOF
[vin]
url = https://vin.example/api
token = $VTOKEN
EOF
chmod 644 "$CONF"
is "$(cc)" 78 "an inline secret in a file others can read: 78"
like "$(cat "$T/err")" 'chmod 600' "… saying what to do"
unlike "$(cat "$T/out" "$T/err")" 'SGCANARY' "… without quoting the secret"
STOCKGATE_CONFIG=$T/none.conf "$STOCKGATE" config check >/dev/null 2>&1
is "$?" 78 "no configuration file: 78"

# ---- --connect: every peer answers
start_dovecot imap
DC_OKS=$IMAPS_PORT
echo p >"$T/imap.pw"; chmod 600 "$T/imap.pw"   # Dovecot's user u has the password p
start_capture smtp --tls starttls --cert "$CERTS/good.pem" --key "$CERTS/good.key" --auth "u:$SMTPPW"
SMTP_OK=$CAP_PORT
echo "$SMTPPW" >"$T/smtp.pw"; chmod 600 "$T/smtp.pw"
KPORT=$(free_port); sg_bg $PY "$SRV/keaz_server.py" "$KPORT" --dealer "0123456789abcdef0123456789abcdef=D1"
VPORT=$(free_port); sg_bg $PY "$SRV/vin_server.py" "$VPORT" --token "$VTOKEN" --balance 4242
FPORT=$(free_port); sg_bg $PY "$SRV/frame_server.py" "$FPORT" --key "$FKEY"
PPORT=$(free_port); sg_bg $PY "$SRV/price_server.py" "$PPORT" --s-sn "$SSN" --cost 3
RPORT=$(free_port); sg_bg $PY "$SRV/rental_server.py" "$RPORT" --login ops --password "$RPW"
echo "$VTOKEN" >"$T/vin.token"; echo "$FKEY" >"$T/frame.key"; echo "$SSN" >"$T/price.ssn"
echo "$RPW" >"$T/rental.pw"
chmod 600 "$T/vin.token" "$T/frame.key" "$T/price.ssn" "$T/rental.pw"
for p in $KPORT $VPORT $FPORT $PPORT $RPORT; do wait_port "$p" || notok "server on $p started"; done

# full_config SOURCE-URL REPORT-URL: every peer configured. [source] timeout is $SRC_TIMEOUT, else
# 5 s: more than Dovecot's delay before it refuses a login (2 s).
full_config() {
	{
		printf '[store]\npath = %s/stockgate.db\n' "$T"
		printf '[source]\nurl = %s\nusername = u\npassword_file = %s/imap.pw\nca_file = %s/ca.pem\ntimeout = %s\n' "$1" "$T" "$CERTS" "${SRC_TIMEOUT:-5}"
		printf '[report]\nurl = %s\nusername = u\npassword_file = %s/smtp.pw\nca_file = %s/ca.pem\n' "$2" "$T" "$CERTS"
		printf 'from = "Stock API" <api@stock.example>\ntimeout = 2\n'
		printf '[mirror]\nurl = http://127.0.0.1:%s/restapi\ntls = off\ntimeout = 2\n' "$KPORT"
		printf '[vin]\nurl = http://127.0.0.1:%s/api/processing_queue\ntoken_file = %s/vin.token\ntls = off\n' "$VPORT" "$T"
		printf '[frame]\nurl = http://127.0.0.1:%s/reportrequestframe.ashx\nkey_file = %s/frame.key\ntls = off\n' "$FPORT" "$T"
		printf '[price]\nurl = http://127.0.0.1:%s/api.php\ns_sn_file = %s/price.ssn\ntls = off\n' "$PPORT" "$T"
		printf '[rental]\nurl = http://127.0.0.1:%s/backend/app/contracts.php\nlogin = ops\npassword_file = %s/rental.pw\ntls = off\n' "$RPORT" "$T"
	} >"$CONF"
	chmod 600 "$CONF"
}
full_config "imaps://127.0.0.1:$DC_OKS/INBOX" "smtp://127.0.0.1:$SMTP_OK"
O=$T/out
is "$(cc --connect)" 0 "--connect: every peer answers: exit 0"
like "$(line source "$O")" "^source: ok: imaps://127.0.0.1:$DC_OKS: logged in as u, INBOX selected; Processed, Rejected, Failed missing \\(created at the first move\\)" "source: logged in, the folders listed"
like "$(line report "$O")" "^report: ok: smtp://127.0.0.1:$SMTP_OK: greeted \\(.*\\), authenticated as u; no message sent" "report: greeted and authenticated"
like "$(line mirror "$O")" "^mirror: ok: .* answers as the dealer API" "mirror: answers"
like "$(line vin "$O")" "^vin: ok: .*the token is accepted; balance 4242 \\(get_balance, free\\)" "vin: the token works (get_balance)"
like "$(line frame "$O")" "^frame: ok: .*the key is accepted" "frame: the key works (checkqueue)"
like "$(line price "$O")" "^price: ok: http://127.0.0.1:$PPORT/api.php: the program code is accepted; posible yes, get_price costs 3 \\(get_price_info, free\\)" "price: the s_sn works (get_price_info)"
like "$(line rental "$O")" "^rental: ok: http://127.0.0.1:$RPORT/backend/app/contracts.php: the login ops is accepted \\(generate_token" "rental: the login works (generate_token)"
is "$(grep -c '^[a-z]*: ok: ' "$O")" 7 "seven peers, seven ok lines"
unlike "$(cat "$T/out" "$T/err")" 'SGCANARY' "--connect prints no secret"
is "$(grep -c -E '^(MAIL|RCPT|DATA)' "$T/smtp/commands.log")" 0 "SMTP: no MAIL, RCPT or DATA sent"
is "$(ls "$T/smtp"/*.eml 2>/dev/null | wc -l)" 0 "SMTP: no message captured"
is "$(curl -s "http://127.0.0.1:$VPORT/_stats" | jq -r '.charged, .balance_calls' | tr '\n' ' ')" "0 1 " "vin: one get_balance, nothing charged"
is "$(curl -s "http://127.0.0.1:$FPORT/_stats" | jq -r '.charged, (.modes.setqueue // 0), .modes.checkqueue' | tr '\n' ' ')" "0 0 1 " "frame: one checkqueue, no setqueue, nothing charged"
is "$(curl -s "http://127.0.0.1:$KPORT/_log" | jq -r '[.[].action] | join(",")')" "warehouse.list" "mirror: one warehouse.list, no change"
is "$(curl -s "http://127.0.0.1:$PPORT/_stats" | jq -r '.charged, .debited, .info_calls, .max_price_calls' | tr '\n' ' ')" "0 0 1 0 " "price: one get_price_info, no get_price, nothing charged"
is "$(curl -s "http://127.0.0.1:$RPORT/_stats" | jq -c '[.token_calls, .starts, .stops, .order]')" '[1,{},{},{}]' "rental: one generate_token, no start, update or stop"
unlike "$(cat "$T/out" "$T/err")" "$(curl -s "http://127.0.0.1:$RPORT/_stats" | jq -r '.tokens[0]')" "rental: the token is not printed"

# A folder that exists is said so (Dovecot makes it on demand).
doveadm -c "$T/imap/dovecot.conf" mailbox create -u u Processed
cc --connect >/dev/null
like "$(line source "$O")" "Processed exists; Rejected, Failed missing" "source: an existing folder is named as existing"

# ---- each failure kind once
# login: the wrong IMAP and SMTP passwords.
echo wrong >"$T/imap.pw"; echo wrong >"$T/smtp.pw"
is "$(cc --connect)" 69 "wrong passwords: exit 69"
like "$(line source "$O")" '^source: failed: login: ' "source: the login is refused, in plain words"
like "$(line report "$O")" '^report: failed: login: ' "report: the login is refused, in plain words"
like "$(line vin "$O")" '^vin: ok: ' "the other peers are still checked"
echo p >"$T/imap.pw"; echo "$SMTPPW" >"$T/smtp.pw"

# certificate: an SMTP server whose certificate names another host.
start_capture smtp-bad --tls implicit --cert "$CERTS/wronghost.pem" --key "$CERTS/wronghost.key"
full_config "imaps://127.0.0.1:$DC_OKS/INBOX" "smtps://127.0.0.1:$CAP_PORT"
is "$(cc --connect)" 69 "a bad certificate: exit 69"
like "$(line report "$O")" '^report: failed: certificate: ' "report: the certificate is refused, in plain words"
is "$(ls "$T/smtp-bad"/*.eml 2>/dev/null | wc -l)" 0 "… and nothing is sent"

# timeout: an IMAP server that never greets ([source] timeout = 1).
mkdir -p "$T/hang"
sg_bg $PY "$SRV/hang_server.py" "$T/hang" silent
for i in $(seq 100); do [ -s "$T/hang/port" ] && break; sleep 0.1; done
wait_port "$(cat "$T/hang/port")"
SRC_TIMEOUT=1 full_config "imap://127.0.0.1:$(cat "$T/hang/port")/INBOX" "smtp://127.0.0.1:$SMTP_OK"
is "$(cc --connect)" 69 "a silent server: exit 69"
like "$(line source "$O")" '^source: failed: timeout: ' "source: the timeout, in plain words"

# refused: nothing listens on the vin port; DNS: the mirror under .invalid.
DEAD=$(free_port)
full_config "imaps://127.0.0.1:$DC_OKS/INBOX" "smtp://127.0.0.1:$SMTP_OK"
sed -i "s|^url = http://127.0.0.1:$VPORT/|url = http://127.0.0.1:$DEAD/|; s|^url = http://127.0.0.1:$KPORT/restapi|url = http://stockgate-test.invalid/restapi|" "$CONF"
is "$(cc --connect)" 69 "a refused port and an unknown host: exit 69"
like "$(line vin "$O")" '^vin: failed: refused: ' "vin: the refused connection, in plain words"
like "$(line mirror "$O")" '^mirror: failed: .*(resolve|DNS)' "mirror: the unknown host name, in plain words"
sed -i "s|^url = http://127.0.0.1:$RPORT/|url = http://127.0.0.1:$DEAD/|" "$CONF"
cc --connect >/dev/null
like "$(line rental "$O")" "^rental: failed: refused: .*\\(http://127.0.0.1:$DEAD/backend/app/contracts.php\\)" "rental: the refused connection, in plain words"
sed -i "s|^url = http://127.0.0.1:$DEAD/backend|url = http://127.0.0.1:$RPORT/backend|" "$CONF"

# login on a vendor API: a wrong frame key.
echo wrong-key >"$T/frame.key"
is "$(cc --connect)" 69 "a wrong frame key: exit 69"
like "$(line frame "$O")" '^frame: failed: login: .*refused the key' "frame: the refused key, in plain words"
is "$(curl -s "http://127.0.0.1:$FPORT/_stats" | jq -r '.charged')" 0 "frame: still nothing charged"

# login on the price and rental services: a wrong s_sn, a wrong password.
echo wrong-ssn >"$T/price.ssn"; echo wrong-password >"$T/rental.pw"
TOKEN_CALLS=$(curl -s "http://127.0.0.1:$RPORT/_stats" | jq -r '.token_calls')
is "$(cc --connect)" 69 "a wrong s_sn and a wrong rental password: exit 69"
like "$(line price "$O")" '^price: failed: login: .*no account for the program code \(s_sn\) \(posible no_account\); check \[price\] s_sn_file' "price: the refused s_sn, in plain words"
like "$(line rental "$O")" '^rental: failed: login: .*refused the login ops and its password .*check \[rental\] login and password_file' "rental: the refused password, in plain words"
unlike "$(cat "$T/out" "$T/err")" 'SGCANARY|wrong-' "… without quoting a secret"
is "$(curl -s "http://127.0.0.1:$PPORT/_stats" | jq -r '.charged, .debited, .max_price_calls' | tr '\n' ' ')" "0 0 0 " "price: still no get_price, nothing charged"
is "$(curl -s "http://127.0.0.1:$RPORT/_stats" | jq -c "[.token_calls - $TOKEN_CALLS, .refused, .starts, .stops, .order]")" '[1,0,{},{},{}]' "rental: one generate_token (a refusal is not tried again), still no contract call"

# protocol: the price service answers an HTML error page; then a blocked account is a login failure.
echo "$SSN" >"$T/price.ssn"
curl -s -X POST -d '{"fault": "not_xml", "count": 1}' "http://127.0.0.1:$PPORT/_control" >/dev/null
is "$(cc --connect)" 69 "a price answer that is not XML: exit 69"
like "$(line price "$O")" '^price: failed: protocol: .*not as the price service \(not a jcanswer document' "price: not the service's XML, in plain words"
curl -s -X POST -d '{"set_blocked": true}' "http://127.0.0.1:$PPORT/_control" >/dev/null
cc --connect >/dev/null
like "$(line price "$O")" '^price: failed: login: .*account of the program code \(s_sn\) is blocked \(posible accaunt_blocked\); check \[price\] s_sn_file' "price: a blocked account, in plain words"
is "$(curl -s "http://127.0.0.1:$PPORT/_stats" | jq -r '.charged, .max_price_calls' | tr '\n' ' ')" "0 0 " "price: never a get_price"
done_testing
