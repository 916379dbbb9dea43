#!/bin/bash
# t055-batch-mail.sh: batch jobs by e-mail (SPEC 9, last bullet): a vin list mailed by a user
# with the role is accepted (record applied, a job, an acknowledgement), advanced by
# `batch run-jobs` and by `poll` over a Maildir, and its results CSV mailed back once; the role,
# the attachment and the kind are checked; a crash mid-job charges no VIN twice; a frame job
# spans several passes; a results report the transport refuses waits for the next pass; with a
# receiver, a VIN job waits for each row's report up to the row's own wait_until (SG_NOW).
. "$(dirname "$0")/../lib.sh"

TOKEN=SGCANARYvin0123456789
VPORT=$(free_port)
sg_bg $PY "$SG_TOP/tests/servers/vin_server.py" "$VPORT" --token "$TOKEN" --balance 100000
FKEY=SGCANARY-d66d-44d7-b440-5bd00b0b8203
FPORT=$(free_port)
sg_bg $PY "$SG_TOP/tests/servers/frame_server.py" "$FPORT" --key "$FKEY" --delay 1
wait_port "$VPORT" && wait_port "$FPORT" || { notok "emulators started"; done_testing; exit 1; }
VURL=http://127.0.0.1:$VPORT
FURL=http://127.0.0.1:$FPORT
MAIL=$T/mail
mkdir -p "$MAIL/new" "$MAIL/cur" "$MAIL/tmp"
write_config <<EOF
[source]
url = maildir:$MAIL
poll_interval = 10

[vin]
url = $VURL/api/processing_queue
token = $TOKEN
tls = off

[frame]
url = $FURL/reportrequestframe.ashx
key = $FKEY
tls = off
EOF
KEY=0123456789abcdef0123456789abcdef
setup_dealer D1 "$KEY" dealer@shop.example 2>/dev/null
sg user add vin@shop.example --dealer D1 --role batch_vin >/dev/null 2>&1
sg user add frame@shop.example --dealer D1 --role batch_frame >/dev/null 2>&1
vstats() { curl -s "$VURL/_stats"; }
vcontrol() { curl -s -X POST -d "$1" "$VURL/_control" >/dev/null; }
fstats() { curl -s "$FURL/_stats"; }
jobs_pending() { sg status --format json | jq -r .jobs_pending; }
newest() { ls -t "$OUTBOX"/*.eml | head -1; }

# mkmsg OUT FROM SUBJECT [FILE[:TYPE]]…: a message with the key as its body (lib.sh).
mkmsg() { mail_lists "$@"; }

# report_text EML: subject line, then the body text.
report_text() {
	$PY - "$1" <<'PY'
import sys, email, email.policy
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
print("Subject:", m["Subject"]); print("To:", m["To"]); print("In-Reply-To:", m["In-Reply-To"])
print(m.get_body(("plain",)).get_content())
PY
}

# A vin list: 6 rows, one invalid (a VIN with O), one repeating row 2 with Cyrillic look-alikes.
cat >"$T/vins.csv" <<'EOF'
VIN,Тип проверки,Марка,Язык,Комментарий
WBA5R1C53LA123456,check_data_bmw_full,BMW,ru,first
WVWZZZ1KZAW123457,check_elsa_pro_full,VW,en,second
JTDBR32E720123458,check_data_multibr_zapros,Toyota,en,third
WBA5R1C5OLA123459,check_data_bmw_full,BMW,ru,bad vin
WVWZZZ1KZАW123457,check_elsa_pro_full,VW,en,again
WAUZZZ8K9BA123450,check_erwin_full,Audi,en,fifth
EOF

# 1. process: accepted, a job, an acknowledgement; no call yet.
mkmsg "$T/v1.eml" vin@shop.example vin "$T/vins.csv"
rec=$(sg process "$T/v1.eml" 2>"$T/v1.err"); rc=$?
is "$rc" 0 "process of a vin list exits 0"
is "$(jf "$rec" '[.method, .outcome, .reason, .report] | join(" ")')" "vin applied  written" \
	"record: method vin, outcome applied, report written"
is "$(jf "$rec" '.files[0] | [.name, .status, .rows, .encoding, .delimiter] | join(" ")')" \
	"vins.csv applied 6 utf-8 ," "the list is the one file: applied, 6 data rows"
is "$(outbox_count)" 1 "an acknowledgement report is written"
ack=$(report_text "$(newest)")
like "$ack" "Задание 1 принято: строк 6, из них с ошибками 1" "the acknowledgement names the job and its rows"
like "$ack" "To: vin@shop.example" "it goes to the sender"
is "$(jobs_pending)" 1 "status: one job pending"
is "$(vstats | jq -r .requests)" 0 "process makes no lookup"
check "the list is kept beside the state db" test -f "$T/stockgate.db.jobs/$(sha256sum "$T/v1.eml" | cut -c1-64)/input.csv"

# 2. run-jobs: the job ends, the results come back once.
sg batch run-jobs --max-time 20s 2>"$T/rj.err"; rc=$?
is "$rc" 0 "run-jobs: the job ended, exit 0"
is "$(outbox_count)" 2 "a results report is written"
res=$(newest)
txt=$(report_text "$res")
like "$txt" "Subject: vin: обработано" "results subject"
like "$txt" "Задание 1 завершено: строк 6: успешно 5, с ошибками в данных 1" "the results report counts the rows"
like "$txt" "In-Reply-To: <" "the results report is threaded under the request"
report_part "$res" vins-results.csv >"$T/r1.csv"
is "$(head -1 "$T/r1.csv")" "VIN,Тип проверки,Марка,Язык,Комментарий,status,error,id,message,report_status,report_url,report_file" \
	"results.csv: the list's columns, then status, error, id, message"
is "$(tail -n +2 "$T/r1.csv" | cut -d, -f6 | tr '\n' ' ')" "ok ok ok invalid ok ok " "row statuses"
like "$(sed -n 6p "$T/r1.csv")" ',ok,same as row 3,' "the repeated row shares its first row's answer"
is "$(vstats | jq -r .charged)" 4 "the emulator charged each distinct VIN once"
is "$(vstats | jq -r .max_per_item)" 1 "no VIN charged twice"
is "$(jobs_pending)" 0 "status: no job pending"
check "the job's files are removed once the results are sent" \
	test ! -e "$T/stockgate.db.jobs/$(sha256sum "$T/v1.eml" | cut -c1-64)"
unlike "$(cat "$T/v1.err" "$T/rj.err")" "$TOKEN" "the token is not in the log"

# 3. Another pass sends nothing more; the same message again is a duplicate.
r0=$(vstats | jq -r .requests)
sg batch run-jobs 2>/dev/null; rc=$?
is "$rc" 0 "a second run-jobs: nothing to do, exit 0"
is "$(outbox_count)" 2 "a second run-jobs sends nothing"
is "$(vstats | jq -r .requests)" "$r0" "and calls nothing"
rec=$(sg process "$T/v1.eml" 2>/dev/null)
is "$(jf "$rec" .outcome)" duplicate "the same message again: duplicate"
is "$(jobs_pending)" 0 "and no new job"

# 4. Refusals: no role, a kind not run here, two files, a bad header, a workbook.
mkmsg "$T/n1.eml" dealer@shop.example vin "$T/vins.csv"
rec=$(sg process "$T/n1.eml" 2>/dev/null)
is "$(jf "$rec" '[.outcome, .reason] | join(" ")')" "rejected no_role" "a user without batch_vin: rejected no_role"
is "$(jobs_pending)" 0 "no job for a user without the role"
is "$(outbox_count)" 2 "and no reply"
sg user add vin@shop.example --dealer D1 --role batch_vin --role batch_price >/dev/null 2>&1
mkmsg "$T/p1.eml" vin@shop.example price "$T/vins.csv"
rec=$(sg process "$T/p1.eml" 2>/dev/null)
is "$(jf "$rec" '[.outcome, .reason] | join(" ")')" "failed unknown_method" "price (no [price] here): failed unknown_method"
like "$(report_text "$(newest)")" "Проверки price на этом шлюзе не настроены" "the report says price is not configured here"
mkmsg "$T/t2.eml" vin@shop.example vin "$T/vins.csv" "$FIX/batch/vin-example.csv"
rec=$(sg process "$T/t2.eml" 2>/dev/null)
is "$(jf "$rec" '[.outcome, .reason] | join(" ")')" "failed too_many_attachments" "two lists: failed too_many_attachments"
printf 'номер;цена\n1;2\n' >"$T/bad.csv"
mkmsg "$T/h1.eml" vin@shop.example vin "$T/bad.csv"
rec=$(sg process "$T/h1.eml" 2>/dev/null)
is "$(jf "$rec" '[.outcome, .files[0].status, .files[0].reason] | join(" ")')" "failed rejected bad_header" \
	"a list without the vin columns: file rejected bad_header"
printf 'PK\003\004 not a csv' >"$T/book.xlsx"
mkmsg "$T/x1.eml" vin@shop.example vin "$T/book.xlsx:application/octet-stream"
rec=$(sg process "$T/x1.eml" 2>/dev/null)
is "$(jf "$rec" '.files[0].reason')" not_csv "a workbook: not_csv"
mkmsg "$T/i1.eml" vin@shop.example vin "$T/vins.csv:image/png"
rec=$(sg process "$T/i1.eml" 2>/dev/null)
is "$(jf "$rec" '.files[0].reason')" bad_mime_type "an image: bad_mime_type"
is "$(jobs_pending)" 0 "none of these made a job"

# 5. Development mode: checked and answered as a test, no job, no call.
sg dealer dev-mode D1 on >/dev/null 2>&1
mkmsg "$T/dv.eml" vin@shop.example vin "$T/vins.csv"
n0=$(outbox_count)
rec=$(sg process "$T/dv.eml" 2>/dev/null)
is "$(jf "$rec" '[.outcome, .dev_mode] | join(" ")')" "applied true" "development mode: applied, dev_mode"
is "$(jobs_pending)" 0 "development mode: no job"
like "$(report_part "$(newest)" vins-check.csv | sed -n 5p)" ',invalid,' "the test report carries the checked list"
sg dealer dev-mode D1 off >/dev/null 2>&1

# 6. poll over a Maildir: the job is accepted and advanced in the same pass.
make_vins() {
	$PY - "$1" "$2" <<'PY'
import random, sys
rnd = random.Random(int(sys.argv[1])); chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
with open(sys.argv[2], "w") as f:
    f.write("vin;check_type;brand;language\n")
    for i in range(40):
        f.write("%s;check_data_bmw_full;BMW;ru\n" % "".join(rnd.choice(chars) for _ in range(17)))
PY
}
make_vins 1 "$T/poll.csv"
mkmsg "$MAIL/new/1.eml" vin@shop.example "Re: VIN" "$T/poll.csv"
c0=$(vstats | jq -r .charged)
n0=$(outbox_count)
rec=$(sg poll 2>"$T/poll.err"); rc=$?
is "$rc" 0 "poll exits 0"
is "$(jf "$rec" '[.source, .outcome] | join(" ")')" "maildir:1.eml applied" "poll: the message is applied"
is "$(outbox_count)" $((n0 + 2)) "poll: acknowledgement and results in one pass"
report_part "$(newest)" poll-results.csv >"$T/r2.csv"
is "$(head -1 "$T/r2.csv")" "vin;check_type;brand;language;status;error;id;message;report_status;report_url;report_file" "results keep the list's ';'"
is "$(grep -c ';ok;' "$T/r2.csv")" 40 "every row ok"
is "$(( $(vstats | jq -r .charged) - c0 ))" 40 "40 VINs charged once each"
check "the message is moved to .Processed" test -n "$(ls "$MAIL/.Processed/new" 2>/dev/null)"
n0=$(outbox_count)
sg poll >/dev/null 2>&1
is "$(outbox_count)" "$n0" "the next poll sends nothing"

# 7. A crash mid-job (after "sent" is journalled, then after answers), then another pass: no VIN
# is charged twice.
vcontrol '{"latency": 0.1}'
make_vins 2 "$T/crash.csv"
mkmsg "$T/c1.eml" vin@shop.example vin "$T/crash.csv"
sg process "$T/c1.eml" >/dev/null 2>&1
c0=$(vstats | jq -r .charged)
SG_CRASH=batch-sent sg batch run-jobs >/dev/null 2>&1; rc=$?
is "$rc" 137 "the run dies at batch-sent"
SG_CRASH=batch-answer sg batch run-jobs >/dev/null 2>&1; rc=$?
is "$rc" 137 "the next run dies at batch-answer"
mid=$(( $(vstats | jq -r .charged) - c0 ))
check "some rows were charged before the crashes ($mid)" test "$mid" -gt 0
n0=$(outbox_count)
sg batch run-jobs --max-time 30s 2>/dev/null; rc=$?
is "$rc" 0 "a pass after the crashes ends the job"
is "$(vstats | jq -r .max_per_item)" 1 "no VIN charged twice across the crashes"
report_part "$(newest)" crash-results.csv >"$T/r3.csv"
unknown=$(grep -c ';unknown;' "$T/r3.csv")
check "at most the calls in flight at the two crashes are unknown ($unknown)" test "$unknown" -le 8
is "$(( $(grep -c ';ok;' "$T/r3.csv") + unknown ))" 40 "every other row is ok"
n=$(( $(vstats | jq -r .charged) - c0 ))
check "each row charged at most once ($n of 40, $unknown unknown)" test "$n" -le 40 -a "$n" -ge $((40 - unknown))
is "$(outbox_count)" $((n0 + 1)) "one results report"
vcontrol '{"latency": 0}'

# 8. A frame job over several short passes: queued once, polled until ready.
printf 'Номер кузова;Примечание\nGX100-6012345;a\nJZX110-0123456;b\nNZE141-1234567;c\n' >"$T/frames.csv"
mkmsg "$T/f1.eml" frame@shop.example frame "$T/frames.csv"
sg process "$T/f1.eml" >/dev/null 2>&1
n0=$(outbox_count)
sg batch run-jobs --max-time 300ms 2>/dev/null; rc=$?
is "$rc" 75 "a frame job not ready within --max-time: exit 75"
is "$(outbox_count)" "$n0" "no results yet"
is "$(jobs_pending)" 1 "the job stays under way"
for i in 1 2 3 4 5 6 7 8 9 10; do
	sg batch run-jobs --max-time 1s 2>/dev/null && break
done
is "$(outbox_count)" $((n0 + 1)) "the frame results come once the reports are ready"
report_part "$(newest)" frames-results.csv >"$T/r4.csv"
is "$(grep -c ';ok;' "$T/r4.csv")" 3 "every frame ok"
is "$(fstats | jq -r .max_per_item)" 1 "no frame queued twice"

# 9. The transport is down (an SMTP server that does not answer): the results wait for the
# next pass.
make_vins 3 "$T/late.csv"
mkmsg "$T/l1.eml" vin@shop.example vin "$T/late.csv"
sg process "$T/l1.eml" >/dev/null 2>&1
n0=$(outbox_count)
cp "$CONF" "$T/conf.dir"
DEAD=$(free_port)
sed -i "s|^url = dir:.*|url = smtp://127.0.0.1:$DEAD\ntls = off|" "$CONF"
sg batch run-jobs 2>"$T/l.err"; rc=$?
cp "$T/conf.dir" "$CONF"
is "$rc" 75 "results not delivered: exit 75"
like "$(cat "$T/l.err")" "results report not delivered, will retry" "the failure is logged"
is "$(jobs_pending)" 0 "the job is done, its report pending"
is "$(sg status --format json | jq .reports_pending)" 1 "status counts the results report pending"
r0=$(vstats | jq -r .requests)
sg batch run-jobs 2>/dev/null; rc=$?
is "$rc" 0 "the next pass delivers, exit 0"
is "$(outbox_count)" $((n0 + 1)) "the results report arrives"
is "$(vstats | jq -r .requests)" "$r0" "without calling again"
is "$(sg status --format json | jq .reports_pending)" 0 "and none is pending any more"

# 10. A crash after the job is marked done, before its report goes: the next pass sends it.
make_vins 4 "$T/done.csv"
mkmsg "$T/d1.eml" vin@shop.example vin "$T/done.csv"
sg process "$T/d1.eml" >/dev/null 2>&1
n0=$(outbox_count)
SG_CRASH=job-done sg batch run-jobs >/dev/null 2>&1; rc=$?
is "$rc" 137 "the run dies between the end of the job and its report"
is "$(outbox_count)" "$n0" "no results yet"
r0=$(vstats | jq -r .requests)
sg batch run-jobs 2>/dev/null; rc=$?
is "$rc" 0 "the next pass sends the results, exit 0"
is "$(outbox_count)" $((n0 + 1)) "the results report arrives once"
is "$(vstats | jq -r .requests)" "$r0" "without calling again"

# 11. An Outlook message with a windows-1251 list (fixtures/batch): the results come back in
# windows-1251 with ';'.
rec=$(sg process "$FIX/batch/vin-request-cp1251.eml" 2>/dev/null)
is "$(jf "$rec" '[.outcome, .files[0].encoding, .files[0].delimiter, .files[0].rows] | join(" ")')" \
	"applied windows-1251 ; 3" "a windows-1251 list: applied, encoding and delimiter as read"
sg batch run-jobs 2>/dev/null
report_part "$(newest)" vin-list-results.csv >"$T/r5.csv"
check "the results are windows-1251" sh -c "! iconv -f utf-8 -t utf-8 '$T/r5.csv' >/dev/null 2>&1"
is "$(iconv -f cp1251 -t utf-8 "$T/r5.csv" | head -1)" "VIN;Тип проверки;Марка;Язык;Клиент;status;error;id;message;report_status;report_url;report_file" \
	"the results header in windows-1251 with ';'"
is "$(iconv -f cp1251 -t utf-8 "$T/r5.csv" | tail -n +2 | cut -d';' -f1,5,6 | tr '\n' ' ')" \
	"WBA5R1C53LA123456;Иванов;ok XTA210990Y2765432;Петров;ok WBA5R1C5OLA123456;Сидоров;invalid " \
	"the rows as written, with their statuses"

# 12. A poll holding the lock keeps run-jobs out.
exec 9>"$T/stockgate.db.lock"
flock -n 9
sg batch run-jobs 2>/dev/null; rc=$?
is "$rc" 75 "run-jobs while a poll holds the lock: exit 75"
exec 9>&-

# 13. With a receiver (`serve`), a mailed VIN job lives as long as its rows wait for their
# reports, each to its own wait_until, even past created + max_defer (and past created +
# report_wait, when a row went out later than the job came); those polls call nothing. The clock
# is SG_NOW: the jobs come at T0, their rows go out at T0+30m (wait_until T0+2h30m).
SECRET=SGCANARYsecret0123456789abcdef0123456789
SPORT=$(free_port)
printf '%s\n' "$SECRET" >"$T/secret"; chmod 600 "$T/secret"
# The configuration above, with a receiver and its clock settings.
sed -i -e '/^\[source\]$/a max_defer = 1h' \
	-e "/^\\[vin\\]\$/a callback_secret_file = $T/secret\\nreport_wait = 2h" "$CONF"
printf '\n[serve]\nlisten = 127.0.0.1:%s\n' "$SPORT" >>"$CONF"
"$STOCKGATE" -c "$CONF" serve 2>>"$T/serve.log" & _pids+=($!)
wait_port "$SPORT" || notok "serve started"
CB=http://127.0.0.1:$SPORT/vin/$SECRET
WVIN=WBA5R1C53LA777001 NVIN=WBA5R1C53LA777002
printf 'vin,check_type,brand,language\n%s,check_data_bmw_full,BMW,ru\n' "$WVIN" >"$T/wait.csv"
printf 'vin,check_type,brand,language\n%s,check_data_bmw_full,BMW,ru\n' "$NVIN" >"$T/never.csv"
mkmsg "$T/w1.eml" vin@shop.example vin "$T/wait.csv"
mkmsg "$T/w2.eml" vin@shop.example vin "$T/never.csv"
T0=$(date +%s)
SG_NOW=$T0 sg process "$T/w1.eml" >/dev/null 2>&1
SG_NOW=$T0 sg process "$T/w2.eml" >/dev/null 2>&1
c0=$(vstats | jq -r .charged)
SG_NOW=$((T0 + 1800)) sg poll >/dev/null 2>&1
is "$(( $(vstats | jq -r .charged) - c0 ))" 2 "the poll at T0+30m sends both rows"
is "$(jobs_pending)" 2 "both jobs wait for their reports"
n0=$(outbox_count) r0=$(vstats | jq -r .requests)
SG_NOW=$((T0 + 5400)) sg poll >/dev/null 2>"$T/w.err"
SG_NOW=$((T0 + 8000)) sg poll >/dev/null 2>>"$T/w.err"
is "$(outbox_count)" "$n0" "polls past created + max_defer (and + report_wait), before wait_until: no results report"
is "$(jobs_pending)" 2 "the jobs are still under way"
is "$(vstats | jq -r .requests)" "$r0" "the waiting polls call the service not once"
like "$(cat "$T/w.err")" "1 of them waiting for their reports \\(past max_defer: no new call\\)" \
	"the log says the row waits and no call starts"
wid=$(sqlite3 "$T/stockgate.db" "SELECT json_extract(answer, '\$.id') FROM journal WHERE kind = 'vin'
	AND state = 'waiting' AND json_extract(answer, '\$.vin') = '$WVIN'")
printf '%%PDF-1.4\nreport for %s\n%%%%EOF\n' "$WVIN" >"$T/w.pdf"
is "$(curl -s -o /dev/null -w '%{http_code}' -F "uid=$wid" -F status=ok -F "vin=$WVIN" \
	-F "url=https://reports.example/$wid.pdf" -F "file=@$T/w.pdf;type=application/pdf" "$CB")" 200 \
	"serve files the report of the waiting row"
SG_NOW=$((T0 + 8500)) sg poll >/dev/null 2>&1
is "$(outbox_count)" $((n0 + 1)) "the next poll sends the results report of the job whose report came"
res=$(newest)
like "$(report_text "$res")" "Задание [0-9]+ завершено: строк 1: успешно 1" "the results report counts the row ok"
report_part "$res" wait-results.csv >"$T/w.csv"
like "$(sed -n 2p "$T/w.csv")" "^$WVIN,.*,ok,,$wid,.*,ok,https://reports.example/$wid.pdf,.*/2-$WVIN\\.pdf\$" \
	"the row is ok with its report's status, link and file"
like "$(report_part "$res" "2-$WVIN.pdf")" "report for $WVIN" "the report is attached"
is "$(jobs_pending)" 1 "the job whose report never came still waits"
is "$(vstats | jq -r .requests)" "$r0" "still without a call"
SG_NOW=$((T0 + 9100)) sg poll >/dev/null 2>&1
is "$(outbox_count)" $((n0 + 2)) "past its row's wait_until the other job ends"
res=$(newest)
report_part "$res" never-results.csv >"$T/n.csv"
like "$(sed -n 2p "$T/n.csv")" "^$NVIN,.*,unknown,no_report" "its row is unknown, no_report"
like "$(report_text "$res")" "без ответа 1" "the results report counts it unknown"
is "$(jobs_pending)" 0 "no job is left"
is "$(vstats | jq -r .requests)" "$r0" "and nothing was sent again"
is "$(vstats | jq -r --arg w "$WVIN/check_data_bmw_full" --arg n "$NVIN/check_data_bmw_full" '[.per_item[$w], .per_item[$n]] | join(" ")')" \
	"1 1" "each of the two VINs charged once"

done_testing
