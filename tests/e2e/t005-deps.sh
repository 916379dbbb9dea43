#!/bin/bash
# t005-deps.sh: every tool outside Debian's essential set that the suite, `make check-deb`, `make
# bench` or .ci/run calls comes from a package that build-aux/deps.sh installs, so that `make check`
# on a fresh Debian 12 machine installs what it needs (a tool that happens to be on this machine is
# not enough). Each tool listed must still be called somewhere; add one when a test starts calling it.
. "$(dirname "$0")/../lib.sh"
TOOLS="strace promtool doveadm dovecot jq curl sqlite3 mbsync lintian systemd-analyze openssl
dpkg-buildpackage dh mandoc clang ps pkg-config cc bc"
pkgs=" $("$SG_TOP/build-aux/deps.sh" list | tr '\n' ' ') "
for t in $TOOLS; do
	grep -rqw --exclude=t005-deps.sh --exclude=deps.sh -- "$t" "$SG_TOP/tests" "$SG_TOP/Makefile" \
		"$SG_TOP/.ci" "$SG_TOP/build-aux" "$SG_TOP/bench" "$SG_TOP/debian" ||
		{ notok "$t: called nowhere any more (drop it from this list)"; continue; }
	p=$(command -v "$t") || { notok "$t is not installed"; continue; }
	owner=$(dpkg -S "$p" 2>/dev/null || dpkg -S "${p#/usr}" 2>/dev/null || dpkg -S "$(readlink -f "$p")" 2>/dev/null) || { notok "$t ($p): no package owns it"; continue; }
	owner=${owner%%:*}
	# /usr/bin/ps is dpkg's /bin/ps (merged /usr). cc and its kin come in through build-essential; clang's name is the clang package's.
	case $owner in gcc|gcc-12|cpp|cpp-12) owner=build-essential ;; pkgconf) owner=pkg-config ;; esac
	[[ $pkgs == *" $owner "* ]] && ok "$t ($owner) is installed by deps.sh" ||
		notok "$t comes from $owner, which build-aux/deps.sh does not install"
done
done_testing
