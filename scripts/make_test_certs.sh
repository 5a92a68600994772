#!/bin/sh
# Regenerates the self-signed certificates used by the tests (tests/testdata/tls) and the dummy
# certificate shipped in conf/ for local trials. ECDSA P-256: the handshake is about twice as cheap
# as RSA-2048 in Deno's SNI resolver path (architecture note §7). NOT FOR PRODUCTION.
set -eu
root=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
make_pair() { # dir name subject days san
  # CA:FALSE: rustls (Deno) refuses a certificate marked as a CA when it is used by a server.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1/$2.key" -out "$1/$2.pem" -days "$4" -subj "$3" -addext "subjectAltName=$5" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" 2>/dev/null
}
tls="$root/tests/testdata/tls"
mkdir -p "$tls"
# A private test CA, so tests can verify certificates properly instead of turning verification off.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tls/ca.key" \
  -out "$tls/ca.pem" -days 7300 -subj "/CN=groom test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
issue() { # name san
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tls/$1.key" \
    -out "$tls/$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$2" > "$tls/$1.ext"
  openssl x509 -req -in "$tls/$1.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -out "$tls/$1.pem" -days 7300 -extfile "$tls/$1.ext" 2>/dev/null
  rm -f "$tls/$1.csr" "$tls/$1.ext"
}
issue localhost "DNS:localhost,DNS:*.localhost,IP:127.0.0.1,IP:::1"
issue other.localhost "DNS:other.localhost,DNS:*.other.localhost"
rm -f "$tls/ca.srl"
# Dummy certificate for conf/ (self-signed, localhost only): lets `groom conf/server.conf` start.
make_pair "$root/conf" dummy "/CN=localhost (groom dummy certificate - not for production)" 3650 \
  "DNS:localhost,DNS:*.localhost,IP:127.0.0.1,IP:::1"
