#!/bin/bash
# t041-mirror-faults.sh: a mirror that fails part-way (500, hang, dropped after commit, 429) defers the message; the rerun converges and no warehouse is ever emptied.
. "$(dirname "$0")/../lib.sh"
. "$SG_TOP/fixtures/mirror/lib-mirror.sh"
KEY=0123456789abcdef0123456789abcdef

start_keaz --dealer "$KEY=D1" --hang-seconds 4 || { notok "emulator starts"; done_testing; exit 1; }
write_config <<EOF
[mirror]
url = $API/restapi
tls = off
timeout = 2
batch_size = 2
EOF
setup_dealer

H=$'Адрес;Контакты;Код склада\n'
HR=$'Код склада;Артикул;Остаток\n'
# Round i's list: A (address changes), B, C, and three new codes Xi1..Xi3 (the last round's go).
wlist() { printf '%sКурск, дом %s;a@shop.example;A\nОрёл;b@shop.example;B\nТула;c@shop.example;C\n' "$H" "$1"
	printf 'Склад %s;x@shop.example;X%s1\nСклад %s;x@shop.example;X%s2\nСклад %s;x@shop.example;X%s3\n' \
		"$1" "$1" "$1" "$1" "$1" "$1"; }
rlist() { printf '%sA;100;%s\nA;200;%s\nA;30%s;1\n' "$HR" "$1" "$(($1 + 10))" "$1"; }

# Baseline, fault-free: the warehouses and remains of A and B.
seq=1
mkmsg "$T/w0.eml" warehouses $seq "$(wlist 0)"; run_msg "$T/w0.eml"
is "$(jf "$OUT" .outcome)" applied "baseline warehouses applied"
seq=$((seq + 1)); mkmsg "$T/ra.eml" remains $seq "$(rlist 0)"; run_msg "$T/ra.eml"
seq=$((seq + 1)); mkmsg "$T/rb.eml" remains $seq $'Код склада;Артикул;Остаток\nB;100;7\n'; run_msg "$T/rb.eml"
is "$(jf "$OUT" .outcome)" applied "baseline remains applied"
in_sync "baseline"
ctl '{"reset_log":true}'

# deferred DESC: the last run deferred the message and changed nothing locally.
deferred() {
	is "$RC" 75 "$1: exit 75"
	is "$(jf "$OUT" '.outcome + " " + .reason')" "deferred mirror_unavailable" "$1: deferred mirror_unavailable"
	is "$(local_wh)" "$before_wh" "$1: local warehouses unchanged"
	is "$(local_rem)" "$before_rem" "$1: local remains unchanged"
}

# A warehouses file needs: list (1), add ×2 (2, 3), update (4), delete ×2 (5, 6).
i=0
for fault in fail_at:3 hang_at:4 drop_at:5 ratelimit_at:2 fail_at:1 drop_at:6; do
	i=$((i + 1)) name=${fault%%:*} k=${fault#*:}
	before_wh=$(local_wh) before_rem=$(local_rem)
	seq=$((seq + 1)); mkmsg "$T/w$i.eml" warehouses $seq "$(wlist $i)"
	ctl "{\"$name\":$k,\"retry_after\":1}"
	n_before=$(api_log | jq length)
	run_msg "$T/w$i.eml"
	if [ "$name" = drop_at ] && [ "$(jf "$OUT" .outcome)" = applied ]; then
		# A connection that dies before any answer byte on a reused connection is re-sent once
		# by libcurl on a fresh one; every request here is safe to repeat.
		is "$(api_log | jq -r ".[$n_before + $k - 1].action == .[$n_before + $k].action")" true \
			"warehouses, drop after commit at $k: the request was sent again, and taken"
	else
		deferred "warehouses, $name at request $k"
		n0=$(api_log | jq length)
		run_msg "$T/w$i.eml"
		is "$RC" 0 "warehouses, $name at $k: the rerun exits 0"
		is "$(jf "$OUT" .outcome)" applied "warehouses, $name at $k: the rerun applies"
	fi
	in_sync "warehouses, $name at $k, rerun"
	is "$(local_wh | jq -r 'map(.code) | join(" ")')" "A B C X${i}1 X${i}2 X${i}3" \
		"warehouses, $name at $k: the file's list"
	if [ "$fault" = fail_at:3 ]; then
		# The first add batch went through: the rerun sends only the rest.
		is "$(api_log | jq -c ".[$n0:] | map(select(.action == \"warehouse.add\") | .body.warehouses[].code)")" \
			"[\"X${i}3\"]" "warehouses, 500 at the second batch: the rerun adds only what is missing"
	fi

	before_wh=$(local_wh) before_rem=$(local_rem)
	seq=$((seq + 1)); mkmsg "$T/r$i.eml" remains $seq "$(rlist $i)"
	ctl "{\"$name\":1,\"retry_after\":1}"
	run_msg "$T/r$i.eml"
	deferred "remains, $name"
	run_msg "$T/r$i.eml"
	is "$(jf "$OUT" .outcome)" applied "remains, $name: the rerun applies"
	in_sync "remains, $name, rerun"
done

# At no moment did the server hold A or B without remains, or miss A, B or C.
hist=$(curl -s "$API/_history")
is "$(jq '[.[] | .state.D1 | select((.remains.A // {} | length) == 0 or (.remains.B // {} | length) == 0)] | length' <<<"$hist")" 0 \
	"history: no emptied warehouse, ever"
is "$(jq '[.[] | .state.D1.warehouses | select((has("A") and has("B") and has("C")) | not)] | length' <<<"$hist")" 0 \
	"history: no warehouse the files kept was ever missing"
unlike "$(cat "$T/stderr")" "$KEY" "the key never reaches the log"

done_testing
