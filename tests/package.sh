#!/bin/bash
# package.sh: checks the Debian package (`make check-deb`, as root on a disposable machine):
# its contents and control data, lintian, then dpkg -i: the user, the directories and their
# modes, the units (systemd-analyze verify), the conffile kept across a reinstall, and purge.
# Usage: tests/package.sh build/stockgate_VERSION_amd64.deb
. "$(dirname "$0")/lib.sh"
DEB=${1:?usage: package.sh DEB}
VERSION=$(cat "$SG_TOP/VERSION")
[ "$(id -u)" -eq 0 ] || { echo "package.sh: run as root (dpkg -i)" >&2; exit 77; }
[ "$(basename "$DEB")" = "stockgate_${VERSION}_amd64.deb" ] && ok "named stockgate_${VERSION}_amd64.deb" ||
	notok "named $(basename "$DEB"), not stockgate_${VERSION}_amd64.deb"

# Contents and control data.
dpkg-deb -c "$DEB" | awk '{print $1, $2, $6}' >"$T/contents"
has() { grep -q -- " \./$1\$" "$T/contents"; }
for f in usr/bin/stockgate usr/share/man/man1/stockgate.1.gz usr/share/man/man5/stockgate.conf.5.gz \
	usr/share/doc/stockgate/examples/stockgate.conf usr/share/doc/stockgate/copyright \
	usr/lib/sysusers.d/stockgate.conf usr/lib/tmpfiles.d/stockgate.conf etc/stockgate/stockgate.conf; do
	check "the package holds /$f" has "$f"
done
units=$(cd "$SG_TOP/etc" && ls ./*.service ./*.timer | sed 's|^\./||')
for u in $units; do check "the package holds the unit $u" has "lib/systemd/system/$u"; done
like "$(grep ' \./etc/stockgate/stockgate.conf$' "$T/contents")" '^-rw-r----- root/root' "the configuration ships mode 640"
is "$(dpkg-deb -f "$DEB" Version)" "$VERSION" "Version is the VERSION file's"
like "$(dpkg-deb -f "$DEB" Depends)" 'libgmime-3.0' "Depends names the shared libraries"
dpkg-deb -I "$DEB" conffiles >"$T/conffiles"
is "$(cat "$T/conffiles")" "/etc/stockgate/stockgate.conf" "the configuration is a conffile"

# lintian: no error and no warning (overrides carry their reason in debian/).
changes=${DEB%.deb}.changes
[ -f "$changes" ] || changes=$DEB
lintian "$changes" >"$T/lintian" 2>&1
is "$(grep -c '^[EW]:' "$T/lintian")" 0 "lintian: no error, no warning"
grep '^[EW]:' "$T/lintian" | sed 's/^/#   /'

# quiet LOG CMD…: runs CMD with its output in LOG (so that check's own line is not redirected).
quiet() { local log=$1; shift; "$@" >"$log" 2>&1; }

# Install.
dpkg --purge stockgate >/dev/null 2>&1
check "dpkg -i" quiet "$T/dpkg.log" dpkg -i "$DEB" || sed 's/^/#   /' "$T/dpkg.log"
check "the stockgate user exists" quiet /dev/null getent passwd stockgate
uid=$(getent passwd stockgate | cut -d: -f3)
check "stockgate is a system user (uid $uid)" test "${uid:-1000}" -lt 1000
like "$(getent passwd stockgate | cut -d: -f7)" 'nologin$' "stockgate has no login shell"
is "$(stat -c '%a %U %G' /var/lib/stockgate)" "700 stockgate stockgate" "/var/lib/stockgate: 700 stockgate"
is "$(stat -c '%a %U %G' /var/spool/stockgate)" "700 stockgate stockgate" "/var/spool/stockgate: 700 stockgate"
is "$(stat -c '%a %U %G' /etc/stockgate)" "750 root stockgate" "/etc/stockgate: 750 root:stockgate"
is "$(stat -c '%a %U %G' /etc/stockgate/stockgate.conf)" "640 root stockgate" "the configuration: 640 root:stockgate"
is "$(/usr/bin/stockgate --version)" "stockgate $VERSION" "/usr/bin/stockgate runs"
for u in $units; do
	like "$(grep '^ExecStart=' "/lib/systemd/system/$u" || echo none)" '^(ExecStart=/usr/bin/stockgate |none$)' "$u starts /usr/bin/stockgate"
done
out=$(cd /lib/systemd/system && systemd-analyze verify --man=no $units 2>&1); rc=$?
is "$rc" 0 "systemd-analyze verify accepts every installed unit"
[ -n "$out" ] && printf '#   %s\n' "$out"
# The shipped configuration names secret files the operator has not made yet: config check says so.
/usr/bin/stockgate -c /etc/stockgate/stockgate.conf config check >"$T/cc.out" 2>"$T/cc.err"; rc=$?
is "$rc" 78 "config check of the untouched configuration: 78"
like "$(cat "$T/cc.err")" 'password_file' "… naming the missing password file"

# The operator's edit survives a reinstall (a conffile is never overwritten).
echo "# edited by the operator" >>/etc/stockgate/stockgate.conf
check "dpkg -i again" quiet "$T/dpkg2.log" dpkg -i "$DEB"
is "$(tail -1 /etc/stockgate/stockgate.conf)" "# edited by the operator" "the edited configuration is kept"

check "dpkg --purge" quiet "$T/purge.log" dpkg --purge stockgate
check "purge removes the binary" test ! -e /usr/bin/stockgate
check "purge removes the state and the spool" test ! -e /var/lib/stockgate -a ! -e /var/spool/stockgate
check "purge removes the configuration" test ! -e /etc/stockgate/stockgate.conf
done_testing; rc=$?
# The closing line CI reads, as tests/run.sh ends make check.
echo "package: $((_n - _failed)) passed, $_failed failed"
exit $rc
