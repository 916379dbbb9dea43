#!/bin/bash
# t011-config.sh: bad configurations stop with exit 78 and the line at fault; help and version.
. "$(dirname "$0")/../lib.sh"

# cfg NAME MODE: writes $T/NAME.conf from stdin with that mode.
cfg() { cat >"$T/$1.conf"; chmod "$2" "$T/$1.conf"; }
# run NAME: stockgate status with that config; sets rc and err.
run() { err=$("$STOCKGATE" -c "$T/$1.conf" status 2>&1 >/dev/null); rc=$?; }

printf '[store]\npath = %s/db\n\n[source]\nurl = maildir:%s/mail\nfrobnicate = yes\n' "$T" "$T" |
	cfg unknown 600
run unknown
is "$rc" 78 "unknown key exits 78"
like "$err" "unknown\\.conf:6: \\[source\\] frobnicate: unknown setting" "message has file:line and key"

printf '[store]\npath = %s/db\n[limits]\nmax_message_size = lots\n' "$T" | cfg size 600
run size
is "$rc" 78 "bad size exits 78"
like "$err" "size\\.conf:4: \\[limits\\] max_message_size: 'lots' is not a size" "bad size: line 4"

printf '[store]\npath = %s/db\n[source]\nmax_defer = 3 weeks\n' "$T" | cfg dur 600
run dur
is "$rc" 78 "bad duration exits 78"
like "$err" "dur\\.conf:4: \\[source\\] max_defer" "bad duration: line 4"

printf '[store]\npath = %s/db\n[mirror]\nurl = http://127.0.0.1:1/restapi\n' "$T" | cfg http 600
run http
is "$rc" 78 "http:// mirror without tls = off exits 78"
like "$err" "http\\.conf:4: \\[mirror\\] url: .*tls = off" "and says to use https or tls = off"
printf '[store]\npath = %s/db\n[mirror]\nurl = http://127.0.0.1:1/restapi\ntls = off\n' "$T" |
	cfg httpoff 600
run httpoff
is "$rc" 0 "http:// mirror with tls = off is accepted"

printf '[store]\npath = %s/db\n[report]\nurl = dir:%s\npassword = hunter2\n' "$T" "$T" |
	cfg open 640
run open
is "$rc" 78 "a group-readable config with a password exits 78"
like "$err" "open\\.conf:5: .*chmod 600" "and says chmod 600"
unlike "$err" "hunter2" "without showing the secret"

printf 'hunter2\n' >"$T/pw"; chmod 644 "$T/pw"
printf '[store]\npath = %s/db\n[report]\nurl = dir:%s\npassword_file = %s/pw\n' "$T" "$T" "$T" |
	cfg pwfile 600
run pwfile
is "$rc" 78 "a password_file readable by others exits 78"
like "$err" "pwfile\\.conf:5: .*pw.*chmod 600" "and names the file"
unlike "$err" "hunter2" "without showing the secret"

printf '[store]\npath = %s/db\nnonsense line\n' "$T" | cfg syntax 600
run syntax
is "$rc" 78 "a syntax error exits 78"
like "$err" "syntax\\.conf:3:" "with its line"

"$STOCKGATE" -c "$T/none.conf" status >/dev/null 2>&1; is "$?" 78 "a missing config exits 78"
err=$(STOCKGATE_CONFIG="$T/env.conf" "$STOCKGATE" status 2>&1)
like "$err" "env\\.conf" "\$STOCKGATE_CONFIG is the default config"

# help and version need no configuration
out=$("$STOCKGATE" --version); is "$?" 0 "--version exits 0"
like "$out" '^stockgate [0-9]+\.[0-9]+' "--version prints the version"
out=$("$STOCKGATE" --help); is "$?" 0 "--help exits 0"
like "$out" "COMMAND" "--help prints the usage"
for c in poll process check import dealer user catalog warehouses remains batch status mirror; do
	out=$(STOCKGATE_CONFIG=$T/none.conf "$STOCKGATE" "$c" --help 2>&1); rc=$?
	is "$rc" 0 "$c --help exits 0 without a config"
done
"$STOCKGATE" frobnicate 2>/dev/null; is "$?" 64 "an unknown command exits 64"
"$STOCKGATE" 2>/dev/null; is "$?" 64 "no command exits 64"
"$STOCKGATE" --log-format xml status 2>/dev/null; is "$?" 64 "a bad --log-format exits 64"
err=$("$STOCKGATE" --log-format json -c "$T/none.conf" status 2>&1)
is "$(jf "$err" .level)" "error" "--log-format json logs JSON lines"
done_testing
