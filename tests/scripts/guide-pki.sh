#!/bin/sh
# Makes a PKI with the openssl CLI the way the common mTLS guides do, into DIR:
#
#   ca.key ca.crt                 root CA (RSA 2048, `req -x509` with v3_ca)
#   server.key server.csr server.ext server.crt server.pem
#                                 server for localhost / 127.0.0.1, signed with
#                                 `x509 -req -CAcreateserial`; server.pem = crt + key
#   alice.key alice.csr client.ext alice.crt
#                                 a client (CN=alice), signed the same way
#   openssl.cnf index.txt serial crlnumber newcerts/
#                                 a minimal `openssl ca` database
#   bob.key bob.csr bob.crt       a client (CN=bob) signed by `openssl ca`, then revoked
#   crl.pem                       `openssl ca -gencrl`: the CRL that revokes bob
#
# Usage: guide-pki.sh DIR     (DIR is created; existing files are overwritten)
set -eu

dir=${1:?usage: guide-pki.sh DIR}
mkdir -p "$dir"
cd "$dir"
# Keep openssl quiet and independent of the user's configuration.
OPENSSL_CONF=/dev/null
export OPENSSL_CONF

# --- the `openssl ca` configuration (also holds the v3_ca section) ---
cat > openssl.cnf <<'CNF'
[ ca ]
default_ca = guide_ca

[ guide_ca ]
dir              = .
database         = $dir/index.txt
serial           = $dir/serial
crlnumber        = $dir/crlnumber
new_certs_dir    = $dir/newcerts
certificate      = $dir/ca.crt
private_key      = $dir/ca.key
default_md       = sha256
default_days     = 825
default_crl_days = 30
policy           = policy_loose
unique_subject   = no
copy_extensions  = none
x509_extensions  = client_cert
crl_extensions   = crl_ext

[ policy_loose ]
countryName            = optional
stateOrProvinceName    = optional
localityName           = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied
emailAddress           = optional

[ req ]
distinguished_name = req_dn
prompt             = no

[ req_dn ]
CN = unused

[ v3_ca ]
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints       = critical, CA:true
keyUsage               = critical, digitalSignature, cRLSign, keyCertSign

[ client_cert ]
basicConstraints       = CA:FALSE
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid,issuer
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = clientAuth

[ crl_ext ]
authorityKeyIdentifier = keyid:always
CNF

# --- root CA ---
openssl genrsa -out ca.key 2048 2>/dev/null
openssl req -x509 -new -nodes -key ca.key -sha256 -days 3650 \
  -subj "/C=US/O=Guide Example/CN=Guide Example Root CA" \
  -config openssl.cnf -extensions v3_ca -out ca.crt

# --- server: CSR, then signed with `openssl x509 -req` and an extfile ---
openssl genrsa -out server.key 2048 2>/dev/null
openssl req -new -key server.key -subj "/C=US/O=Guide Example/CN=localhost" \
  -config openssl.cnf -out server.csr
cat > server.ext <<'EXT'
authorityKeyIdentifier = keyid,issuer
basicConstraints       = CA:FALSE
keyUsage               = digitalSignature, nonRepudiation, keyEncipherment, dataEncipherment
extendedKeyUsage       = serverAuth
subjectAltName         = @alt_names

[ alt_names ]
DNS.1 = localhost
IP.1  = 127.0.0.1
EXT
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -out server.crt -days 825 -sha256 -extfile server.ext 2>/dev/null
cat server.crt server.key > server.pem

# --- client alice, signed the same way ---
# `-traditional` writes the PKCS#1 `RSA PRIVATE KEY` that OpenSSL 1.x's genrsa wrote,
# which most guides on the web show.
openssl genrsa -traditional -out alice.key 2048 2>/dev/null
openssl req -new -key alice.key -subj "/C=US/O=Guide Example/OU=clients/CN=alice" \
  -config openssl.cnf -out alice.csr
cat > client.ext <<'EXT'
authorityKeyIdentifier = keyid,issuer
basicConstraints       = CA:FALSE
keyUsage               = digitalSignature, keyEncipherment
extendedKeyUsage       = clientAuth
EXT
openssl x509 -req -in alice.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -out alice.crt -days 825 -sha256 -extfile client.ext 2>/dev/null

# --- client bob, signed by `openssl ca`, revoked, and the CRL ---
mkdir -p newcerts
: > index.txt
echo 1000 > serial
echo 1000 > crlnumber
openssl genrsa -out bob.key 2048 2>/dev/null
openssl req -new -key bob.key -subj "/C=US/O=Guide Example/OU=clients/CN=bob" \
  -config openssl.cnf -out bob.csr
openssl ca -batch -config openssl.cnf -notext -in bob.csr -out bob.crt 2>/dev/null
openssl ca -config openssl.cnf -revoke bob.crt -crl_reason keyCompromise 2>/dev/null
openssl ca -config openssl.cnf -gencrl -out crl.pem 2>/dev/null
