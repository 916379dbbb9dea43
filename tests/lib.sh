# lib.sh: shared helpers for the end-to-end scenarios (sourced by tests/e2e/t*.sh).
# Each scenario gets a private temp dir ($T) with a config ($CONF) whose store and outbox live
# there; servers started with sg_bg are killed by the EXIT trap. Checks print TAP lines.
set -u
SG_TOP=${SG_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
STOCKGATE=${STOCKGATE:-$SG_TOP/build/stockgate}
PY=/usr/bin/python3           # Debian's python, where python3-aiosmtpd lives
FIX=$SG_TOP/fixtures
T=$(mktemp -d "${TMPDIR:-/tmp}/sg-test.XXXXXX")
chmod 700 "$T"
CONF=$T/stockgate.conf
OUTBOX=$T/outbox
_n=0 _failed=0 _pids=()

_cleanup() {
	local p
	for p in "${_pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ "$_failed" -eq 0 ] && [ -z "${SG_KEEP:-}" ] && rm -rf "$T"
	[ "$_failed" -ne 0 ] && echo "# kept $T"
	return 0
}
trap _cleanup EXIT

ok()    { _n=$((_n + 1)); echo "ok $_n - $*"; }
notok() { _n=$((_n + 1)); _failed=$((_failed + 1)); echo "not ok $_n - $*"; }
# check DESC COMMAND…: passes when the command exits 0.
check() { local d=$1; shift; if "$@"; then ok "$d"; else notok "$d"; fi; }
# is GOT WANT DESC
is() {
	if [ "$1" == "$2" ]; then ok "$3"; else notok "$3"; printf '#   got:  %s\n#   want: %s\n' "$1" "$2"; fi
}
# like GOT REGEX DESC
like() {
	if [[ $1 =~ $2 ]]; then ok "$3"; else notok "$3"; printf '#   got:  %s\n#   want: /%s/\n' "$1" "$2"; fi
}
unlike() {
	if [[ ! $1 =~ $2 ]]; then ok "$3"; else notok "$3"; printf '#   got:  %s\n#   must not match: /%s/\n' "$1" "$2"; fi
}
# jf JSON FILTER: a jq query over one JSON value, raw output.
jf() { printf '%s' "$1" | jq -r "$2"; }

# A config with a dir: outbox and a store in $T; extra lines on stdin are appended verbatim.
write_config() {
	mkdir -p "$OUTBOX"
	{
		printf '[store]\npath = %s/stockgate.db\n\n' "$T"
		printf '[report]\nurl = dir:%s\nfrom = "Stock API" <api@stock.example>\nlanguage = ru\n\n' "$OUTBOX"
		cat
	} >"$CONF"
	chmod 600 "$CONF"
}

# write_config with [source] the INBOX of the Dovecot on IMAP_PORT (user u, no TLS); further
# lines of [source] (and sections after it) on stdin.
write_imap_config() {
	{
		printf '[source]\nurl = imap://127.0.0.1:%s/INBOX\nusername = u\npassword = p\ntls = off\n' \
			"$IMAP_PORT"
		cat
	} | write_config
}

# vin_serve_config: for write_config's stdin, the [vin] section of the vin emulator on $PORT
# (token $TOKEN, the callback secret in $T/secret) and the head of [serve], on $SPORT.
vin_serve_config() {
	printf '[vin]\nurl = http://127.0.0.1:%s/api/processing_queue\ntoken = %s\ntls = off\n' \
		"$PORT" "$TOKEN"
	printf 'callback_secret_file = %s/secret\nreport_wait = 1h\n\n[serve]\nlisten = 127.0.0.1:%s\n' \
		"$T" "$SPORT"
}

sg() { "$STOCKGATE" -c "$CONF" "$@"; }

# A dealer D1 with key KEY1 and a user with the remains_upload role; ids and keys may be overridden.
setup_dealer() {
	local id=${1:-D1} key=${2:-0123456789abcdef0123456789abcdef} email=${3:-dealer@shop.example}
	sg dealer add "$id" --name "Dealer $id" --key "$key" >/dev/null &&
		sg user add "$email" --dealer "$id" >/dev/null
}

# start_dovecot NAME [dovecot.sh options]: a private Dovecot in $T/NAME (its Maildir kept when
# started again), serving the certificates of $CERTS; sets IMAP_PORT, IMAPS_PORT and DC_PID.
start_dovecot() {
	local d=$T/$1 i; shift
	rm -f "$d/ports"
	sg_bg "$SG_TOP/tests/servers/dovecot.sh" "$d" --certs "${CERTS:-$T/nocerts}" "$@" \
		>/dev/null 2>>"$d.log"
	DC_PID=$!
	for i in $(seq 100); do [ -s "$d/ports" ] && break; sleep 0.1; done
	read -r IMAP_PORT IMAPS_PORT <"$d/ports"
	wait_port "$IMAP_PORT"
}

# start_capture NAME [smtp_capture.py options]: a capturing SMTP server in $T/NAME; sets
# CAP_PORT and CAP_PID.
start_capture() {
	local d=$T/$1 i; shift
	rm -rf "$d"; mkdir -p "$d"
	sg_bg $PY "$SG_TOP/tests/servers/smtp_capture.py" "$d" "$@" >/dev/null 2>"$d.log"
	CAP_PID=$!
	for i in $(seq 100); do [ -s "$d/port" ] && break; sleep 0.1; done
	CAP_PORT=$(cat "$d/port" 2>/dev/null)
	wait_port "$CAP_PORT"
}

# A free TCP port on 127.0.0.1.
free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# sg_bg CMD…: start a background server and remember it for the trap.
sg_bg() { "$@" & _pids+=($!); }

# wait_port PORT: wait up to 10 s for a listener.
wait_port() {
	local i
	for i in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# Number of report files in the outbox.
outbox_count() { find "$OUTBOX" -maxdepth 1 -name '*.eml' 2>/dev/null | wc -l; }

# mail_lists OUT FROM SUBJECT [FILE[:TYPE]]…: a message with $KEY as its body and the files
# attached (a batch list, a remains file).
mail_lists() {
	$PY - "$KEY" "$@" <<'PY'
import sys
from email.message import EmailMessage
from email.utils import make_msgid, formatdate
key, out, frm, subj, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
m = EmailMessage()
m["From"], m["To"], m["Subject"] = frm, "api@stock.example", subj
m["Date"], m["Message-ID"] = formatdate(), make_msgid(domain="shop.example")
m.set_content(key + "\n\n--\nsent from a test\n")
for f in files:
    path, _, ctype = f.partition(":")
    maintype, _, subtype = (ctype or "text/csv").partition("/")
    with open(path, "rb") as fh:
        m.add_attachment(fh.read(), maintype=maintype, subtype=subtype,
                         filename=path.rsplit("/", 1)[-1])
open(out, "wb").write(bytes(m))
PY
}

# report_part EML NAME: the decoded attachment NAME of a report (empty when it has none).
report_part() {
	$PY - "$1" "$2" <<'PY'
import sys, email, email.policy
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
for p in m.iter_attachments():
    if p.get_filename() == sys.argv[2]:
        sys.stdout.buffer.write(p.get_payload(decode=True))
PY
}

done_testing() { echo "1..$_n"; [ "$_failed" -eq 0 ]; }
