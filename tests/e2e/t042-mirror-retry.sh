#!/bin/bash
# t042-mirror-retry.sh: `poll` spreads the tries of a message the mirror deferred
# ([source] retry_interval, doubling): an early poll leaves it untried and uncounted, a due one
# tries again; the tries run out only after the waits; `process` always tries at once.
. "$(dirname "$0")/../lib.sh"
. "$SG_TOP/fixtures/mirror/lib-mirror.sh"
KEY=0123456789abcdef0123456789abcdef

start_keaz --dealer "$KEY=D1" || { notok "emulator starts"; done_testing; exit 1; }
MAIL=$T/mail
mkdir -p "$MAIL/new" "$MAIL/cur" "$MAIL/tmp"
DEAD=http://127.0.0.1:$(free_port)
# conf MIRROR_BASE: the mailbox, the retry spacing, and the mirror at MIRROR_BASE.
conf() {
	write_config <<EOF
[source]
url = maildir:$MAIL
retry_interval = 1h
max_attempts = 3

[mirror]
url = $1/restapi
tls = off
timeout = 2
EOF
}
conf "$DEAD"
setup_dealer
db() { sqlite3 "$T/stockgate.db" "$1"; }
tries() { db "SELECT attempts FROM ledger WHERE message_id = '$1'"; }
# earlier HOURS: the message's last try moves back by HOURS, as if that long had passed.
earlier() { db "UPDATE ledger SET updated = updated - $1 * 3600"; }
poll() { OUT=$(sg poll 2>"$T/poll.err"); RC=$?; }

mkmsg "$MAIL/new/1.eml" warehouses 1 $'Адрес;Контакты;Код склада\nКурск;;A\n'
M1=mirror-1-warehouses@shop.example
poll
is "$RC" 75 "mirror down: poll exits 75"
is "$(jf "$OUT" '.outcome + " " + .reason')" "deferred mirror_unavailable" "deferred"
is "$(tries $M1)" 1 "one try"

conf "$API" # the mirror is back
n0=$(api_log | jq length)
poll
is "$RC" 75 "a poll before retry_interval: still deferred (exit 75)"
is "$(jf "$OUT" '.outcome + " " + .reason')" "deferred mirror_unavailable" "the record of the last try"
is "$(tries $M1)" 1 "not tried, not counted"
is "$(api_log | jq length)" "$n0" "the mirror was not called"
is "$(sg warehouses list --dealer D1 | wc -l)" 1 "nothing applied"

earlier 1
poll
is "$RC" 0 "an hour later the poll tries again: exit 0"
is "$(jf "$OUT" .outcome)" applied "applied"
is "$(server_wh | jq -c 'map(.code)')" '["A"]' "the mirror has the warehouse"
is "$(local_wh | jq -c 'map(.code)')" '["A"]' "and the store"

# The wait doubles: one hour after the second try is too early, two are enough, and the tries
# end (max_attempts = 3) only after those waits.
conf "$DEAD"
mkmsg "$MAIL/new/2.eml" warehouses 2 $'Адрес;Контакты;Код склада\nКурск;;A\nОрёл;;B\n'
M2=mirror-2-warehouses@shop.example
poll
is "$(tries $M2)" 1 "second message: one try"
earlier 1
poll
is "$(tries $M2)" 2 "an hour later: the second try"
earlier 1
poll
is "$(tries $M2)" 2 "an hour after the second try: not yet (two are due)"
is "$(jf "$OUT" .outcome)" deferred "still deferred"
earlier 1
poll
is "$(tries $M2)" 3 "two hours after it: the third try"
is "$(jf "$OUT" '.outcome + " " + .reason')" "failed mirror_unavailable" \
	"the third try was the last: failed"

# process is the operator's own command: it tries at once, whatever the spacing.
mkmsg "$T/3.eml" warehouses 3 $'Адрес;Контакты;Код склада\nКурск;;A\nТула;;C\n'
sg process "$T/3.eml" >/dev/null 2>&1
is "$(tries mirror-3-warehouses@shop.example)" 1 "process: one try"
sg process "$T/3.eml" >/dev/null 2>&1
is "$(tries mirror-3-warehouses@shop.example)" 2 "process again at once: tried again"

# retry_interval = 0: every poll tries (the behaviour before the spacing).
sed -i 's/^retry_interval = 1h/retry_interval = 0/' "$CONF"
mkmsg "$MAIL/new/4.eml" warehouses 4 $'Адрес;Контакты;Код склада\nКурск;;A\nКазань;;D\n'
poll
poll
is "$(tries mirror-4-warehouses@shop.example)" 2 "retry_interval = 0: two polls, two tries"
done_testing
