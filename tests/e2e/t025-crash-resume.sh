#!/bin/bash
# t025-crash-resume.sh: SPEC 7's order of effects (apply + record → report → move) survives a
# crash at each point: nothing is applied twice, no report is lost, at most one is sent twice.
# (A report transport that is down is t031's: an SMTP server answering 4xx.)
. "$(dirname "$0")/../lib.sh"

write_config </dev/null
setup_dealer
WH=$SG_TOP/fixtures/demo/01-warehouses.eml
REM=$SG_TOP/fixtures/demo/03-remains.eml

# A crash right after the commit, before the report: the next run sends the report once.
SG_CRASH=after_apply sg process "$WH" >"$T/out1" 2>"$T/err1"
is "$?" "137" "crash after apply kills the process (SIGKILL)"
is "$(outbox_count)" "0" "no report yet after the crash"
is "$(sg warehouses list --dealer D1 --format csv | wc -l)" "3" "the warehouses were applied before the crash"
out=$(sg process "$WH")
is "$(jf "$out" .outcome)" "applied" "the rerun finishes the message: outcome applied"
is "$(jf "$out" .report)" "written" "the rerun writes the pending report"
is "$(jf "$out" .resumed)" "true" "the rerun's record says the message was resumed"
is "$(outbox_count)" "1" "exactly one report after the rerun"
out=$(sg process "$WH")
is "$(jf "$out" .outcome)/$(jf "$out" .resumed)" "duplicate/null" \
	"a third run does nothing again: duplicate (a file given again is not resumed)"
is "$(outbox_count)" "1" "and writes no other report"

# A crash after the report was written and before it was recorded: at most one duplicate.
write_config </dev/null
rm -f "$T/stockgate.db"*; rm -rf "$T/stockgate.db.spool" "$OUTBOX"; mkdir -p "$OUTBOX"
setup_dealer
SG_CRASH=after_report sg process "$WH" >/dev/null 2>&1
is "$(outbox_count)" "1" "crash after the report: it was written"
out=$(sg process "$WH")
is "$(jf "$out" .outcome)/$(jf "$out" .resumed)" "applied/true" "the rerun keeps the outcome, resumed"
n=$(outbox_count)
check "at most one report twice ($n)" test "$n" -le 2

# A copy of the same bytes under another name is a duplicate (nothing done again).
cp "$WH" "$T/copy.eml"
out=$(sg process "$T/copy.eml")
is "$(jf "$out" .outcome)" "duplicate" "the same bytes again under another name: duplicate"
is "$(outbox_count)" "$n" "no report for a duplicate"

done_testing
