#!/bin/bash
# t020-corpus.sh: runs the whole mail corpus (fixtures/mail/*.eml) through `stockgate process` in a fixed
# order and checks each result record, exit status, report count and the store against
# tests/e2e/corpus-expect.tsv (SPEC 5, 6); then re-processing gives `duplicate` with nothing changed.
. "$(dirname "$0")/../lib.sh"
EXPECT=$SG_TOP/tests/e2e/corpus-expect.tsv
MAIL=$FIX/mail

write_config </dev/null
sg dealer add D1 --name "ООО Ромашка" --key 0123456789abcdef0123456789abcdef >/dev/null
sg dealer add D2 --name "D2 Trade" --key fedcba9876543210fedcba9876543210 >/dev/null
sg user add dealer@shop.example --dealer D1 --role remains_upload >/dev/null
sg user add robot@d2.example --dealer D2 >/dev/null
sg user add vin@shop.example --dealer D1 --role batch_vin >/dev/null
check "catalog load" sg catalog load "$MAIL/catalog.csv" >/dev/null
like "$(sg catalog list 2>/dev/null)" "0012345" "catalogue lists 0012345 with its leading zeros"

# rem_rows ID: the remains export of a dealer as "wh,article,qty" rows joined by " ".
rem_rows() {
	sg remains export --dealer "$1" --format csv 2>/dev/null |
		$PY -c 'import csv,sys; r=list(csv.reader(sys.stdin)); print(" ".join(",".join(x) for x in r[1:]))'
}
wh_codes() {
	sg warehouses list --dealer "$1" --format csv 2>/dev/null |
		$PY -c 'import csv,sys; r=list(csv.reader(sys.stdin)); print(" ".join(x[0] for x in r[1:]))'
}
snapshot() {
	local d
	for d in D1 D2; do
		sg warehouses list --dealer $d --format csv 2>/dev/null
		sg remains export --dealer $d --format csv 2>/dev/null
	done | sha256sum
}

# report_ok FILE MSGID: the report goes to the registry address only, replies to the message, is marked.
cat >"$T/report-check.py" <<'PYEOF'
import email, email.policy, sys
path, mid = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
m = email.message_from_bytes(raw, policy=email.policy.default)
bad = []
to = [a.addr_spec.lower() for h in m.get_all("to", []) for a in h.addresses]
if to != ["dealer@shop.example"]: bad.append("To=%r" % to)
for h in ("cc", "bcc"):
    if m.get_all(h): bad.append("%s present" % h)
if (m["in-reply-to"] or "").strip() != "<%s>" % mid: bad.append("In-Reply-To=%r" % m["in-reply-to"])
if (m["auto-submitted"] or "").strip().lower() != "auto-replied": bad.append("Auto-Submitted=%r" % m["auto-submitted"])
for line in raw.split(b"\n\n")[0].split(b"\n"):
    if line.lower().startswith((b"bcc:", b"cc:")): bad.append("header line %r" % line[:60])
print("; ".join(bad))
PYEOF

declare -A got_json
files=$(grep -v '^#' "$EXPECT" | cut -f1 | awk '!seen[$0]++')
for f in $files; do
	path=$MAIL/$f
	before_out=$(outbox_count)
	before_store=$(snapshot)
	before_list=$(ls "$OUTBOX")
	t0=$(date +%s)
	json=$(timeout 30 "$STOCKGATE" -c "$CONF" process "$path" 2>"$T/stderr")
	rc=$?
	t1=$(date +%s)
	got_json[$f]=$json
	new_reports=$(( $(outbox_count) - before_out ))
	after_store=$(snapshot)
	[ "$((t1 - t0))" -le 10 ] || notok "$f: took $((t1 - t0)) s"
	if ! printf '%s' "$json" | jq -e . >/dev/null 2>&1; then
		notok "$f: one JSON record on stdout (exit $rc)"; printf '#   stdout: %.300s\n#   stderr: %.300s\n' "$json" "$(cat "$T/stderr")"
		continue
	fi
	is "$(jf "$json" '.source')" "file:$path" "$f: source"
	while IFS=$'\t' read -r file expr want; do
		[ "$file" == "$f" ] || continue
		[ "$want" == '\t' ] && want=$'\t'
		case $expr in
		@exit) got=$rc ;;
		@outbox) got=$new_reports ;;
		@store) if [ "$before_store" == "$after_store" ]; then got=same; else got=changed; fi ;;
		@rem:*) got=$(rem_rows "${expr#@rem:}") ;;
		@wh:*) got=$(wh_codes "${expr#@wh:}") ;;
		*) got=$(jf "$json" "$expr" 2>&1) ;;
		esac
		if [[ $want == ~* ]]; then like "$got" "${want#\~}" "$f: $expr"; else is "$got" "$want" "$f: $expr"; fi
	done < <(grep -v '^#' "$EXPECT")
	# every new report: registry address only, In-Reply-To, Auto-Submitted, no injected header
	mid=$(jf "$json" '.message_id')
	for r in $(ls "$OUTBOX"); do
		grep -qxF "$r" <<<"$before_list" && continue
		is "$($PY "$T/report-check.py" "$OUTBOX/$r" "$mid" 2>&1)" "" "$f: report $r headers"
	done
	report=$(jf "$json" '.report')
	if [ "$new_reports" -eq 0 ]; then is "$report" none "$f: report none when nothing written"
	else is "$report" written "$f: report written"; fi
done

# the full stores at the end, in both formats
is "$(sg warehouses list --dealer D1 --format csv | head -1)" "code,address,contacts" "warehouses CSV header"
is "$(sg warehouses list --dealer D1 --format json | jq -c '[.[]|[.code,.address,.contacts]]')" \
	'[["D4R7WE","г. Курск, ул. Ленина, д. 5; склад 2","Иванов И.И., +7 4712 00-00-01"],["СКЛАД-1","г. Курск, ул. Луначарского, 8","sklad1@shop.example"]]' \
	"warehouses JSON of D1"
is "$(sg remains export --dealer D1 --format csv | head -1)" "warehouse,article,quantity" "remains CSV header"
is "$(sg remains export --dealer D1 --format json | jq -c '[.[]|select(.warehouse=="D4R7WE")|[.article,.quantity]]')" \
	'[["0012345",1000],["100101",2500],["100102",3000],["100103",10],["100104",5],["100106",0],["100107",5]]' \
	"remains JSON of D4R7WE: numbers, zero kept, leading zeros kept"
is "$(sg remains export --dealer D1 --warehouse СКЛАД-1 --format csv)" \
	"$(printf 'warehouse,article,quantity\nСКЛАД-1,100101,7\nСКЛАД-1,100104,3\nСКЛАД-1,100105,13')" "remains export --warehouse"

# re-processing answered messages: duplicate, nothing done again
for f in 01-outlook-warehouses.eml 05-applemail-remains.eml 17-duplicate-warehouse.eml 23-row-errors-remains.eml 41-unknown-subject.eml; do
	before_out=$(outbox_count); before_store=$(snapshot)
	json=$(timeout 30 "$STOCKGATE" -c "$CONF" process "$MAIL/$f" 2>/dev/null)
	rc=$?
	is "$rc" 0 "again $f: exit 0"
	is "$(jf "$json" .outcome)" duplicate "again $f: outcome duplicate"
	is "$(outbox_count)" "$before_out" "again $f: no new report"
	is "$(snapshot)" "$before_store" "again $f: store unchanged"
done
# a renamed copy is the same bytes: still a duplicate
cp "$MAIL/02-thunderbird-remains.eml" "$T/copy.eml"
is "$(sg process "$T/copy.eml" 2>/dev/null | jq -r .outcome)" duplicate "a copy under another name is a duplicate"
done_testing
