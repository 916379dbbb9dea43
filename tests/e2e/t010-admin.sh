#!/bin/bash
# t010-admin.sh: dealer, user, catalog, warehouses and remains commands, their output and exit codes.
. "$(dirname "$0")/../lib.sh"
A=$FIX/csv/admin
write_config </dev/null

# dealer add without a key: 32 hex digits printed once, stored only as SHA-256.
KEY=$(sg dealer add D1 --name "Dealer One" 2>/dev/null); rc=$?
is "$rc" 0 "dealer add exits 0"
like "$KEY" '^[0-9a-f]{32}$' "generated key is 32 hex digits"
is "$(sqlite3 "$T/stockgate.db" .dump | grep -c "$KEY")" 0 "the key is not in the db"
is "$(sqlite3 "$T/stockgate.db" .dump | grep -c "$(printf '%s' "$KEY" | sha256sum | cut -c1-64)")" 1 \
	"its SHA-256 is"
out=$(sg dealer add D1 --name again --key 0123456789abcdef0123456789abcdef 2>&1); rc=$?
is "$rc" 65 "adding an existing dealer exits 65"
out=$(sg dealer add D2 --name "Dealer Two" --key 0123456789abcdef0123456789abcdef 2>/dev/null)
is "$out" "" "a given key is not printed"
printf 'fedcba9876543210fedcba9876543210\n' >"$T/key"; chmod 600 "$T/key"
check "dealer add --key-file" sg dealer add D3 --name "Dealer Three" --key-file "$T/key"
is "$(sqlite3 "$T/stockgate.db" .dump | grep -c fedcba9876543210)" 0 "a key file's key is not stored"
is "$(sg dealer list | cut -f1 | tr '\n' ' ')" "D1 D2 D3 " "dealer list sorted by id"
out=$(sg dealer show D2)
like "$out" "name: Dealer Two" "dealer show names the dealer"
unlike "$out" "0123456789abcdef" "dealer show prints no key"
NEW=$(sg dealer rotate-key D2 2>/dev/null)
like "$NEW" '^[0-9a-f]{32}$' "rotate-key without --key prints a new key"
out=$(sg dealer rotate-key D2 --key 00112233445566778899aabbccddeeff 2>/dev/null)
is "$out" "" "rotate-key --key prints nothing"
check "dev-mode on" sg dealer dev-mode D2 on
like "$(sg dealer show D2)" "dev-mode: on" "dev-mode shown"
sg dealer dev-mode D2 maybe 2>/dev/null; is "$?" 64 "dev-mode maybe exits 64"
sg dealer show D9 2>/dev/null; is "$?" 66 "show of an unknown dealer exits 66"
err=$(sg dealer remove D9 2>&1); is "$?" 66 "remove of an unknown dealer exits 66"
like "$err" "D9.*dealer list" "the message names the dealer and what to do"
sg dealer frobnicate 2>/dev/null; is "$?" 64 "unknown dealer subcommand exits 64"
sg dealer add D4 2>/dev/null; is "$?" 64 "dealer add without --name exits 64"

# users
check "user add (default role)" sg user add Orders@Shop.example --dealer D1
check "user add with roles" sg user add vin@shop.example --dealer D1 --role batch_vin --role batch_price
out=$(sg user list)
like "$out" "orders@shop.example	D1	remains_upload" "address lower-cased, default role remains_upload"
like "$out" "vin@shop.example	D1	batch_vin,batch_price" "several roles"
err=$(sg user add x@shop.example --dealer D1 --role admin 2>&1); is "$?" 64 "unknown role exits 64"
like "$err" "remains_upload, batch_vin, batch_frame, batch_price, batch_rental" "and names the roles"
sg user add x@shop.example --dealer D9 2>/dev/null; is "$?" 66 "user of an unknown dealer exits 66"
sg user add not-an-address --dealer D1 2>/dev/null; is "$?" 64 "a bad address exits 64"
check "user add of another dealer" sg user add b@other.example --dealer D3
is "$(sg user list --dealer D3 | cut -f1)" "b@other.example" "user list --dealer"
check "user remove" sg user remove b@other.example
is "$(sg user list --dealer D3)" "" "removed"
sg user remove b@other.example 2>/dev/null; is "$?" 66 "removing an unknown user exits 66"

# catalogue
check "catalog load with a header" sg catalog load "$A/catalog.csv"
is "$(sg catalog list | tr '\n' ' ')" "00123 A-100 B-7 " "catalog list: the articles, leading zeros kept"
check "catalog load without a header" sg catalog load "$A/catalog-noheader.csv"
is "$(sg catalog list | tr '\n' ' ')" "00123 A-100 " "the first row is data; load replaces"
sg catalog load "$T/none.csv" 2>/dev/null; is "$?" 66 "catalog load of a missing file exits 66"
check "catalog clear" sg catalog clear
is "$(sg catalog list)" "" "empty after clear"

# warehouses and remains of a dealer
sg import warehouses --dealer D1 "$A/warehouses-cp1251.csv" >/dev/null 2>&1
sg import remains --dealer D1 "$A/remains-w1-cp1251.csv" >/dev/null 2>&1
is "$(sg warehouses list --dealer D1 | head -1)" "code,address,contacts" "warehouses CSV header"
is "$(sg warehouses list --dealer D1 --format json | jq -r '[.[].code]|join(" ")')" "W1 W2" \
	"warehouses JSON sorted by code"
is "$(sg warehouses list --dealer D2 --format json)" "[]" "a dealer without warehouses: []"
sg warehouses list --dealer D9 2>/dev/null; is "$?" 66 "warehouses of an unknown dealer exit 66"
sg warehouses list 2>/dev/null; is "$?" 64 "warehouses list without --dealer exits 64"
sg warehouses list --dealer D1 --format xml 2>/dev/null; is "$?" 64 "an unknown format exits 64"
is "$(sg remains export --dealer D1 --warehouse W2)" "warehouse,article,quantity" \
	"remains of an empty warehouse: the header only"
sg remains export --dealer D1 --warehouse W9 2>/dev/null; is "$?" 66 "unknown warehouse exits 66"
is "$(sg remains export --dealer D1 --format json | jq -r '.[0].quantity|type')" "number" \
	"quantity is a JSON number"

# the store is removed with its dealer
check "dealer remove" sg dealer remove D1
is "$(sg user list --dealer D1)" "" "its users are gone"

# a missing configuration
"$STOCKGATE" -c "$T/missing.conf" dealer list 2>/dev/null; is "$?" 78 "a missing config exits 78"
done_testing
