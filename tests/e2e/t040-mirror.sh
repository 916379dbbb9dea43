#!/bin/bash
# t040-mirror.sh: the REST mirror (SPEC 8) kept equal to the local store, with the fewest requests, against the seed-004 emulator.
. "$(dirname "$0")/../lib.sh"
. "$SG_TOP/fixtures/mirror/lib-mirror.sh"
KEY=0123456789abcdef0123456789abcdef
KEY2=fedcba9876543210fedcba9876543210

start_keaz --dealer "$KEY=D1" || { notok "emulator starts"; done_testing; exit 1; }
write_config <<EOF
[mirror]
url = $API/restapi
tls = off
timeout = 2
batch_size = 2
EOF
setup_dealer
setup_dealer D2 "$KEY2" other@shop.example

W1=$'Адрес;Контакты;Код склада\nКурск, ул. Луначарского 8;+7 4712 00-00-00;A\nОрёл, ул. Ленина 1;orel@shop.example;B\nТула;"a ""quoted"" one";C\n'
R1=$'Код склада;Артикул;Остаток\nA;100000;5\nA;0012345;1 200\nA;200300;0\n'
R2=$'Код склада;Артикул;Остаток\nC;777;3\n'
W2=$'Адрес;Контакты;Код склада\nКурск, ул. Луначарского, 8;+7 4712 00-00-00;A\nОрёл, ул. Ленина 1;orel@shop.example;B\nЛипецк;l@shop.example;D\n'

# 1. A new dealer's warehouses: one list, then adds in batches of two.
mkmsg "$T/w1.eml" warehouses 1 "$W1"
ctl '{"reset_log":true}'
run_msg "$T/w1.eml"
is "$RC" 0 "warehouses: exit 0"
is "$(jf "$OUT" .outcome)" applied "warehouses: applied"
is "$(api_log | jq -c 'map(.action)')" '["warehouse.list","warehouse.add","warehouse.add"]' \
	"warehouses: list + 2 add batches"
is "$(api_log | jq -r '[.[] | .hash == "'$KEY'"] | all')" true "every request carries the key as hash"
in_sync "warehouses"
is "$(server_wh | jq -r '.[] | select(.code == "C") | .contacts')" 'a "quoted" one' "a quoted field reaches the server"

# 2. The same list again: one warehouse.list and nothing else.
mkmsg "$T/w1b.eml" warehouses 2 "$W1"
ctl '{"reset_log":true}'
run_msg "$T/w1b.eml"
is "$(jf "$OUT" .outcome)" applied "unchanged warehouses: applied"
is "$(api_log | jq -c 'map(.action)')" '["warehouse.list"]' "unchanged warehouses: one list only"

# 3. Remains: one remains.add with every product.
mkmsg "$T/r1.eml" remains 3 "$R1"
ctl '{"reset_log":true}'
run_msg "$T/r1.eml"
is "$(jf "$OUT" .outcome)" applied "remains: applied"
is "$(api_log | jq -c 'map(.action)')" '["remains.add"]' "remains: one request"
is "$(api_log | jq -c '.[0].body.code, (.[0].body.products | length)' | tr '\n' ' ')" '"A" 3 ' \
	"remains: code and all three products"
in_sync "remains"
mkmsg "$T/r2.eml" remains 4 "$R2"
run_msg "$T/r2.eml"
is "$(jf "$OUT" .outcome)" applied "remains of C: applied"
in_sync "remains of C"

# 4. A changed list: update A, add D, delete C (with its remains) last.
mkmsg "$T/w2.eml" warehouses 5 "$W2"
ctl '{"reset_log":true}'
run_msg "$T/w2.eml"
is "$(jf "$OUT" .outcome)" applied "changed warehouses: applied"
is "$(api_log | jq -c 'map(.action)')" \
	'["warehouse.list","warehouse.add","warehouse.update","warehouse.delete"]' \
	"changed warehouses: add, update, then delete last"
in_sync "changed warehouses"
is "$(curl -s "$API/_state" | jq -c '.D1.remains.C')" null "deleted warehouse: its remains gone on the server"

# 5. status error for one code: the file is rejected mirror_error, the store unchanged.
before_wh=$(local_wh) before_rem=$(local_rem)
ctl '{"error_code":"E","reset_log":true}'
mkmsg "$T/w3.eml" warehouses 6 "$W2"$'Елец;e@shop.example;E\n'
run_msg "$T/w3.eml"
is "$RC" 0 "status error: exit 0 (handled, not deferred)"
is "$(jf "$OUT" '.files[0].status + " " + .files[0].reason')" "rejected mirror_error" \
	"status error: file rejected mirror_error"
is "$(jf "$OUT" .outcome)" failed "status error: outcome failed"
# SPEC 8: the server's messages in the record, one error each, no line or column.
is "$(jf "$OUT" '.files[0].errors' | jq -c .)" \
	'[{"line":null,"column":null,"code":"mirror_error","message":"Склад `E` не может быть сохранён","value":null}]' \
	"status error: the record's errors hold the server's message"
is "$(local_wh)" "$before_wh" "status error: local warehouses unchanged"
is "$(local_rem)" "$before_rem" "status error: local remains unchanged"
ctl '{"error_code":null}'

# 6. Remains for a warehouse the server does not have (known locally): mirror_error.
ctl '{"reset_log":true}'
curl -s -d '{"hash":"'$KEY'","warehouses":[{"code":"D"}]}' "$API/restapi/warehouse.delete.json" >/dev/null
before_rem=$(local_rem)
mkmsg "$T/r3.eml" remains 7 $'Код склада;Артикул;Остаток\nD;1;1\n'
run_msg "$T/r3.eml"
is "$(jf "$OUT" .files[0].reason)" mirror_error "remains for a warehouse unknown to the server: mirror_error"
is "$(jf "$OUT" '.files[0].errors | map([.line, .column, .code, .message])' | jq -c .)" \
	'[[null,null,"mirror_error","Склад `D` не найден"]]' "unknown warehouse on the server: its message in errors"
is "$(local_rem)" "$before_rem" "unknown warehouse on the server: local remains unchanged"
# The next warehouses file puts D back: the diff is against the server's list.
mkmsg "$T/w4.eml" warehouses 8 "$W2"
ctl '{"reset_log":true}'
run_msg "$T/w4.eml"
is "$(api_log | jq -c 'map(.action)')" '["warehouse.list","warehouse.add"]' "the next file re-adds what the server lost"
in_sync "after re-adding D"

# 7. A key the server refuses: reported (failed, mirror_error), not deferred nor retried.
mkmsg "$T/k.eml" warehouses 9 "$W1" other@shop.example "$KEY2"
run_msg "$T/k.eml"
is "$RC" 0 "refused key: exit 0, not 75"
is "$(jf "$OUT" '.outcome + " " + .files[0].reason')" "failed mirror_error" "refused key: failed mirror_error"
is "$(jf "$OUT" '.files[0].errors | map(.code + ": " + .message) | join("|")')" \
	"mirror_error: Не верный API ключ" "refused key: the server's message in errors"
run_msg "$T/k.eml"
is "$(jf "$OUT" .outcome)" duplicate "refused key: the same message is not tried again"
is "$(sg warehouses list --dealer D2 --format json | jq length)" 0 "refused key: nothing stored for D2"
unlike "$(cat "$T/stderr" "$OUTBOX"/*.eml 2>/dev/null)" "$KEY2|$KEY" "no key in the log or the reports"

# 8. The emulator answers XML too (root <response>, the same tree).
like "$(curl -s -d 'hash='$KEY "$API/restapi/warehouse.list.xml")" \
	'^<\?xml.*<response><warehouses><item><code>A</code>.*<status><code>ok</code></status></response>' \
	"emulator: form body, XML answer"

# 9. mirror ping.
printf '%s\n' "$KEY" >"$T/key" && chmod 600 "$T/key"
printf '%s\n' "$KEY2" >"$T/key2" && chmod 600 "$T/key2"
out=$(sg mirror ping --key-file "$T/key" 2>&1); rc=$?
is "$rc" 0 "ping: exit 0 with a good key"
like "$out" "accepts the key; 3 warehouses" "ping: says so"
out=$(sg mirror ping 2>&1); rc=$?
is "$rc" 0 "ping without a key: the server answers"
out=$(sg mirror ping --key-file "$T/key2" 2>&1); rc=$?
is "$rc" 65 "ping with a refused key: 65"
like "$out" "key is refused" "ping: says the key is refused"
unlike "$out" "$KEY2" "ping: the key is not printed"
# A config like $CONF with another [mirror] url (the [mirror] section is the last one).
conf_url() {
	{ sed '/^\[mirror\]/,$d' "$CONF"; [ -n "$1" ] && printf '[mirror]\nurl = %s\ntls = off\ntimeout = 2\n' "$1"; } >"$T/other.conf"
	chmod 600 "$T/other.conf"
}
conf_url "http://127.0.0.1:$(free_port)/restapi"
out=$("$STOCKGATE" -c "$T/other.conf" mirror ping --key-file "$T/key" 2>&1); rc=$?
is "$rc" 69 "ping, nothing listening: 69"
like "$out" "cannot connect" "ping: says it cannot connect"
conf_url "http://no-such-host.invalid/restapi"
out=$("$STOCKGATE" -c "$T/other.conf" mirror ping 2>&1); rc=$?
is "$rc" 69 "ping, unknown host: 69"
like "$out" "DNS" "ping: says DNS"
conf_url "$API/nowhere"
out=$("$STOCKGATE" -c "$T/other.conf" mirror ping --key-file "$T/key" 2>&1); rc=$?
is "$rc" 69 "ping, wrong path: 69"
like "$out" "HTTP 404" "ping: says HTTP 404"
conf_url ""
out=$("$STOCKGATE" -c "$T/other.conf" mirror ping 2>&1); rc=$?
is "$rc" 78 "ping, no [mirror] url: 78"
like "$out" "url is not set" "ping: says the url is not set"
chmod 644 "$T/key"
out=$(sg mirror ping --key-file "$T/key" 2>&1); rc=$?
is "$rc" 78 "ping: a key file others can read is refused"

# 10. A redirect is not followed: the other server never sees the key.
API1=$API
start_keaz --dealer "$KEY=D1" || notok "second emulator starts"
API2=$API API=$API1
ctl '{"redirect_to":"'$API2'/restapi","reset_log":true}'
mkmsg "$T/r4.eml" remains 10 "$R1"
run_msg "$T/r4.eml"
is "$(jf "$OUT" .files[0].reason)" mirror_error "redirect: file rejected mirror_error"
like "$(jf "$OUT" '.files[0].errors | map(.code + " " + (.line|tostring) + " " + .message) | join("|")')" \
	'^mirror_error null .*HTTP 30[0-9]' "redirect: one error saying the HTTP status (the server gave no message)"
is "$(curl -s "$API2/_log" | jq length)" 0 "redirect: the other server got no request (no key)"
ctl '{"redirect_to":null}'

done_testing
