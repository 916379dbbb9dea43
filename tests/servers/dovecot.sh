#!/bin/bash
# dovecot.sh: runs a private Dovecot for the scenarios, on 127.0.0.1, as the current user.
# Usage: dovecot.sh DIR [--cert NAME] [--certs CERTDIR] [--no-move] [--no-tls] [--oauth2 URL [--oauth2-mechs LIST]]
#   DIR       everything lives here: dovecot.conf, passwd, the Maildir (DIR/mail/u), logs
#   --cert    which certificate of CERTDIR to serve (good, wronghost, expired, unknown; default good)
#   --certs   where mkcerts.sh wrote them (default: made in DIR/certs)
#   --no-move drop MOVE from the capabilities (the COPY + STORE + EXPUNGE path)
#   --no-tls  no TLS at all: no STARTTLS on imap, no imaps listener
#   --oauth2  also offer XOAUTH2 and OAUTHBEARER, checked by an oauth2 passdb that POSTs the token
#             to the introspection endpoint URL (tests/servers/oauth2_introspect.py); PLAIN and
#             LOGIN still take u:p
#   --oauth2-mechs  which of those to offer (default "xoauth2 oauthbearer", as Gmail; Outlook.com
#             offers "xoauth2" only)
# Prints "IMAP_PORT IMAPS_PORT" on one line, writes DIR/ports, then becomes `dovecot -F`
# (kill the pid to stop it). One user: u, password p. Inject mail with
#   doveadm -c DIR/dovecot.conf save -u u -m INBOX <msg
set -eu
here=$(cd "$(dirname "$0")" && pwd)
d=${1:?usage: dovecot.sh DIR [--cert NAME] [--certs DIR] [--no-move] [--no-tls] [--oauth2 URL [--oauth2-mechs LIST]]}
shift
cert=good certs= nomove= notls= oauth2= oauth2_mechs="xoauth2 oauthbearer"
while [ $# -gt 0 ]; do
	case $1 in
	--cert) cert=$2; shift ;;
	--certs) certs=$2; shift ;;
	--no-move) nomove=1 ;;
	--no-tls) notls=1 ;;
	--oauth2) oauth2=$2; shift ;;
	--oauth2-mechs) oauth2_mechs=$2; shift ;;
	*) echo "dovecot.sh: unknown option $1" >&2; exit 64 ;;
	esac
	shift
done
mkdir -p "$d"
d=$(cd "$d" && pwd)
mkdir -p "$d/run" "$d/state" "$d/mail"
if [ -z "$certs" ]; then
	certs=$d/certs
	[ -f "$certs/ca.pem" ] || "$here/mkcerts.sh" "$certs"
fi
certs=$(cd "$certs" && pwd)

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
p1=$(free_port)
p2=$(free_port)
while [ "$p2" = "$p1" ]; do p2=$(free_port); done

uid=$(id -u) gid=$(id -g) user=$(id -un) group=$(id -gn)
if [ "$uid" = 0 ]; then
	# Dovecot refuses mail access as root: the mail belongs to the dovecot user, and the
	# directories above DIR must let it through.
	login_user=dovenull internal_user=dovecot
	uid=$(id -u dovecot) gid=$(id -g dovecot) group=$(id -gn dovecot)
	chown -R "$uid:$gid" "$d/mail"
	p=$d
	while [ "$p" != / ]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
else
	login_user=$user internal_user=$user
fi
echo "u:{PLAIN}p:::::" >"$d/passwd"
if [ -n "$oauth2" ]; then
	cat >"$d/oauth2.conf.ext" <<OAUTH2
introspection_mode = post
introspection_url = $oauth2
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
OAUTH2
fi
# With --oauth2 each passdb serves only its own mechanisms, so a bearer token is never taken for
# the password.
mechs= oauth2_passdb= passwd_mechs=
if [ -n "$oauth2" ]; then
	mechs=" $oauth2_mechs"
	oauth2_passdb="passdb {
  driver = oauth2
  mechanisms = $oauth2_mechs
  args = $d/oauth2.conf.ext
}
"
	passwd_mechs="
  mechanisms = plain login"
fi

caps="IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY"

{
	cat <<CONF
# A private Dovecot for stockgate's tests (written by tests/servers/dovecot.sh).
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
info_log_path = $d/dovecot.log
protocols = imap
listen = 127.0.0.1
default_login_user = $login_user
default_internal_user = $internal_user
default_internal_group = $group
first_valid_uid = $uid
first_valid_gid = $gid
mail_location = maildir:$d/mail/u
mail_uid = $uid
mail_gid = $gid
auth_mechanisms = plain login$mechs
disable_plaintext_auth = no
${oauth2_passdb}passdb {
  driver = passwd-file
  args = scheme=PLAIN $d/passwd$passwd_mechs
}
userdb {
  default_fields = home=$d/mail/u
  driver = passwd-file
  args = $d/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $p1
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $([ -n "$notls" ] && echo 0 || echo "$p2")
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
namespace inbox {
  inbox = yes
  separator = /
}
CONF
	if [ -n "$notls" ]; then
		echo "ssl = no"
	else
		echo "ssl = yes"
		echo "ssl_cert = <$certs/$cert.pem"
		echo "ssl_key = <$certs/$cert.key"
	fi
	if [ -n "$nomove" ]; then
		echo "protocol imap {"
		echo "  imap_capability = $caps"
		echo "}"
	fi
} >"$d/dovecot.conf"
[ -n "$notls" ] && p2=0
echo "$p1 $p2" >"$d/ports"
echo "$p1 $p2"
exec /usr/sbin/dovecot -F -c "$d/dovecot.conf"
