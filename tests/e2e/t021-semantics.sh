#!/bin/bash
# t021-semantics.sh: replace/delete semantics over sequences of messages (SPEC 5.4-5.7): warehouses list
# replacing, remains replacing with counts, zero kept, case-sensitive codes, byte-order export,
# development mode, superseded by Date, duplicate message.
. "$(dirname "$0")/../lib.sh"
write_config </dev/null
setup_dealer D1 0123456789abcdef0123456789abcdef dealer@shop.example
N=0
# mkmsg SUBJECT DAY-MINUTE CSV-TEXT [KEY]: writes $T/mNN.eml (UTF-8 CSV, base64), prints its path.
mkmsg() {
	N=$((N + 1))
	local f=$T/m$N.eml key=${4:-0123456789abcdef0123456789abcdef} tm=$2
	[[ $tm == *:*:* ]] || tm=$tm:00
	{
		printf 'Date: Mon, 03 Mar 2025 %s +0300\nFrom: dealer@shop.example\nTo: api@stock.example\n' "$tm"
		printf 'Subject: %s\nMessage-ID: <t021-%d@shop.example>\nMIME-Version: 1.0\n' "$1" "$N"
		printf 'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain; charset=utf-8\n\n%s\n' "$key"
		printf -- '--b\nContent-Type: text/csv; charset=utf-8; name="f%d.csv"\nContent-Disposition: attachment; filename="f%d.csv"\n' "$N" "$N"
		printf 'Content-Transfer-Encoding: base64\n\n'
		printf '%s' "$3" | base64
		printf -- '--b--\n'
	} >"$f"
	echo "$f"
}
run() { timeout 30 "$STOCKGATE" -c "$CONF" process "$1" 2>>"$T/stderr"; }
counts() { jf "$1" '.files[0]|[.rows,.added,.updated,.deleted,.unchanged,.skipped]|join(",")'; }
rem() { sg remains export --dealer D1 --format csv | tail -n +2 | tr '\n' ' '; }
whs() { sg warehouses list --dealer D1 --format csv | tail -n +2 | cut -d, -f1 | tr '\n' ' '; }

# 1. warehouses, then remains for two of them
j=$(run "$(mkmsg warehouses 10:00 $'code,address,contacts\nD4R7WE,Курск,\nd4r7we,Орёл,x@y\nСКЛАД-1,Тула,\n0101,Белгород,\n')")
is "$(jf "$j" .outcome)/$(counts "$j")" "applied/4,4,0,0,0,0" "warehouses: 4 added (D4R7WE and d4r7we are two codes)"
is "$(whs)" "0101 D4R7WE d4r7we СКЛАД-1 " "warehouses sorted by UTF-8 bytes (digits, upper, lower, Cyrillic)"
j=$(run "$(mkmsg remains 10:01 $'warehouse,article,quantity\nD4R7WE,A1,5\nD4R7WE,a1,0\nD4R7WE,B2,7\nD4R7WE,Б3,1\nD4R7WE,0099,2\n')")
is "$(jf "$j" .outcome)/$(counts "$j")" "applied/5,5,0,0,0,0" "remains: 5 added (A1 and a1 are two articles)"
j=$(run "$(mkmsg remains 10:02 $'warehouse,article,quantity\nd4r7we,A1,1\n')")
is "$(jf "$j" .outcome)/$(jf "$j" .files[0].warehouse)" "applied/d4r7we" "remains for d4r7we go to d4r7we, not D4R7WE"
is "$(rem)" "D4R7WE,0099,2 D4R7WE,A1,5 D4R7WE,B2,7 D4R7WE,a1,0 D4R7WE,Б3,1 d4r7we,A1,1 " \
	"export sorted by warehouse then article in UTF-8 byte order; zero quantity exported"
is "$(sg remains export --dealer D1 --format json | jq -c '[.[]|select(.article=="a1")|.quantity]')" "[0]" "zero kept in JSON as a number"

# 2. remains replace: added / updated / deleted / unchanged
j=$(run "$(mkmsg remains 10:03 $'warehouse,article,quantity\nD4R7WE,A1,5\nD4R7WE,B2,8\nD4R7WE,C4,3\nD4R7WE,0099,2\n')")
is "$(counts "$j")" "4,1,1,2,2,0" "replace: C4 added, B2 updated, a1 and Б3 deleted, A1 and 0099 unchanged"
is "$(rem)" "D4R7WE,0099,2 D4R7WE,A1,5 D4R7WE,B2,8 D4R7WE,C4,3 d4r7we,A1,1 " "articles not in the file are cleared"

# 3. dev mode: outcome as it would be, dev_mode true, nothing changed, report says test
check "dev-mode on" sg dealer dev-mode D1 on >/dev/null
before=$(rem); nrep=$(outbox_count)
j=$(run "$(mkmsg remains 10:04 $'warehouse,article,quantity\nD4R7WE,A1,50\n')")
is "$(jf "$j" .dev_mode)/$(jf "$j" .outcome)/$(counts "$j")" "true/applied/1,0,1,3,0,0" "dev mode: full processing, outcome as it would be"
is "$(rem)" "$before" "dev mode: store unchanged"
is "$(outbox_count)" "$((nrep + 1))" "dev mode: a report is written"
last=$(ls -t "$OUTBOX"/*.eml | head -1)
like "$($PY -c 'import email,email.policy,sys; m=email.message_from_binary_file(open(sys.argv[1],"rb"),policy=email.policy.default); print(m["subject"]); b=m.get_body(("plain","html")); print(b.get_content()[:400])' "$last")" \
	"(тест|Тест|ТЕСТ|test|Test|TEST|разработ)" "dev mode: the report says it is a test"
j=$(run "$(mkmsg warehouses 10:05 $'code,address,contacts\nD4R7WE,Курск,\n')")
is "$(jf "$j" .dev_mode)/$(jf "$j" .outcome)/$(counts "$j")" "true/applied/1,0,0,3,1,0" "dev mode warehouses: would delete 3"
is "$(whs)" "0101 D4R7WE d4r7we СКЛАД-1 " "dev mode: warehouses unchanged"
check "dev-mode off" sg dealer dev-mode D1 off >/dev/null
# a dev-mode file does not count for superseded: an older real message still applies
j=$(run "$(mkmsg remains 10:03:30 $'warehouse,article,quantity\nD4R7WE,A1,6\nD4R7WE,B2,8\nD4R7WE,C4,3\nD4R7WE,0099,2\n')")
is "$(jf "$j" .dev_mode)/$(jf "$j" .outcome)" "false/applied" "a dev-mode file does not make older mail superseded"

# 4. warehouses dropping one: its remains are gone
j=$(run "$(mkmsg warehouses 10:10 $'code,address,contacts\nD4R7WE,Курск,\nСКЛАД-1,Тула,\n0101,Белгород,\n')")
is "$(jf "$j" .outcome)/$(counts "$j")" "applied/3,0,0,1,3,0" "warehouses: d4r7we deleted, 3 unchanged"
is "$(rem)" "D4R7WE,0099,2 D4R7WE,A1,6 D4R7WE,B2,8 D4R7WE,C4,3 " "the dropped warehouse's remains are gone"
j=$(run "$(mkmsg warehouses 10:11 $'code,address,contacts\nD4R7WE,Курск,\nСКЛАД-1,Тула 2,\n0101,Белгород,\n')")
is "$(counts "$j")" "3,0,1,0,2,0" "warehouses: address change counts as updated"
j=$(run "$(mkmsg remains 10:12 $'warehouse,article,quantity\nd4r7we,A1,1\n')")
is "$(jf "$j" .outcome)/$(jf "$j" .files[0].reason)" "failed/unknown_warehouse" "remains for the dropped warehouse: unknown_warehouse"

# 5. superseded by Date; same instant is not older
j=$(run "$(mkmsg remains 09:59 $'warehouse,article,quantity\nD4R7WE,A1,99\n')")
is "$(jf "$j" .outcome)/$(jf "$j" .files[0].reason)" "failed/superseded" "an older Date than the last applied: superseded"
j=$(run "$(mkmsg warehouses 10:09 $'code,address,contacts\nD4R7WE,Курск,\n')")
is "$(jf "$j" .files[0].reason)" "superseded" "warehouses older than the last applied list: superseded"
is "$(whs)" "0101 D4R7WE СКЛАД-1 " "superseded warehouses changed nothing"
# Date with another zone: 07:30 UTC = 10:30 +0300 is newer than 10:03 +0300
f=$(mkmsg remains 10:30 $'warehouse,article,quantity\nD4R7WE,A1,7\n'); sed -i 's/10:30:00 +0300/07:30:00 +0000/' "$f"
j=$(run "$f")
is "$(jf "$j" .outcome)" applied "Date compared as an instant across zones"
f=$(mkmsg remains 10:31 $'warehouse,article,quantity\nD4R7WE,A1,8\n'); sed -i 's/10:31:00 +0300/10:29:00 +0300/' "$f"
j=$(run "$f")
is "$(jf "$j" .files[0].reason)" superseded "one minute older than the last applied: superseded"
is "$(rem)" "D4R7WE,A1,7 " "store holds the newest file"

# 6. duplicate message
f=$(mkmsg remains 10:40 $'warehouse,article,quantity\nD4R7WE,A1,9\n')
j=$(run "$f"); is "$(jf "$j" .outcome)" applied "first time applied"
nrep=$(outbox_count)
j=$(run "$f"); is "$(jf "$j" .outcome)" duplicate "same bytes again: duplicate"
is "$(outbox_count)" "$nrep" "duplicate: no report"
is "$(rem)" "D4R7WE,A1,9 " "duplicate: nothing changed"
is "$(sg status --format json | jq .messages.duplicate)" 1 "status counts the duplicate"
j=$(run "$f"); is "$(sg status --format json | jq .messages.duplicate)" 2 "and the next one"

# 7. catalogue: empty = everything allowed; loaded = skipped and listed
printf 'article\nA1\n' >"$T/cat.csv"
check "catalog load" sg catalog load "$T/cat.csv" >/dev/null
j=$(run "$(mkmsg remains 10:50 $'warehouse,article,quantity\nD4R7WE,A1,1\nD4R7WE,Z9,1\n')")
is "$(counts "$j")/$(jf "$j" '[.files[0].warnings[]|"\(.code):\(.line):\(.value)"]|join(" ")')" "2,0,1,0,0,1/not_in_catalog:3:Z9" \
	"not_in_catalog skipped and listed"
is "$(rem)" "D4R7WE,A1,1 " "the skipped article is not stored"
done_testing
