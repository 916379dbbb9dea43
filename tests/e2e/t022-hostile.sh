#!/bin/bash
# t022-hostile.sh: the hostile part of the corpus (SPEC 10, 5.7): limits give clear reasons, the process
# exits normally and quickly, unparseable input gets no reply, filenames are sanitised and nothing from
# the message is injected into the report's headers.
. "$(dirname "$0")/../lib.sh"
MAIL=$FIX/mail
write_config </dev/null
setup_dealer D1 0123456789abcdef0123456789abcdef dealer@shop.example
sg warehouses list --dealer D1 >/dev/null 2>&1
printf 'Адрес;Контакты;Код склада\nКурск;;D4R7WE\nТула;;СКЛАД-1\n' >"$T/wh.csv"
check "import warehouses" sg import warehouses --dealer D1 "$T/wh.csv" >/dev/null

# hostile NAME WANT-OUTCOME WANT-REASON WANT-REPORTS: process within 30 s, exit 0, outcome/reason, report count
hostile() {
	local f=$MAIL/$1 n0 t0 t1 rc
	n0=$(outbox_count); t0=$(date +%s)
	J=$(timeout 30 "$STOCKGATE" -c "$CONF" process "$f" 2>"$T/stderr"); rc=$?
	t1=$(date +%s)
	is "$rc" 0 "$1: exits 0 (124 = hung, >128 = crashed)"
	check "$1: within 10 s ($((t1 - t0)) s)" [ $((t1 - t0)) -le 10 ]
	is "$(jf "$J" .outcome)/$(jf "$J" .reason)" "$2/$3" "$1: outcome/reason"
	is "$(( $(outbox_count) - n0 ))" "$4" "$1: $4 report(s)"
	NEW=$(ls -t "$OUTBOX"/*.eml 2>/dev/null | head -"$4" 2>/dev/null)
	unlike "$(cat "$T/stderr")" "(AddressSanitizer|runtime error|Segmentation|core dumped)" "$1: no sanitizer report or crash"
}
# the report's header block (up to the first blank line)
headers_of() { sed -e 's/\r$//' -e '/^$/q' "$1"; }

hostile 50-mime-depth-50.eml failed too_complex 1
hostile 51-parts-2000.eml failed too_complex 1
hostile 52-header-100k.eml failed too_complex 1
hostile 57-gmime-issue-165.eml failed unparseable 0
is "$(jf "$J" .report)" none "gmime #165: report none"

hostile 53-filename-traversal-crlf.eml applied null 1
name=$(jf "$J" '.files[0].name')
unlike "$name" "[/\\]" "traversal: no '/' or '\\' in the recorded name ($name)"
unlike "$name" $'[\r\n]' "traversal: no CR/LF in the recorded name"
unlike "$name" "^\\.\\." "traversal: the name does not start with .."
rep=$NEW
unlike "$(headers_of "$rep")" $'(^|\n)[Bb][Cc][Cc]:' "traversal: no Bcc header line in the report"
unlike "$(cat "$rep")" $'\nBcc: victim@evil.example' "traversal: the injected line appears nowhere at a line start"

hostile 54-subject-crlf.eml failed unknown_method 1
rep=$NEW
unlike "$(headers_of "$rep")" $'(^|\n)[Bb][Cc][Cc]:' "subject CR/LF: no Bcc header line in the report"
is "$($PY -c 'import email,email.policy,sys; m=email.message_from_binary_file(open(sys.argv[1],"rb"),policy=email.policy.default); print([a.addr_spec for h in m.get_all("to",[]) for a in h.addresses], m.get_all("bcc"), m.get_all("cc"))' "$rep")" \
	"['dealer@shop.example'] None None" "subject CR/LF: To is only the registry address"

hostile 55-nul-in-csv.eml failed null 1
is "$(jf "$J" .files[0].reason)" bad_encoding "NUL in CSV: bad_encoding"

n0=$(outbox_count)
J=$(timeout 30 "$STOCKGATE" -c "$CONF" process "$MAIL/56-broken-base64.eml" 2>"$T/stderr"); rc=$?
is "$rc" 0 "broken base64: exits 0"
like "$(jf "$J" .outcome)" "^(applied|failed)$" "broken base64: handled (decoded leniently or rejected)"

# the same input on standard input (the MTA-pipe mode), one byte longer so that it is not a duplicate
J=$({ cat "$MAIL/57-gmime-issue-165.eml"; echo; } | timeout 30 "$STOCKGATE" -c "$CONF" process - 2>/dev/null); rc=$?
is "$rc/$(jf "$J" .outcome)/$(jf "$J" .reason)" "0/failed/unparseable" "gmime #165 on stdin: failed/unparseable"

# garbage that is not a message at all
head -c 4096 /dev/urandom >"$T/random.eml" 2>/dev/null || true
J=$(timeout 30 "$STOCKGATE" -c "$CONF" process "$T/random.eml" 2>/dev/null); rc=$?
like "$rc" "^(0|65)$" "random bytes: normal exit ($rc)"
printf '' >"$T/empty.eml"
J=$(timeout 30 "$STOCKGATE" -c "$CONF" process "$T/empty.eml" 2>/dev/null); rc=$?
like "$rc" "^(0|65)$" "empty file: normal exit ($rc)"

# limits from the config: a lower max_mime_depth and max_parts still work the same way
write_config <<'CONF'
[limits]
max_mime_depth = 3
max_parts = 10
CONF
J=$(timeout 30 "$STOCKGATE" -c "$CONF" process "$MAIL/12-smime-signed-remains.eml" 2>/dev/null)
like "$(jf "$J" .reason)" "^(null|too_complex)$" "S/MIME message (depth 2) within max_mime_depth 3"
f=$T/deep4.eml
$PY - "$MAIL/50-mime-depth-50.eml" "$f" <<'PYEOF'
import sys
raw = open(sys.argv[1], "rb").read()
# keep the headers, re-point the outer boundary to level 46: depth 5 remains
h, b = raw.split(b"\n\n", 1)
open(sys.argv[2], "wb").write(h.replace(b'boundary="d001"', b'boundary="d046"').replace(b"corpus-50", b"t022-deep5") + b"\n\n" + b[b.index(b"--d046"):])
PYEOF
J=$(timeout 30 "$STOCKGATE" -c "$CONF" process "$f" 2>/dev/null)
is "$(jf "$J" .outcome)/$(jf "$J" .reason)" "failed/too_complex" "depth 5 over max_mime_depth 3: too_complex"
done_testing
