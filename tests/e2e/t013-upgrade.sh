#!/bin/bash
# t013-upgrade.sh: a state db written by an older stockgate (schema 1, remains a row each) is
# migrated on open: remains become lists, nothing is lost, and the next file diffs against them.
. "$(dirname "$0")/../lib.sh"
write_config </dev/null
sqlite3 "$T/stockgate.db" <"$FIX/state/v1.sql" || { notok "the schema 1 fixture loads"; done_testing; exit; }

is "$(sg remains export --dealer D1)" "warehouse,article,quantity
W1,\"A,1\",0
W1,A-1,3
W1,B-2,5
Склад2,A-1,999999999
Склад2,Ж-9,7" "D1's remains survive the upgrade, sorted"
is "$(sg remains export --dealer D2 --format json | jq -c .)" \
	'[{"warehouse":"X1","article":"Q","quantity":1}]' "D2's remains survive the upgrade"
check "schema version 4 or later" [ "$(sqlite3 "$T/stockgate.db" "PRAGMA user_version")" -ge 4 ]
is "$(sqlite3 "$T/stockgate.db" "SELECT count(*) FROM sqlite_master WHERE name = 'deliveries'")" 1 \
	"the deliveries table of serve exists"
is "$(sqlite3 "$T/stockgate.db" "SELECT count(*) FROM pragma_table_info('journal') WHERE name = 'reserved'")" 1 \
	"the journal gained its reserved column"
is "$(sqlite3 "$T/stockgate.db" "SELECT count(*) FROM sqlite_master WHERE name = 'report_spool'")" 1 \
	"the report spool table exists"
is "$(sqlite3 "$T/stockgate.db" "SELECT count(*) FROM sqlite_master WHERE name = 'remains_v1'")" 0 \
	"the old table is gone"
is "$(sqlite3 "$T/stockgate.db" "SELECT CAST(lines AS TEXT) FROM remains WHERE warehouse = 'X1'")" \
	"$(printf 'Q\t1')" "a list reads as text"
is "$(sg warehouses list --dealer D1 | wc -l)" 4 "the warehouses are untouched"

# The next file for W1 is diffed against the migrated list.
printf 'code;article;quantity\nW1;A-1;3\nW1;B-2;6\nW1;C-3;1\n' >"$T/w1.csv"
json=$(sg import remains --dealer D1 "$T/w1.csv" 2>/dev/null); rc=$?
is "$rc" 0 "a remains file after the upgrade applies"
is "$(jf "$json" '[.added, .updated, .deleted, .unchanged]|map(tostring)|join(" ")')" "1 1 1 1" \
	"added C-3, updated B-2, deleted A,1, unchanged A-1"
is "$(sg remains export --dealer D1 --warehouse W1)" "warehouse,article,quantity
W1,A-1,3
W1,B-2,6
W1,C-3,1" "W1 holds the new file"
is "$(sg remains export --dealer D1 --warehouse Склад2 | wc -l)" 3 "Склад2 is untouched"

# Deleting a dealer still takes its lists (ON DELETE CASCADE through warehouses).
sg dealer remove D2 >/dev/null 2>&1
is "$(sqlite3 "$T/stockgate.db" "SELECT count(*) FROM remains WHERE dealer = 'D2'")" 0 \
	"removing a dealer removes its lists"

# Opening again does not migrate twice.
is "$(sg remains export --dealer D1 | wc -l)" 6 "a second open changes nothing"
done_testing
