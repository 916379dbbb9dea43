#!/bin/bash
# t035-daemon.sh: `stockgate poll --daemon` over a Maildir with poll_interval = 1: a message
# dropped in new/ is handled within seconds and moved to .Processed; a second poller exits 75
# (the lock); SIGHUP re-reads the configuration (the next report in English), a broken file is
# logged and the old configuration kept; SIGTERM finishes the message in hand and exits 0;
# `stockgate status` exits 0 with the counts after good polls, 69 after a failed one.
# SPEC 3 (poll, status), 4, 7.
. "$(dirname "$0")/../lib.sh"
MAIL=$FIX/poll/mail.py
KEY=0123456789abcdef0123456789abcdef
MD=$T/maildir
mkdir -p "$MD/new" "$MD/cur" "$MD/tmp" "$T/msg"

maildir_config() { # language [source lines]
	local lang=$1; shift
	{
		printf '[store]\npath = %s/stockgate.db\n\n' "$T"
		printf '[report]\nurl = dir:%s\nfrom = "Stock API" <api@stock.example>\nlanguage = %s\n\n' \
			"$OUTBOX" "$lang"
		printf '[source]\nurl = maildir:%s\npoll_interval = 1\n' "$MD"
		printf '%s\n' "$@"
	} >"$CONF.new"
	chmod 600 "$CONF.new"
	mv "$CONF.new" "$CONF"
}
# drop NAME KIND [options]: a message delivered into new/ the Maildir way (tmp/, then rename).
n_drop=0
drop() {
	local n=$1 k=$2; shift 2
	n_drop=$((n_drop + 1))
	$PY "$MAIL" make "$k" --id "$n@shop.example" "$@" >"$MD/tmp/$n"
	mv "$MD/tmp/$n" "$MD/new/$(date +%s).$$_$n_drop.test"
}
# wait_for SECONDS CMD…: until the command succeeds; 1 when the time ran out.
wait_for() {
	local i n=$(($1 * 10)); shift
	for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done
	return 1
}
records() { grep -c . "$T/d.out" 2>/dev/null || true; }
has_records() { [ "$(records)" -ge "$1" ]; }
in_log() { grep -q "$1" "$T/d.err"; }
report_lang() { # Message-ID → Content-Language of its report in the outbox
	grep -l "^In-Reply-To: <$1>" "$OUTBOX"/*.eml 2>/dev/null | head -1 |
		xargs -r grep -h '^Content-Language:' | tr -d '\r' | sed 's/^Content-Language: //'
}

mkdir -p "$OUTBOX"
maildir_config ru
check "dealer and user" setup_dealer D1 $KEY dealer@shop.example

sg_bg "$STOCKGATE" -c "$CONF" poll --daemon >"$T/d.out" 2>"$T/d.err"
DPID=$!
drop m1 warehouses --warehouses D4R7WE,0101
t0=$SECONDS
check "a dropped message is handled within 5 s" wait_for 5 has_records 1
echo "# handled after $((SECONDS - t0)) s"
r=$(sed -n 1p "$T/d.out")
is "$(jf "$r" .outcome)" applied "the message is applied"
like "$(jf "$r" .source)" "^maildir:[0-9]+\.[0-9_]+\.test$" "source is maildir:NAME"
is "$(ls "$MD/new" | wc -l)" 0 "new/ is empty"
check "the message is moved to .Processed" wait_for 2 test -n "$(ls "$MD/.Processed/new" "$MD/.Processed/cur" 2>/dev/null)"
is "$(report_lang m1@shop.example)" ru "the first report is in Russian"

# One poller per state db.
out=$(sg poll 2>"$T/second.err"); rc=$?
is "$rc" 75 "a second poll while the daemon runs exits 75"
is "$out" "" "the second poll handles nothing"
like "$(cat "$T/second.err")" "lock" "the second poll names the lock"

# A tmp cleaner removes the daemon's scratch directory between two messages: made again.
SCRATCH=${TMPDIR:-/tmp}/stockgate-$(id -u)/$DPID
check "the daemon has its scratch directory" test -d "$SCRATCH"
rm -rf "$SCRATCH"

# SIGHUP: the configuration is re-read.
maildir_config en
kill -HUP "$DPID"
check "SIGHUP: the configuration is re-read" wait_for 5 in_log "configuration re-read"
drop m2 remains --rows D4R7WE:A2:2
check "after SIGHUP (and its scratch directory removed) the next message is handled" \
	wait_for 5 has_records 2
is "$(report_lang m2@shop.example)" en "after SIGHUP the report is in English"

# SIGHUP with a broken file: logged, the old configuration kept, the daemon goes on.
printf '[source]\nurl = maildir:%s\npoll_interval = soon\nno_such_setting = 1\n' "$MD" >"$CONF"
chmod 600 "$CONF"
kill -HUP "$DPID"
check "SIGHUP with a broken file: logged" wait_for 5 in_log "keeping the old configuration"
like "$(grep 'keeping the old configuration' "$T/d.err")" "stockgate.conf" "the logged error names the file"
check "the daemon keeps running" kill -0 "$DPID"
drop m3 remains --rows D4R7WE:A3:3
check "with the old configuration the next message is handled" wait_for 5 has_records 3
is "$(report_lang m3@shop.example)" en "the old (re-read) configuration is kept: English"
maildir_config en

# status while the daemon runs, after good polls.
st=$(sg status 2>"$T/status.err"); rc=$?
is "$rc" 0 "status after good polls exits 0"
like "$st" "applied 3" "status shows the counts (applied 3)"
is "$(sg status --format json | jq -c '[.healthy, .messages.applied, .last_poll_outcome]')" \
	'[true,3,"ok"]' "status --format json: healthy, 3 applied, last poll ok"

# SIGTERM in the middle of a burst: the message in hand is finished (handled ⇒ moved), exit 0.
for i in $(seq 4 23); do drop "m$i" remains --rows "D4R7WE:A$i:$i"; done
wait_for 10 has_records 5
kill -TERM "$DPID"
t0=$SECONDS
wait "$DPID"; rc=$?
is "$rc" 0 "SIGTERM: the daemon exits 0"
check "SIGTERM: it exits promptly ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 5
n=$(records)
left=$(ls "$MD/new" "$MD/cur" | grep -c '\.test$')
is "$((n + left))" 23 "SIGTERM: every message handled and moved ($n), or untouched ($left)"
out=$(sg poll 2>"$T/err"); rc=$?
is "$rc" 0 "after the daemon: a poll exits 0"
is "$(printf '%s\n' "$out" | grep -c .)" "$left" "the poll handles the rest ($left)"
is "$(ls "$MD/new" "$MD/cur" | grep -c '\.test$')" 0 "the Maildir is empty"
is "$(ls "$MD/.Processed/new" "$MD/.Processed/cur" | grep -c '\.test$')" 23 "23 messages in .Processed"
is "$(cat "$T/d.out" <(printf '%s\n' "$out") | jq -r .outcome | sort | uniq -c | sed 's/^ *//')" \
	"23 applied" "each message applied once"
is "$(outbox_count)" 23 "one report per message"

# status after a failed poll: the mailbox unreachable.
port=$(free_port)
maildir_config en
sed -i "s,^url = maildir:.*,url = imap://127.0.0.1:$port/INBOX\nusername = u\npassword = p\ntls = off," "$CONF"
sg poll >"$T/out" 2>"$T/err"; rc=$?
is "$rc" 75 "poll with the mailbox unreachable exits 75"
st=$(sg status 2>"$T/status.err"); rc=$?
is "$rc" 69 "status after a failed poll exits 69"
like "$st" "failed" "status says the last poll failed"
is "$(sg status --format json 2>/dev/null | jq -c '[.healthy, .last_poll_outcome]')" '[false,"failed"]' \
	"status --format json: not healthy"

# A daemon whose mailbox is unreachable keeps running and trying; status says 69 meanwhile.
sg_bg "$STOCKGATE" -c "$CONF" poll --daemon >"$T/d2.out" 2>"$T/d2.err"
DPID=$!
sleep 2.5
check "the daemon keeps running with the mailbox unreachable" kill -0 "$DPID"
check "it tried more than once" test "$(grep -c 'poll: ' "$T/d2.err")" -ge 2
sg status >/dev/null 2>&1; rc=$?
is "$rc" 69 "status while it fails exits 69"
kill -TERM "$DPID"; wait "$DPID"; rc=$?
is "$rc" 0 "SIGTERM: exit 0"

done_testing
