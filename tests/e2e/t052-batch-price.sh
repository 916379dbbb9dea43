#!/bin/bash
# t052-batch-price.sh: `stockgate batch price` against the seed-002 emulator: validation, stage 1
# alone, stage 2 within --max-cost (the cap holds at concurrency 16 and across two processes),
# SIGKILL at the journal's points and re-runs (no request_id charged twice), out of money and a
# refused program code stop the job, faults, malformed answers, cp1251 lists, JSON details, and
# an e-mailed price list whose results are mailed back.
. "$(dirname "$0")/../lib.sh"

S_SN=SGCANARYssn3274171001
PORT=$(free_port)
sg_bg $PY "$SG_TOP/tests/servers/price_server.py" "$PORT" --s-sn "$S_SN" --form mixed
wait_port "$PORT" || { notok "price emulator started"; done_testing; exit 1; }
URL=http://127.0.0.1:$PORT
printf '%s\n' "$S_SN" >"$T/s_sn"
chmod 600 "$T/s_sn"
MAIL=$T/mail
mkdir -p "$MAIL/new" "$MAIL/cur" "$MAIL/tmp"
write_config <<EOF
[source]
url = maildir:$MAIL

[price]
url = $URL/api/
s_sn_file = $T/s_sn
max_cost = 10
tls = off
EOF
stats() { curl -s "$URL/_stats"; }
control() { curl -s -X POST -d "$1" "$URL/_control" >/dev/null; }
st() { stats | jq -r "$1"; }

# make_list SEED ROWS FILE: prints "distinct-valid distinct-with-data". Every 10th row is invalid
# (a side that is none, no name nor OEM, a city that is no code, a name of 256 letters), every
# 7th repeats an earlier row (sides written another way), every 13th has no data (has_value 0).
make_list() {
	$PY - "$1" "$2" "$3" <<'PY'
import random, sys
rnd = random.Random(int(sys.argv[1])); n = int(sys.argv[2])
marks = [("toyota", "ipsum"), ("nissan", "note"), ("Тойота", "Королла"), ("honda", "fit")]
parts = ["фара", "стекло", "капот", "бампер", "efi", "зеркало", "дверь"]
rows, valid, data = [], [], 0
for i in range(n):
    m, mo = rnd.choice(marks)
    if i % 10 == 9:
        k = (i // 10) % 4
        r = [m, mo, "фара", "", "вбок" if k == 0 else "перед", "", "", "77"]
        if k == 1: r[2] = ""
        if k == 2: r[7] = "Москва"
        if k == 3: r[2] = "ф" * 256
        rows.append(r)
    elif i % 7 == 6 and valid:
        r = list(rnd.choice(valid))
        r[4] = {"перед": "F", "зад": "Задний", "": ""}[r[4]]
        rows.append(r)
    else:
        name = "%s %d" % (rnd.choice(parts), i) + (" nodata" if i % 13 == 12 else "")
        oem = "%05d-%s" % (rnd.randrange(99999), rnd.choice("ABC")) if i % 3 == 0 else ""
        r = [m, mo, name, oem, rnd.choice(["перед", "зад", ""]), rnd.choice(["лев", "R", ""]),
             rnd.choice(["новая", "б/у", ""]), rnd.choice(["", "1", "77"])]
        valid.append(r); rows.append(r)
        data += "nodata" not in name
with open(sys.argv[3], "w") as f:
    f.write("Марка,Модель,Название,OEM,Перед/зад,Лев/прав,Новая/б/у,Город\n")
    for r in rows:
        f.write(",".join(r) + "\n")
print(len(valid), data)
PY
}
HDR="Марка,Модель,Название,OEM,Перед/зад,Лев/прав,Новая/б/у,Город"

# 1. Stage 1 alone (no --max-cost): free, every valid row once, nothing charged.
read -r valid data < <(make_list 1 300 "$T/a.csv")
sg batch price "$T/a.csv" --concurrency 16 >"$T/a.out" 2>"$T/a.err"; rc=$?
is "$rc" 65 "a list with invalid rows exits 65"
is "$(head -1 "$T/a.out")" "$HDR,status,error,has_value,notice_count,cost,price_min,price_max,price_average" \
	"output: the list's columns, then status, error and the six result columns"
is "$(tail -n +2 "$T/a.out" | wc -l)" 300 "one output row per input row"
is "$(grep -c ',invalid,' "$T/a.out")" 30 "30 invalid rows"
is "$(grep -c ',ok,' "$T/a.out")" 270 "270 ok rows after stage 1"
is "$(st .info_calls)" "$valid" "get_price_info once per distinct valid row ($valid)"
is "$(st .debited)" 0 "stage 1 alone charges nothing"
like "$(grep -m1 "'вбок'" "$T/a.out")" ",invalid,F_R: 'вбок' is not F \(перед\) or R \(зад\)" "a side that is none is named"
like "$(grep -m1 'give at least one' "$T/a.out")" ',invalid,"name, oem: give at least one' "a row without name and OEM is invalid"
like "$(grep -m1 'Москва' "$T/a.out")" "place: 'Москва' is not a city code" "a city name is not a city code"
like "$(grep -m1 'longer than 255' "$T/a.out")" ',invalid,' "a value over 255 characters is invalid"
like "$(grep -m1 ' nodata' "$T/a.out")" ',ok,,0,0,1,,,$' "a row without data: has_value 0, no prices"
like "$(tail -n +2 "$T/a.out" | grep -v 'nodata\|invalid\|same as' | head -1)" ',ok,,1,[0-9]+,1,,,$' \
	"a row with data: has_value 1, notice_count, cost, prices not bought"
like "$(grep -m1 'same as row' "$T/a.out")" ',ok,same as row [0-9]+,' "a repeated row (sides written otherwise) shares its first row"
unlike "$(cat "$T/a.err")" "$S_SN" "the program code is not in the log"

# 2. --max-cost 50 at concurrency 16: exactly 50 bought, the rest over_budget; stage 1 not repeated.
i0=$(st .info_calls)
sg batch price "$T/a.csv" --concurrency 16 --max-cost 50 >"$T/b.out" 2>"$T/b.err"; rc=$?
is "$rc" 65 "--max-cost 50: exit 65 (invalid and over_budget rows)"
is "$(st .debited)" 50 "the emulator's debit is exactly the cap (50)"
is "$(st .max_per_item)" 1 "no request_id charged twice"
is "$(st .info_calls)" "$i0" "stage 1 is not repeated for rows that have their request_id"
is "$(grep ',failed,over_budget' "$T/b.out" | grep -vc 'same as row')" $((data - 50)) \
	"every other row with data fails over_budget ($((data - 50)))"
like "$(tail -n +2 "$T/b.out" | grep -v 'nodata\|invalid\|failed\|same as' | head -1)" ',ok,,1,[0-9]+,1,[0-9]+,[0-9]+,[0-9]+$' \
	"a bought row carries price_min, price_max, price_average"

# 3. A larger cap continues the over_budget rows; a re-run after that calls nothing.
sg batch price "$T/a.csv" --concurrency 16 --max-cost 1000 >"$T/c.out" 2>/dev/null; rc=$?
is "$rc" 65 "--max-cost 1000: exit 65 (only the invalid rows)"
is "$(st .debited)" "$data" "every row with data bought once ($data)"
is "$(st .max_price_calls)" 1 "get_price called once per request_id"
is "$(grep -c 'over_budget' "$T/c.out")" 0 "no row over budget any more"
r0=$(st .requests)
sg batch price "$T/a.csv" --max-cost 1000 -o "$T/c2.out" 2>/dev/null
is "$(st .requests)" "$r0" "a re-run of a finished list makes no call"
check "and writes the same output" cmp -s "$T/c.out" "$T/c2.out"

# 4. Two processes on one list with --max-cost 30 each: the cap is the job's, not the run's.
read -r valid data < <(make_list 2 120 "$T/r.csv")
control '{"latency": 0.02}'
d0=$(st .debited)
sg batch price "$T/r.csv" --concurrency 16 --max-cost 30 >/dev/null 2>&1 &
p1=$!
sg batch price "$T/r.csv" --concurrency 16 --max-cost 30 >/dev/null 2>&1 &
p2=$!
wait $p1 $p2
is "$(( $(st .debited) - d0 ))" 30 "two runs at once spend exactly the job's cap (30)"
is "$(st .max_per_item)" 1 "and charge no request_id twice"
control '{"latency": 0}'

# 5. SIGKILL at the journal's points (after the intents are committed, before the answers are),
# then re-runs until one finishes: no request_id is charged twice and the cap holds.
read -r valid data < <(make_list 3 200 "$T/k.csv")
d0=$(st .debited)
runs=0 kills=0
for n in 3 1 7 2 11 5 4 9 6 13 3 8 2 17 5 1 4 10 3 6 2 7 5 3 9 2 4 1 3 2; do
	point=batch-sent
	[ $((runs % 2)) = 1 ] && point=batch-answer
	SG_CRASH=$point:$n "$STOCKGATE" -q -c "$CONF" batch price "$T/k.csv" --concurrency 16 \
		--max-cost 100 >"$T/k.out" 2>/dev/null
	rc=$?
	runs=$((runs + 1))
	[ "$rc" = 137 ] || break
	kills=$((kills + 1))
	[ "$runs" = 1 ] && first_killed=1
done
# How many runs die depends on how calls group into rounds; the first always does: 200 rows
# at concurrency 16 pass batch-sent more than 3 times.
check "the first run was killed, and the runs went on until one finished ($kills kills)" \
	test "${first_killed:-0}" = 1 -a "$rc" != 137
sg batch price "$T/k.csv" --concurrency 16 --max-cost 100 >"$T/k.out" 2>/dev/null
is "$(st .max_per_item)" 1 "after $kills kills no request_id was charged twice"
is "$(st .max_price_calls)" 1 "and no get_price was sent twice for a request_id"
spent=$(( $(st .debited) - d0 ))
check "the cap of 100 held across the killed runs ($spent)" test "$spent" -le 100
unknown=$(grep ',unknown,' "$T/k.out" | grep -vc 'same as row')
bought=$(grep -v 'same as row' "$T/k.out" | grep -cE ',ok,,1,[0-9]+,1,[0-9]+,')
check "every charge is a bought row or an unknown one ($spent = $bought + at most $unknown)" \
	test "$spent" -ge "$bought" -a "$spent" -le $((bought + unknown))
is "$(grep -c ',pending,' "$T/k.out")" 0 "no row is left pending"

# 6. Faults: 429 with Retry-After, 5xx, a hang and a dropped connection are retried for the free
# stage; a get_price answered 5xx, or whose connection dropped after it went out, is unknown,
# never charged again by itself.
read -r valid data < <(make_list 4 12 "$T/f.csv")
control '{"fault": "429", "count": 2, "retry_after": "1", "set_fault_on": "get_price_info"}'
t0=$(date +%s.%N)
sg batch price "$T/f.csv" --concurrency 1 --max-cost 100 >"$T/f.out" 2>/dev/null
t1=$(date +%s.%N)
check "two Retry-After: 1 made the run last ≥ 2 s" awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 1.9) }'
is "$(grep -c ',ok,' "$T/f.out")" "$(grep -vc ',invalid,\|^Марка' "$T/f.out")" "after 429s every valid row is ok"
read -r valid data < <(make_list 5 12 "$T/f2.csv")
d0=$(st .debited)
control '{"fault": "503", "count": 2, "retry_after": null, "set_fault_on": "get_price"}'
sg batch price "$T/f2.csv" --concurrency 1 --max-cost 100 >"$T/f2.out" 2>/dev/null
is "$(grep ',unknown,' "$T/f2.out" | grep -vc 'same as row')" 2 "the two get_price answered 503 are unknown"
is "$(( $(st .debited) - d0 ))" "$((data - 2))" "… and not called again: the others are bought"
sg batch price "$T/f2.csv" --concurrency 1 --max-cost 100 --retry-unknown >/dev/null 2>&1
is "$(( $(st .debited) - d0 ))" "$data" "--retry-unknown buys them: each row bought once"
read -r valid data < <(make_list 6 8 "$T/f3.csv")
control '{"fault": "hang", "count": 1, "set_fault_on": "get_price_info"}'
sg batch price "$T/f3.csv" --concurrency 2 --timeout 1s >"$T/f3.out" 2>/dev/null
is "$(grep -c ',ok,' "$T/f3.out")" "$(grep -vc ',invalid,\|^Марка' "$T/f3.out")" "a hung get_price_info times out and is tried again"
read -r valid data < <(make_list 7 8 "$T/f4.csv")
control '{"fault": "drop", "count": 2, "set_fault_on": "get_price_info"}'
sg batch price "$T/f4.csv" --concurrency 1 >"$T/f4.out" 2>/dev/null
is "$(grep -c ',ok,' "$T/f4.out")" "$(grep -vc ',invalid,\|^Марка' "$T/f4.out")" "a dropped get_price_info is tried again"
printf 'name\nфара задняя\n' >"$T/h.csv"
r0=$(st .requests)
control '{"fault": "huge", "count": -1, "set_fault_on": "get_price_info"}'
sg batch price "$T/h.csv" >"$T/h.out" 2>/dev/null
like "$(sed -n 2p "$T/h.out")" ';failed;get_price_info: an answer over 1024 KiB' "a 2 MB answer fails its row, named"
is "$(( $(st .requests) - r0 ))" 1 "… at once: the same call is not made again"
control '{"fault": "none"}'
printf 'name\nфара передняя\n' >"$T/x.csv"
d0=$(st .debited)
control '{"fault": "drop_after", "count": 1, "set_fault_on": "get_price"}'
sg batch price "$T/x.csv" --max-cost 5 >"$T/x.out" 2>/dev/null; rc=$?
is "$rc" 75 "a connection dropped after the charge: exit 75"
like "$(sed -n 2p "$T/x.out")" ';unknown;' "the row is unknown"
sg batch price "$T/x.csv" --max-cost 5 >/dev/null 2>&1
is "$(( $(st .debited) - d0 ))" 1 "a re-run does not charge it again"
control '{"fault": "none", "set_fault_on": null}'

# 7. Malformed answers fail their row with a named reason.
printf 'name\nруль\nкапот\n' >"$T/m.csv"
control '{"fault": "not_xml", "count": 1}'
sg batch price "$T/m.csv" --concurrency 1 >"$T/m.out" 2>/dev/null
like "$(sed -n 2p "$T/m.out")" ';failed;get_price_info: not a jcanswer document \(root <html>\)' "an HTML page: not a jcanswer document"
printf 'name\nруль 2\n' >"$T/m2.csv"
control '{"fault": "truncated", "count": 1}'
sg batch price "$T/m2.csv" >"$T/m2.out" 2>/dev/null
like "$(sed -n 2p "$T/m2.out")" ';failed;get_price_info: not well-formed XML \(line [0-9]+: ' "a cut answer: not well-formed XML"
control '{"fault": "none"}'

# 8. Out of money stops the job; a top-up lets a re-run finish. A wrong s_sn stops it at once.
read -r valid data < <(make_list 8 20 "$T/o.csv")
control '{"set_balance": 5}'
d0=$(st .debited)
g0=$(stats | jq '[.price_calls[]] | add')
sg batch price "$T/o.csv" --concurrency 1 --max-cost 100 >"$T/o.out" 2>"$T/o.err"; rc=$?
is "$rc" 75 "out of money: exit 75"
is "$(( $(st .debited) - d0 ))" 5 "the balance of 5 is spent"
is "$(( $(stats | jq '[.price_calls[]] | add') - g0 ))" 6 "one refused get_price, then no more"
like "$(cat "$T/o.err")" 'posible not_enough_money' "the reason is logged"
control '{"set_balance": 1000}'
sg batch price "$T/o.csv" --concurrency 4 --max-cost 100 >"$T/o2.out" 2>/dev/null
is "$(( $(st .debited) - d0 ))" "$data" "after a top-up every row with data is bought once ($data)"
is "$(st .max_per_item)" 1 "no request_id charged twice"
# Stage 1 alone while the account is empty says not_enough_money; after a top-up, a run with a
# budget asks stage 1 again (free) and buys.
read -r valid data < <(make_list 9 20 "$T/p.csv")
control '{"set_balance": 0}'
sg batch price "$T/p.csv" --concurrency 4 >"$T/p.out" 2>/dev/null
check "stage 1 on an empty account: the journal says not_enough_money" test "$(sqlite3 "$T/stockgate.db" \
	"SELECT count(*) FROM journal WHERE kind = 'price' AND answer LIKE '%not_enough_money%'")" -gt 0
control '{"set_balance": 1000}'
d0=$(st .debited)
sg batch price "$T/p.csv" --concurrency 4 --max-cost 100 >"$T/p2.out" 2>/dev/null
is "$(( $(st .debited) - d0 ))" "$data" "after a top-up a run with a budget buys every row with data ($data)"
echo wrong-code >"$T/s_sn"
printf 'name\nдворник\nрычаг\nшрус\n' >"$T/n.csv"
r0=$(st .requests)
sg batch price "$T/n.csv" --concurrency 1 >"$T/w.out" 2>"$T/w.err"; rc=$?
is "$rc" 75 "a refused program code (no_account): exit 75"
is "$(( $(st .requests) - r0 ))" 1 "no_account stops the job after one call"
like "$(cat "$T/w.err")" 'posible no_account' "the reason is logged"
printf '%s\n' "$S_SN" >"$T/s_sn"

# 9. A windows-1251 list with ';' comes back in windows-1251 with ';'; JSON lines carry details.
printf 'Название;OEM;Лев/прав\nфара левая;;лев\nстекло;;кривой\n' | iconv -f utf-8 -t cp1251 >"$T/w.csv"
sg batch price "$T/w.csv" --max-cost 10 -o "$T/w.out" 2>/dev/null
check "the output is windows-1251" sh -c "! iconv -f utf-8 -t utf-8 '$T/w.out' >/dev/null 2>&1"
is "$(iconv -f cp1251 -t utf-8 "$T/w.out" | head -1)" \
	"Название;OEM;Лев/прав;status;error;has_value;notice_count;cost;price_min;price_max;price_average" \
	"the header in windows-1251 with ';'"
like "$(iconv -f cp1251 -t utf-8 "$T/w.out" | sed -n 2p)" '^фара левая;;лев;ok;;1;' "the row as written, ok"
like "$(iconv -f cp1251 -t utf-8 "$T/w.out" | sed -n 3p)" ";invalid;R_L: 'кривой' is not L" "a side the list misspelt is named"
sg batch price "$T/w.csv" --max-cost 10 --format json >"$T/j.out" 2>/dev/null
is "$(head -1 "$T/j.out" | jq -r '[.details | to_entries[] | .value] | add')" \
	"$(head -1 "$T/j.out" | jq -r .notice_count)" "--format json: details (price → count) add up to notice_count"

# 10. By e-mail: [price] max_cost = 10 pays for 10 rows; the results come back to the sender.
KEY=0123456789abcdef0123456789abcdef
setup_dealer D1 "$KEY" dealer@shop.example 2>/dev/null
sg user add buyer@shop.example --dealer D1 --role batch_price >/dev/null 2>&1
read -r valid data < <(make_list 9 24 "$T/e.csv")
d0=$(st .debited)
mail_lists "$T/e.eml" buyer@shop.example price "$T/e.csv"
rec=$(sg process "$T/e.eml" 2>/dev/null)
is "$(jf "$rec" '[.method, .outcome] | join(" ")')" "price applied" "an e-mailed price list is accepted"
sg batch run-jobs --max-time 20s 2>/dev/null; rc=$?
is "$rc" 0 "run-jobs: the job ends"
is "$(( $(st .debited) - d0 ))" 10 "the e-mailed job spends [price] max_cost (10)"
res=$(ls -t "$OUTBOX"/*.eml | head -1)
report_part "$res" e-results.csv >"$T/e.out"
is "$(head -1 "$T/e.out")" "$HDR,status,error,has_value,notice_count,cost,price_min,price_max,price_average" \
	"the results CSV comes back with the price columns"
is "$(grep -cE ',ok,,1,[0-9]+,1,[0-9]+,' "$T/e.out")" 10 "ten rows priced"
is "$(grep -c 'over_budget' "$T/e.out")" $((data - 10)) "the others over budget"

# 11. A get_price the service refuses cleanly (nothing debited) gives its reservation back: a
# cap just enough for the other rows buys every one of them. One call at a time, so that each
# claim comes after the refusal's answer is journalled.
printf 'name\nфара noprice\nстекло 1\nкапот 2\nбампер 3\nзеркало 4\nдверь 5\n' >"$T/g.csv"
d0=$(st .debited)
sg batch price "$T/g.csv" --concurrency 1 --max-cost 5 >"$T/g.out" 2>/dev/null; rc=$?
is "$rc" 65 "a refused get_price: exit 65 (its row failed)"
like "$(sed -n 2p "$T/g.out")" ';failed;get_price: error_serviceunreach: E0503_SERVICE_UNREACHABLE' \
	"the refused row is failed with the service's reason"
is "$(grep -c 'over_budget' "$T/g.out")" 0 "no row is over budget: the refusal spent nothing of the cap"
is "$(tail -n +3 "$T/g.out" | grep -cE ';ok;;1;[0-9]+;1;[0-9]+;[0-9]+;[0-9]+$')" 5 "the five other rows are bought"
spent=$(( $(st .debited) - d0 ))
is "$spent" 5 "the emulator debited five"
gsha=$(sha256sum "$T/g.csv" | cut -d' ' -f1)
is "$(sqlite3 "$T/stockgate.db" "SELECT SUM(reserved) FROM journal WHERE kind = 'price' AND \
	input_sha256 = '$gsha'")" $((spent * 100)) "the journal reserves exactly what was charged"

# --max-cost is price's: given to another kind, even as 0, it is a usage error, not ignored.
for cost in 0 10; do
	sg batch vin "$T/a.csv" --max-cost $cost >/dev/null 2>"$T/mc.err"; rc=$?
	is "$rc" 64 "batch vin --max-cost $cost: exit 64"
	like "$(cat "$T/mc.err")" 'max-cost goes with price' "batch vin --max-cost $cost: says it goes with price"
done

done_testing
