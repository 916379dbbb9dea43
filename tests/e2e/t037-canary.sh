#!/bin/bash
# t037-canary.sh: canary secrets (catalogue K1, K2, K4; SPEC 5.2, 4; P15). A dealer key, a wrong
# key sent by someone, the IMAP password and the SMTP password are distinct SGCANARY… strings.
# The admin, process, poll and report flows run with `-v -v` (debug logs, text and JSON), with
# the IMAP and SMTP logins succeeding and failing; then every stdout/stderr capture, the state
# db (`sqlite3 .dump` and the raw bytes of the db and its side files), the captured reports and
# the SMTP command log, the report spool and the temp dir are searched: no canary, no base64 of
# a password (AUTH PLAIN/LOGIN), no prefix of one; the dealer key is stored only as its SHA-256.
. "$(dirname "$0")/../lib.sh"
SRV=$SG_TOP/tests/servers
MAIL=$FIX/poll/mail.py
KEYC=SGCANARYKEYa81f3c5e9d27b4406e1f
WRONGC=SGCANARYWRONGKEY5c2e8a1d93f7
ROTC=SGCANARYROTATEDd4e6f8a0b2c1
IMAPPW=SGCANARYIMAPPWb7d19e3f2a64
SMTPPW=SGCANARYSMTPPW3e5a7c9d1f08
BADPW=SGCANARYBADPW9a8b7c6d5e4f
SEC=$T/secrets LOGS=$T/logs
mkdir -p "$SEC" "$LOGS" "$T/msg" "$T/nocerts" "$T/sgtmp"
chmod 700 "$SEC"
printf '%s\n' "$KEYC" >"$SEC/key"
printf '%s\n' "$ROTC" >"$SEC/rotated"
printf '%s\n' "$IMAPPW" >"$SEC/imap.pw"
printf '%s\n' "$SMTPPW" >"$SEC/smtp.pw"
printf '%s\n' "$BADPW" >"$SEC/bad.pw"
chmod 600 "$SEC"/*
# stockgate's own temporary files (fetched bodies, parsed parts) go here.
export TMPDIR=$T/sgtmp

# Dovecot with the canary password for u.
sg_bg "$SRV/dovecot.sh" "$T/dc" --no-tls --certs "$T/nocerts" >/dev/null 2>"$T/dc.log"
for i in $(seq 100); do [ -s "$T/dc/ports" ] && break; sleep 0.1; done
read -r IMAP_PORT _ <"$T/dc/ports"
check "Dovecot listens" wait_port "$IMAP_PORT"
sleep 1 # a passwd-file is re-read when its mtime changes (1 s resolution)
echo "u:{PLAIN}$IMAPPW:::::" >"$T/dc/passwd"
inject() { doveadm -c "$T/dc/dovecot.conf" save -u u -m INBOX <"$1"; }
# The capture server wants AUTH as reporter with the canary password.
mkdir -p "$T/cap"
sg_bg $PY "$SRV/smtp_capture.py" "$T/cap" --auth "reporter:$SMTPPW" >/dev/null 2>"$T/cap.log"
for i in $(seq 100); do [ -s "$T/cap/port" ] && break; sleep 0.1; done
CAP_PORT=$(cat "$T/cap/port")
check "capture server listens" wait_port "$CAP_PORT"

config() { # imap-password-file smtp-password-file
	{
		printf '[store]\npath = %s/stockgate.db\n\n' "$T"
		printf '[report]\nurl = smtp://127.0.0.1:%s\ntls = off\nusername = reporter\n' "$CAP_PORT"
		printf 'password_file = %s\nfrom = "Stock API" <api@stock.example>\n\n' "$2"
		printf '[source]\nurl = imap://127.0.0.1:%s/INBOX\nusername = u\npassword_file = %s\n' \
			"$IMAP_PORT" "$1"
		printf 'tls = off\n'
	} >"$CONF"
	chmod 600 "$CONF"
}
n=0
# run NAME ARGS…: stockgate -v -v ARGS, stdout and stderr kept in $LOGS; sets rc and out.
run() {
	local name=$1; shift
	n=$((n + 1))
	"$STOCKGATE" -c "$CONF" -v -v "$@" >"$LOGS/$n-$name.out" 2>"$LOGS/$n-$name.err"; rc=$?
	out=$(cat "$LOGS/$n-$name.out")
}
runj() { local name=$1; shift; run "$name" --log-format json "$@"; }

config "$SEC/imap.pw" "$SEC/smtp.pw"
run dealer-add dealer add D1 --name "Dealer One" --key-file "$SEC/key"
is "$rc" 0 "dealer add --key-file"
run user-add user add dealer@shop.example --dealer D1
run dealer-show dealer show D1
run dealer-list dealer list
runj dealer-show-json dealer show D1

# process: the right key (applied, report over SMTP with AUTH), a wrong key (rejected), dry-run.
$PY "$MAIL" make warehouses --id c1@shop.example --key "$KEYC" --warehouses D4R7WE,0101 >"$T/msg/c1.eml"
$PY "$MAIL" make remains --id c2@shop.example --key "$WRONGC" >"$T/msg/c2.eml"
$PY "$MAIL" make remains --id c3@shop.example --key "$KEYC" --rows 'D4R7WE:A1:1,D4R7WE:A2:x' >"$T/msg/c3.eml"
run process-ok process "$T/msg/c1.eml"
is "$rc/$(jf "$out" .outcome)/$(jf "$out" .report)" "0/applied/sent" "process: applied, report sent with SMTP AUTH"
run process-wrong process "$T/msg/c2.eml"
is "$(jf "$out" .outcome)/$(jf "$out" .reason)" "rejected/bad_key" "process: a wrong key is rejected"
run process-dry process --dry-run "$T/msg/c3.eml"
runj process-rowerr process "$T/msg/c3.eml"
is "$(jf "$out" .outcome)/$(jf "$out" .report)" "failed/sent" "process: row errors, answered"

# SMTP AUTH refused (a wrong canary password): deferred, and the password is not logged.
config "$SEC/imap.pw" "$SEC/bad.pw"
$PY "$MAIL" make remains --id c4@shop.example --key "$KEYC" --rows D4R7WE:A4:4 >"$T/msg/c4.eml"
run process-badauth process "$T/msg/c4.eml"
is "$rc/$(jf "$out" .outcome)" "75/deferred" "SMTP AUTH refused: deferred, exit 75"

# poll: IMAP login refused (wrong canary password), then accepted.
inject "$T/msg/c4.eml"
$PY "$MAIL" make remains --id c5@shop.example --key "$WRONGC" >"$T/msg/c5.eml"
inject "$T/msg/c5.eml"
config "$SEC/bad.pw" "$SEC/smtp.pw"
run poll-badlogin poll
is "$rc/$out" "75/" "IMAP login refused: poll exits 75, nothing handled"
config "$SEC/imap.pw" "$SEC/smtp.pw"
run poll poll
is "$rc" 0 "poll with the right password exits 0"
is "$(printf '%s\n' "$out" | jq -r .outcome | paste -sd' ')" "applied rejected" \
	"poll: the deferred message applied, the wrong key rejected"
runj poll-again poll
run status status
runj status-json status --format json

h_key=$(printf '%s' "$KEYC" | sha256sum | cut -d' ' -f1)
is "$(sqlite3 "$T/stockgate.db" "SELECT key_sha256 FROM dealers WHERE id = 'D1'")" "$h_key" \
	"the dealer's key is stored as its SHA-256"

# Key rotation.
run rotate dealer rotate-key D1 --key-file "$SEC/rotated"
is "$rc" 0 "dealer rotate-key --key-file"
$PY "$MAIL" make remains --id c6@shop.example --key "$KEYC" --rows D4R7WE:A6:6 >"$T/msg/c6.eml"
run process-oldkey process "$T/msg/c6.eml"
is "$(jf "$out" .reason)" bad_key "after rotation the old key is refused"

# The search. Secrets files, the input messages and Dovecot's Maildir hold the canaries by
# design and are left out; everything stockgate wrote or said is searched.
pats=("SGCANARY")
for pw in "$IMAPPW" "$SMTPPW" "$BADPW"; do
	pats+=("$(printf '%s' "$pw" | base64 -w0)")                          # AUTH LOGIN
	pats+=("$(printf '\0u\0%s' "$pw" | base64 -w0 | cut -c1-20)")         # AUTH PLAIN (u)
	pats+=("$(printf '\0reporter\0%s' "$pw" | base64 -w0 | cut -c5-24)")  # AUTH PLAIN (reporter)
done
for k in "$KEYC" "$WRONGC" "$ROTC"; do pats+=("${k:8:12}"); done # the random part of a key
search() { # DESC FILE… : no pattern in the files (as bytes)
	local d=$1 hits; shift
	hits=$(for p in "${pats[@]}"; do grep -a -l -F -e "$p" "$@" 2>/dev/null; done | sort -u)
	is "$hits" "" "$d: no canary"
}
# A positive control: the same search finds the key in a message that holds it.
hits=$(for p in "${pats[@]}"; do grep -a -l -F -e "$p" "$T/msg/c1.eml"; done | sort -u)
is "$hits" "$T/msg/c1.eml" "the search finds a canary where there is one"
search "stdout and stderr of every command (-v -v, text and JSON)" "$LOGS"/*
check "the debug logs are not empty" test "$(cat "$LOGS"/*.err | wc -l)" -ge 20
sqlite3 "$T/stockgate.db" .dump >"$T/dump.sql"
search "sqlite3 .dump of the state db" "$T/dump.sql"
# Reports waiting for the transport are rows of the db (report_spool): its raw bytes hold them.
search "raw bytes of the state db and its side files" "$T"/stockgate.db*
search "captured reports, envelopes and the SMTP command log" "$T/cap"/*
check "reports were captured" test "$(ls "$T/cap"/*.eml | wc -l)" -ge 3
search "the config" "$CONF"
is "$(find "$T/sgtmp" -type f | wc -l)" 0 "no temporary file left behind (bodies hold the key)"
h_rot=$(printf '%s' "$ROTC" | sha256sum | cut -d' ' -f1)
is "$(sqlite3 "$T/stockgate.db" "SELECT key_sha256 FROM dealers WHERE id = 'D1'")" "$h_rot" \
	"the dealer's key is stored as its SHA-256 (after rotation)"

done_testing
