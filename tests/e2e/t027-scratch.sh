#!/bin/bash
# t027-scratch: what a killed run leaves in its scratch directory (standard input, a fetched or
# parsed message) is removed by the next run, and a live run's is never touched.
. "$(dirname "$0")/../lib.sh"

export TMPDIR=$T/tmp
mkdir -p "$TMPDIR"
BASE=$TMPDIR/stockgate-$(id -u)
write_config </dev/null
setup_dealer

# A run killed after its commit leaves the message it read from standard input behind.
SG_CRASH=after_apply sg process - <"$SG_TOP/fixtures/demo/01-warehouses.eml" >/dev/null 2>&1
is "$?" 137 "the run is killed at after_apply"
left=$(find "$BASE" -mindepth 2 -type f 2>/dev/null | wc -l)
check "… leaving its copy of standard input in the scratch directory ($left files)" [ "$left" -ge 1 ]
dead=$(ls "$BASE")

# A live process's directory, with a file in it, must survive the sweep.
sleep 300 & live=$!
mkdir -p "$BASE/$live" && echo keep >"$BASE/$live/x"

sg process "$SG_TOP/fixtures/demo/03-remains.eml" >/dev/null 2>&1
is "$?" 0 "the next run works"
check "the killed run's directory is gone" [ ! -e "$BASE/$dead" ]
is "$(cat "$BASE/$live/x" 2>/dev/null)" keep "a live process's directory is left alone"
kill $live 2>/dev/null; wait $live 2>/dev/null
sg process "$SG_TOP/fixtures/demo/03-remains.eml" >/dev/null 2>&1
check "… and swept once that process is gone" [ ! -e "$BASE/$live" ]
is "$(find "$BASE" -mindepth 1 | wc -l)" 0 "a run that ends leaves nothing behind"

# A scratch parent that another user could have planted is refused, not used.
rm -rf "$BASE"; mkdir -m 777 "$BASE"
sg process - <"$SG_TOP/fixtures/demo/03-remains.eml" >/dev/null 2>"$T/err"
check "a scratch directory open to others is refused" [ "$?" -ne 0 ]
like "$(cat "$T/err")" "not a private directory" "… naming why"
done_testing
