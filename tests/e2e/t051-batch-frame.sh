#!/bin/bash
# t051-batch-frame.sh: `stockgate batch frame` against the seed-001 emulator: setqueue →
# checkqueue → getresult, resume after kill -9 without queueing twice, --max-wait, a bad key or
# spent access stops the job, cp1251 lists, --dry-run.
. "$(dirname "$0")/../lib.sh"

KEY=SGCANARY-d66d-44d7-b440-5bd00b0b8203
PORT=$(free_port)
sg_bg $PY "$SG_TOP/tests/servers/frame_server.py" "$PORT" --key "$KEY" --delay 1
wait_port "$PORT" || { notok "frame emulator started"; done_testing; exit 1; }
URL=http://127.0.0.1:$PORT
write_config <<EOF
[frame]
url = $URL/reportrequestframe.ashx
key = $KEY
tls = off
EOF
stats() { curl -s "$URL/_stats"; }
control() { curl -s -X POST -d "$1" "$URL/_control" >/dev/null; }
queued() { stats | jq -r .charged; }

# A list: SEED, ROWS, FILE. Every 10th row is not a frame, every 9th repeats an earlier frame
# typed differently, every 25th is a frame the service does not find.
make_list() {
	$PY - "$1" "$2" "$3" <<'PY'
import random, sys
rnd = random.Random(int(sys.argv[1])); n = int(sys.argv[2])
models = ["GX100", "JZX110", "NZE141", "BNR34", "GD1", "FD3S", "GDB", "CT9A", "JB23W", "ACV30"]
rows, valid = [], []
for i in range(n):
    if i % 10 == 9:
        rows.append(rnd.choice(["SV30-BTPNK", "ASDASDA", "BC14.1243323", "WBA5R1C53LA123456"]))
    elif i % 9 == 8 and valid:
        f = rnd.choice(valid); rows.append(f.lower().replace("-", " "))
    else:
        m = rnd.choice(models)
        if i % 25 == 24: m = "ZZ" + m[:3]
        f = "%s-%0*d" % (m, rnd.choice([6, 7]), rnd.randrange(10 ** 6))
        valid.append(f)
        rows.append(rnd.choice([f, f.replace("-", ""), "DBA-" + f, f.replace("-", "–")])
                    if not f.startswith("ZZ") else f)
with open(sys.argv[3], "w") as out:
    out.write("№;Номер кузова\n")
    for k, r in enumerate(rows):
        out.write("%d;%s\n" % (k + 1, r))
print(len(valid))
PY
}

# 1. A list of 200 rows.
unique=$(make_list 1 200 "$T/a.csv")
sg batch frame "$T/a.csv" --concurrency 8 --poll-interval 200ms >"$T/a.out" 2>"$T/a.err"; rc=$?
is "$rc" 65 "a list with invalid and not-found rows exits 65"
is "$(head -1 "$T/a.out")" "№;Номер кузова;status;error;id;url" "output: input columns, status, error, id, url"
is "$(grep -c ';invalid;' "$T/a.out")" 20 "20 rows are not frames"
nf=$(grep -c ';failed;' "$T/a.out")
check "frames the service does not find fail ($nf)" test "$nf" -ge 1
is "$(grep -c ';ok;' "$T/a.out")" $((180 - nf)) "every other row is ok"
like "$(grep -m1 ';ok;;' "$T/a.out")" ';ok;;[0-9]+;https://frame\.example/report/[0-9]+\.html$' "ok rows carry id and url"
is "$(queued)" "$unique" "each distinct frame queued once ($unique)"
is "$(stats | jq -r .max_per_item)" 1 "no frame queued twice"
unlike "$(cat "$T/a.err")" "$KEY" "the key is not in the log"
like "$(tail -1 "$T/a.err")" "^batch frame: 200 rows: $((180 - nf)) ok, 20 invalid, $nf failed, 0 pending, 0 unknown" "summary line"

# 2. Re-run: nothing is called.
r0=$(stats | jq -r .requests)
sg batch frame "$T/a.csv" >/dev/null 2>&1
is "$(stats | jq -r .requests)" "$r0" "a re-run of a finished list makes no call"

# 3. --dry-run makes no call.
make_list 2 30 "$T/d.csv" >/dev/null
sg batch frame "$T/d.csv" --dry-run >"$T/d.out" 2>/dev/null
is "$(stats | jq -r .requests)" "$r0" "--dry-run makes no call"

# 4. --max-wait: reports not ready stay pending with their id; a re-run polls, never re-queues.
control '{"set_delay": 4}'
make_list 3 20 "$T/w.csv" >/dev/null
q0=$(queued)
sg batch frame "$T/w.csv" --max-wait 1s --poll-interval 200ms >"$T/w.out" 2>/dev/null; rc=$?
is "$rc" 75 "not ready within --max-wait: exit 75"
like "$(grep -m1 ';pending;' "$T/w.out")" ';pending;[^;]*;[0-9]+;$' "a pending row shows its id"
q1=$(queued)
sleep 3.5
sg batch frame "$T/w.csv" --poll-interval 200ms >"$T/w2.out" 2>/dev/null
is "$(queued)" "$q1" "the re-run queued nothing again"
is "$(grep -c ';pending;' "$T/w2.out")" 0 "the re-run finished every row"
control '{"set_delay": 1}'

# 5. kill -9 mid-run, then a re-run: no frame queued twice.
control '{"latency": 0.05}'
unique=$(make_list 4 300 "$T/k.csv")
"$STOCKGATE" -c "$CONF" batch frame "$T/k.csv" --concurrency 4 --poll-interval 300ms >/dev/null 2>&1 &
pid=$!
sleep 2
kill -9 $pid; wait $pid 2>/dev/null
sg batch frame "$T/k.csv" --concurrency 8 --poll-interval 200ms >"$T/k.out" 2>/dev/null
unknown=$(grep ';unknown;' "$T/k.out" | grep -vc 'same as row')
check "at most the calls in flight are unknown ($unknown)" test "$unknown" -le 4
is "$(stats | jq -r .max_per_item)" 1 "after kill -9 and a re-run, no frame queued twice"
is "$(grep -c ';pending;' "$T/k.out")" 0 "nothing left pending"
control '{"latency": 0}'

# 6. A bad key stops the job at once.
make_list 5 40 "$T/b.csv" >/dev/null
control '{"set_key": "another"}'
r0=$(stats | jq -r .requests)
sg batch frame "$T/b.csv" --concurrency 2 >"$T/b.out" 2>"$T/b.err"; rc=$?
is "$rc" 75 "bad key: exit 75"
check "bad key: at most 2 calls" test $(( $(stats | jq -r .requests) - r0 )) -le 2
is "$(grep -c ';unknown;' "$T/b.out")" 0 "bad key: no row is unknown"
like "$(cat "$T/b.err")" 'refused access' "bad key: the reason is logged"
control "{\"set_key\": \"$KEY\"}"

# 7. Spent access stops the job; the rest stays pending.
control "{\"set_quota\": $(( $(queued) + 3 ))}"
sg batch frame "$T/b.csv" --concurrency 1 --poll-interval 200ms >"$T/q.out" 2>"$T/q.err"; rc=$?
is "$rc" 75 "spent access: exit 75"
like "$(cat "$T/q.err")" 'Закончился доступ' "spent access: the service's reason is logged"
check "spent access: rows stay pending" test "$(grep -c ';pending;' "$T/q.out")" -ge 20
control '{"set_quota": null}'

# 8. A windows-1251 list with ';' comes back in windows-1251 with ';'.
printf 'Кузов;Модель\nJZS1410055903;Тойота Аристо\nSV30-BTPNK;код типа\n' | iconv -f utf-8 -t cp1251 >"$T/c.csv"
sg batch frame "$T/c.csv" --poll-interval 200ms -o "$T/c.out" 2>/dev/null
is "$(iconv -f cp1251 -t utf-8 "$T/c.out" | head -1)" "Кузов;Модель;status;error;id;url" "the header in windows-1251 with ';'"
like "$(iconv -f cp1251 -t utf-8 "$T/c.out" | sed -n 2p)" '^JZS1410055903;Тойота Аристо;ok;;' "the row as written, ok"

# 9. No url: exit 78 naming the setting.
sed -i '/^url = /d' "$CONF"
sg batch frame "$T/c.csv" >/dev/null 2>"$T/e.err"; rc=$?
is "$rc" 78 "no url: exit 78"
like "$(cat "$T/e.err")" '\[frame\] url' "the message names the setting"

done_testing
