#!/bin/bash
# t060-install.sh: `make install` substitutes PREFIX into the systemd units it installs (every
# etc/*.service and *.timer), and systemd-analyze verify accepts each installed unit.
. "$(dirname "$0")/../lib.sh"
P=$T/prefix
make -s -C "$SG_TOP" install BUILD="$(basename "${SG_BUILD:-build}")" PREFIX="$P" \
	SYSCONFDIR="$T/etc" UNITDIR="$T/units" >"$T/make.log" 2>&1
is "$?" 0 "make install PREFIX=$P"
check "the binary is installed and runs" "$P/bin/stockgate" --version
check "stockgate(1) and stockgate.conf(5)" test -f "$P/share/man/man1/stockgate.1" -a -f "$P/share/man/man5/stockgate.conf.5"
is "$(stat -c %a "$P/share/doc/stockgate/examples/stockgate.conf")" 644 "the example configuration, under doc/examples"

n=0
for u in "$SG_TOP"/etc/*.service "$SG_TOP"/etc/*.timer; do
	b=$(basename "$u")
	check "$b installed" test -f "$T/units/$b"
	grep -q '/usr/local/bin' "$T/units/$b" && notok "$b still names /usr/local/bin" || ok "$b: no /usr/local/bin left"
	if grep -q '^ExecStart=' "$u"; then
		like "$(grep '^ExecStart=' "$T/units/$b")" "^ExecStart=$P/bin/stockgate " "$b: ExecStart is $P/bin/stockgate"
	fi
	n=$((n + 1))
done
check "at least the service and the timer" test "$n" -ge 2
# verify loads every unit with its neighbours (the timer's service) and checks each command exists.
out=$(cd "$T/units" && systemd-analyze verify --man=no ./*.service ./*.timer 2>&1); rc=$?
is "$rc" 0 "systemd-analyze verify accepts every installed unit"
[ -n "$out" ] && printf '#   %s\n' "$out"
done_testing
