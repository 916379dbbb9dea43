#!/bin/bash
# demo.sh: `make demo`: the main job on the embedded defaults (a store and a dir: outbox in a
# scratch directory): a dealer mails its warehouses and remains, stockgate applies them and
# writes the reports.
set -eu
cd "$(dirname "$0")/.."
SG=$PWD/${BUILD:-build}/stockgate
D=$PWD/${BUILD:-build}/demo
rm -rf "$D"; mkdir -p "$D/outbox"; chmod 700 "$D"
cat >"$D/stockgate.conf" <<CONF
[store]
path = $D/stockgate.db

[report]
url = dir:$D/outbox
from = "Stock API" <api@stock.example>
language = en
CONF
chmod 600 "$D/stockgate.conf"
sg() { "$SG" -c "$D/stockgate.conf" "$@"; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "register dealer D1 and its user"
echo "\$ stockgate dealer add D1 --name 'Shop' --key …; stockgate user add dealer@shop.example --dealer D1"
sg dealer add D1 --name "Shop" --key 0123456789abcdef0123456789abcdef >/dev/null
sg user add dealer@shop.example --dealer D1
for m in fixtures/demo/*.eml; do
	step "stockgate process $m"
	sg process "$m" | jq -c . || true
done
step "stockgate warehouses list --dealer D1"
sg warehouses list --dealer D1
step "stockgate remains export --dealer D1"
sg remains export --dealer D1
step "the report written for the rejected file ($(ls "$D/outbox" | head -n 2 | tail -n 1))"
/usr/bin/python3 - "$D/outbox" <<'PY'
import email, email.policy, os, sys
d = sys.argv[1]
f = sorted(os.listdir(d))[1]
m = email.message_from_binary_file(open(os.path.join(d, f), 'rb'), policy=email.policy.default)
for h in ('From', 'To', 'Subject', 'In-Reply-To', 'Auto-Submitted'):
    print(f'{h}: {m[h]}')
print()
print(m.get_body(('plain',)).get_content())
PY
echo
echo "Everything is in $D (config, store, outbox)."
