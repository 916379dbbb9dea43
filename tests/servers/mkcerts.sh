#!/bin/bash
# mkcerts.sh: makes the TLS test material for the scenarios: a test CA and server certificates.
# Usage: mkcerts.sh DIR. Writes into DIR:
#   ca.pem                    the test CA (give it to stockgate as ca_file)
#   good.pem, good.key        127.0.0.1 and localhost, signed by the test CA
#   wronghost.pem/.key        signed by the test CA, for wrong.example only
#   expired.pem/.key          127.0.0.1 and localhost, signed by the test CA, expired in 2020
#   unknown.pem/.key          127.0.0.1 and localhost, signed by another CA nobody trusts
# Each NAME.pem holds the certificate; NAME.key the key (no passphrase).
set -eu
d=${1:?usage: mkcerts.sh DIR}
mkdir -p "$d"
cd "$d"
q() { "$@" >/dev/null 2>&1 || { echo "mkcerts: failed: $*" >&2; exit 1; }; }

mkca() { # name
	q openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -days 3650 \
		-subj "/CN=stockgate test $1" -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign
}

# A minimal `openssl ca` set-up, so that certificates can carry any validity period.
mkca_db() { # ca-name
	mkdir -p "db-$1"
	: >"db-$1/index.txt"
	echo 1000 >"db-$1/serial"
	cat >"db-$1/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = db-$1
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $1.pem
private_key = $1.key
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
[ext]
basicConstraints = CA:FALSE
keyUsage = digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
CNF
}

leaf() { # name ca san start end
	q openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" \
		-subj "/CN=$1" -addext "subjectAltName=$3"
	q openssl ca -batch -config "db-$2/ca.cnf" -extensions ext -in "$1.csr" -out "$1.pem" \
		-startdate "$4" -enddate "$5" -notext
	rm -f "$1.csr"
}

mkca ca
mkca otherca
mkca_db ca
mkca_db otherca
now=20200101000000Z
later=20991231000000Z
leaf good ca "IP:127.0.0.1,DNS:localhost" $now $later
leaf wronghost ca "DNS:wrong.example" $now $later
leaf expired ca "IP:127.0.0.1,DNS:localhost" 20190101000000Z 20200101000000Z
leaf unknown otherca "IP:127.0.0.1,DNS:localhost" $now $later
chmod 600 ./*.key
