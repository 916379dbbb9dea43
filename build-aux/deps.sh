#!/bin/sh
# deps.sh: checks for, or installs, the Debian packages stockgate needs to build and test.
#   deps.sh check    exit 0 when everything is present
#   deps.sh install  apt-get update, then install what is missing (as root, or through sudo)
#   deps.sh list     the packages, one a line
set -eu
PKGS="build-essential pkg-config libgmime-3.0-dev libglib2.0-dev libcurl4-openssl-dev
libsqlite3-dev libcjson-dev libxml2-dev libcsv-dev clang libclang-rt-14-dev mandoc
dovecot-imapd dovecot-core python3 python3-aiosmtpd openssl sqlite3 jq curl ca-certificates
libmicrohttpd-dev isync debhelper lintian fakeroot dpkg-dev prometheus procps strace systemd bc"

missing() {
	for p in $PKGS; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
	done
}

case "${1:-check}" in
list) printf '%s\n' $PKGS ;;
check)
	m=$(missing)
	[ -z "$m" ] && exit 0
	echo "deps: missing packages:" $m >&2
	exit 1 ;;
install)
	m=$(missing)
	[ -z "$m" ] && { echo "deps: all packages present"; exit 0; }
	SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "deps: installing" $m
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# The package scripts must not start system services (dovecot): tests start their own.
	$SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends $m
	;;
*) echo "usage: deps.sh check|install|list" >&2; exit 64 ;;
esac
