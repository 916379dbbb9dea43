#!/bin/bash
# t050-batch-vin.sh: `stockgate batch vin` against the seed-000 emulator: statuses and columns,
# resume after kill -9 without charging twice, Retry-After, 401 stops the job, cp1251 lists,
# --dry-run, --balance, unknown outcomes.
. "$(dirname "$0")/../lib.sh"

TOKEN=SGCANARYvin0123456789
PORT=$(free_port)
sg_bg $PY "$SG_TOP/tests/servers/vin_server.py" "$PORT" --token "$TOKEN" --balance 100000
wait_port "$PORT" || { notok "vin emulator started"; done_testing; exit 1; }
URL=http://127.0.0.1:$PORT
# The [vin] section of this scenario (some parts change the config for a while).
vin_config() {
	write_config <<EOF
[vin]
url = $URL/api/processing_queue
token = $TOKEN
tls = off
EOF
}
vin_config
stats() { curl -s "$URL/_stats"; }
control() { curl -s -X POST -d "$1" "$URL/_control" >/dev/null; }
charged() { stats | jq -r .charged; }

# A list: SEED, ROWS, FILE. Every 10th row is invalid (a VIN with O, a bad language, a brand the
# check type does not take), every 7th repeats an earlier row with a Cyrillic look-alike.
make_list() {
	$PY - "$1" "$2" "$3" <<'PY'
import random, sys
rnd = random.Random(int(sys.argv[1])); n = int(sys.argv[2])
chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
types = [("check_data_bmw_full", "BMW", "ru"), ("check_elsa_pro_full", "VW", "de"),
         ("check_data_multibr_zapros", "Toyota", "Английский"), ("check_CarVertical", "", "en"),
         ("check_erwin_full", "Audi", "en")]
rows, valid = [], []
for i in range(n):
    if i % 10 == 9:
        bad = i % 3
        v = "".join(rnd.choice(chars) for _ in range(16))
        if bad == 0: rows.append((v[:8] + "O" + v[8:], "check_data_bmw_full", "BMW", "ru"))
        elif bad == 1: rows.append((v + "A", "check_erwin_full", "Audi", "ru"))
        else: rows.append((v + "B", "check_data_bmw_full", "Audi", "en"))
    elif i % 7 == 6 and valid:
        v, t, b, l = rnd.choice(valid)
        rows.append((v.replace("A", "А").lower() if "A" in v else v, t, b, l))
    else:
        v = "".join(rnd.choice(chars) for _ in range(17))
        t = rnd.choice(types); valid.append((v,) + t); rows.append(valid[-1])
with open(sys.argv[3], "w") as f:
    f.write("VIN,Тип проверки,Марка,Язык,Комментарий\n")
    for k, r in enumerate(rows):
        f.write(",".join(r) + ",note %d\n" % k)
print(len(valid))
PY
}

# 1. A list of 300 rows: columns, statuses, one charge per distinct row.
unique=$(make_list 1 300 "$T/a.csv")
sg batch vin "$T/a.csv" --concurrency 8 >"$T/a.out" 2>"$T/a.err"; rc=$?
is "$rc" 65 "a list with invalid rows exits 65"
is "$(head -1 "$T/a.out")" "VIN,Тип проверки,Марка,Язык,Комментарий,status,error,id,message,report_status,report_url,report_file" \
	"output: input columns, then status, error, id, message, report_status, report_url, report_file"
is "$(tail -n +2 "$T/a.out" | wc -l)" 300 "one output row per input row"
is "$(grep -c ',invalid,' "$T/a.out")" 30 "30 invalid rows"
is "$(grep -c ',ok,' "$T/a.out")" 270 "270 ok rows (duplicates share their first row's answer)"
is "$(charged)" "$unique" "the emulator charged each distinct row once ($unique)"
is "$(stats | jq -r .max_per_item)" 1 "no VIN charged twice"
like "$(tail -1 "$T/a.err")" '^batch vin: 300 rows: 270 ok, 30 invalid, 0 failed, 0 pending, 0 unknown' \
	"summary line"
like "$(grep -m1 'same as row' "$T/a.out")" ',ok,same as row [0-9]+,' "a duplicate names its first row"
like "$(grep -m1 'I, O or Q' "$T/a.out")" ',invalid,' "a VIN with O is invalid"
unlike "$(cat "$T/a.err")" "$TOKEN" "the token is not in the log"

# 2. A re-run resumes: nothing is called again.
before=$(stats | jq -r .requests)
sg batch vin "$T/a.csv" -o "$T/a2.out" 2>"$T/a2.err"
is "$(stats | jq -r .requests)" "$before" "a re-run of a finished list makes no call"
check "the re-run writes the same output (-o)" cmp -s "$T/a.out" "$T/a2.out"

# 3. --dry-run makes no call.
make_list 2 40 "$T/d.csv" >/dev/null
sg batch vin "$T/d.csv" --dry-run >"$T/d.out" 2>/dev/null; rc=$?
is "$(stats | jq -r .requests)" "$before" "--dry-run makes no call"
is "$rc" 75 "--dry-run exits 75 (rows pending)"
like "$(sed -n 2p "$T/d.out")" ',pending,not sent \(dry run\)' "--dry-run shows rows pending"

# 4. kill -9 mid-run, then re-runs: no VIN is charged twice.
control '{"latency": 0.05}'
unique=$(make_list 3 400 "$T/k.csv")
c0=$(charged)
"$STOCKGATE" -c "$CONF" batch vin "$T/k.csv" --concurrency 4 >/dev/null 2>&1 &
pid=$!
sleep 1.5
kill -9 $pid; wait $pid 2>/dev/null
mid=$(( $(charged) - c0 ))
check "the killed run had charged some rows ($mid)" test "$mid" -gt 0 -a "$mid" -lt "$unique"
sg batch vin "$T/k.csv" --concurrency 8 >"$T/k.out" 2>"$T/k.err"
unknown=$(grep ',unknown,' "$T/k.out" | grep -vc 'same as row')
check "at most the calls in flight are unknown ($unknown)" test "$unknown" -le 4
is "$(stats | jq -r .max_per_item)" 1 "after kill -9 and a re-run, no VIN charged twice"
n=$(( $(charged) - c0 ))
check "each distinct row charged at most once, all but the unknown ones ($n of $unique)" \
	test "$n" -le "$unique" -a "$n" -ge $((unique - unknown))
sg batch vin "$T/k.csv" >"$T/k2.out" 2>/dev/null
is "$(grep ",unknown," "$T/k2.out" | grep -vc "same as row")" "$unknown" "unknown rows stay unknown without --retry-unknown"
sg batch vin "$T/k.csv" --retry-unknown >"$T/k3.out" 2>"$T/k3.err"
is "$(grep -c ',unknown,' "$T/k3.out")" 0 "--retry-unknown settles them"
is "$(grep -c ',ok,' "$T/k3.out")" 360 "every valid row of the killed list ends ok"
control '{"latency": 0}'

# 5. A 429 storm with Retry-After: the job waits and finishes.
make_list 4 6 "$T/r.csv" >/dev/null
control '{"fault": "429", "count": 3, "retry_after": "1"}'
t0=$(date +%s.%N)
sg batch vin "$T/r.csv" --concurrency 1 >"$T/r.out" 2>/dev/null
t1=$(date +%s.%N)
is "$(grep -c ',ok,' "$T/r.out")" "$(grep -vc ',invalid,\|^VIN' "$T/r.out")" "after a 429 storm every valid row is ok"
check "three Retry-After: 1 made the run last ≥ 3 s" awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 2.9) }'
gaps=$(stats | jq -r '[.log | . as $l | range(1; length) | select($l[. - 1][1] == 429) | $l[.][0] - $l[. - 1][0]] | map(select(. < 0.95)) | length')
is "$gaps" 0 "no call within 1 s of a 429"
date429=$(LC_ALL=C date -u -d '+2 seconds' '+%a, %d %b %Y %H:%M:%S GMT')
make_list 5 3 "$T/r2.csv" >/dev/null
control "{\"fault\": \"429\", \"count\": 1, \"retry_after\": \"$date429\"}"
t0=$(date +%s.%N)
sg batch vin "$T/r2.csv" --concurrency 1 >"$T/r2.out" 2>/dev/null
t1=$(date +%s.%N)
check "Retry-After as an HTTP-date is obeyed" awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 0.9) }'
control '{"retry_after": null}'

# 6. A paid call answered 500 may have been queued: unknown, never sent again by itself.
make_list 6 5 "$T/f.csv" >/dev/null
c0=$(charged) r0=$(stats | jq -r .requests)
control '{"fault": "500", "count": 2}'
sg batch vin "$T/f.csv" --concurrency 1 >"$T/f.out" 2>/dev/null; rc=$?
is "$rc" 75 "500s on the paid call: exit 75"
is "$(grep -c ',unknown,' "$T/f.out")" 2 "the two rows answered 500 are unknown"
is "$(grep -c ',ok,' "$T/f.out")" 3 "the others are ok"
is "$(( $(stats | jq -r .requests) - r0 ))" 5 "a 500 is not retried: one call a row"
sg batch vin "$T/f.csv" --retry-unknown >"$T/f2.out" 2>/dev/null
is "$(grep -c ',ok,' "$T/f2.out")" 5 "--retry-unknown settles them"
is "$(( $(charged) - c0 ))" 5 "and each row is charged once"

# 7. 401 stops the whole job at once.
make_list 7 60 "$T/u.csv" >/dev/null
control '{"fault": "401", "count": -1}'
r0=$(stats | jq -r .requests)
sg batch vin "$T/u.csv" --concurrency 2 >"$T/u.out" 2>"$T/u.err"; rc=$?
is "$rc" 75 "401: exit 75"
check "401: at most 2 calls were made" test $(( $(stats | jq -r .requests) - r0 )) -le 2
is "$(grep -c ',pending,' "$T/u.out")" 54 "401: every valid row stays pending"
like "$(cat "$T/u.err")" 'refused access \(HTTP 401\)' "401: the reason is logged"
control '{"fault": "none"}'
c0=$(charged)
sg batch vin "$T/u.csv" >"$T/u2.out" 2>/dev/null
is "$(grep -c ',ok,' "$T/u2.out")" 54 "after the 401 is fixed the re-run finishes"

# 8. A dropped connection after the charge: unknown, never called again by itself.
make_list 8 1 "$T/x.csv" >/dev/null
control '{"fault": "drop_after", "count": 1}'
c0=$(charged)
sg batch vin "$T/x.csv" >"$T/x.out" 2>/dev/null; rc=$?
is "$rc" 75 "an ambiguous outcome exits 75"
like "$(sed -n 2p "$T/x.out")" ',unknown,' "the row is unknown"
sg batch vin "$T/x.csv" >/dev/null 2>&1
is "$(( $(charged) - c0 ))" 1 "a re-run does not charge it again"

# 9. A windows-1251 list with ';' comes back in windows-1251 with ';'.
printf 'VIN;Тип проверки;Марка;Язык\nWBA5R1C53LA123456;check_data_bmw_full;БМВ;Русский\nWBA5R1C5OLA123456;check_data_bmw_full;BMW;ru\n' |
	iconv -f utf-8 -t cp1251 >"$T/c.csv"
sg batch vin "$T/c.csv" -o "$T/c.out" 2>/dev/null
check "the output is windows-1251" sh -c "! iconv -f utf-8 -t utf-8 '$T/c.out' >/dev/null 2>&1"
is "$(iconv -f cp1251 -t utf-8 "$T/c.out" | head -1)" "VIN;Тип проверки;Марка;Язык;status;error;id;message;report_status;report_url;report_file" \
	"the header in windows-1251 with ';'"
like "$(iconv -f cp1251 -t utf-8 "$T/c.out" | sed -n 2p)" '^WBA5R1C53LA123456;check_data_bmw_full;БМВ;Русский;ok;' \
	"the row as written, ok"

# 10. JSON lines; --balance; a missing token.
sg batch vin "$T/c.csv" --format json >"$T/j.out" 2>/dev/null
is "$(jq -r .status "$T/j.out" | tr '\n' ' ')" "ok invalid " "--format json: one object a row"
is "$(sg batch vin --balance 2>/dev/null)" "$(stats | jq -r '.balance // empty')$(curl -s -X POST -d "{\"token\":\"$TOKEN\",\"check_type\":\"get_balance\"}" "$URL/" | jq -r .balance)" \
	"--balance prints the balance"
sed -i '/^token = /d' "$CONF"
sg batch vin "$T/c.csv" >/dev/null 2>"$T/e.err"; rc=$?; [ "$rc" = 78 ] || sed "s/^/# /" "$T/e.err"
is "$rc" 78 "no token: exit 78"
like "$(cat "$T/e.err")" '\[vin\] token' "the message names the setting"

# 8. Two runs of one list at the same time (a CLI run beside a poll's job on the same bytes):
# each row is claimed in the journal by one of them only, so no VIN is charged twice.
vin_config
control '{"latency": 0.05}'
unique=$(make_list 8 200 "$T/race.csv")
c0=$(charged)
m0=$(stats | jq -r .max_per_item)
sg batch vin "$T/race.csv" --concurrency 8 >"$T/r1.out" 2>"$T/r1.err" &
p1=$!
sg batch vin "$T/race.csv" --concurrency 8 >"$T/r2.out" 2>"$T/r2.err" &
p2=$!
wait $p1 $p2
is "$(stats | jq -r .max_per_item)" "$m0" "two runs at once: the highest charge count of a VIN did not grow"
n=$(( $(charged) - c0 ))
check "two runs at once: each distinct row charged at most once ($n of $unique)" test "$n" -le "$unique"
sg batch vin "$T/race.csv" >"$T/r3.out" 2>/dev/null
is "$(( $(charged) - c0 ))" "$n" "a third run calls nothing more"
is "$(grep -c ',ok,' "$T/r3.out")" "$(grep -c ',ok,' "$T/r3.out" | sed 's/.*//')$(grep -vc ',invalid,' "$T/r3.out" | awk '{print $1 - 1}')" \
	"after both, every valid row is ok (none lost to the race)"

done_testing
