#!/bin/sh
# The PKI of examples/tests/forwarded.rs, made with the openssl CLI the way the common
# mTLS guides do (as tests/scripts/guide-pki.sh), plus the proxy's own client
# certificate from a CA of its own. Into DIR:
#
#   ca.key ca.crt           the client CA (RSA 2048, `req -x509` with v3_ca); it also
#                           issues the server certificate, so the proxies trust it for
#                           our server too
#   server.key server.crt server.pem
#                           localhost / 127.0.0.1 (serverAuth); server.pem = crt + key
#                           (HAProxy's `crt`)
#   alice.key alice.crt     a client: CN=alice, with a DNS and a URI subjectAltName
#   admin.key admin.crt     a client: CN=admin (the /admin route's)
#   bob.key bob.crt         a client signed by `openssl ca`, then revoked
#   mallory.key mallory.crt a client from other-ca.crt, a CA nobody here trusts
#   crl.pem                 `openssl ca -gencrl`: the client CA's CRL, revoking bob
#   edge-ca.key edge-ca.crt the CA of the proxies' own certificates
#   edge-proxy.key edge-proxy.crt edge.pem
#                           the proxy's client certificate (CN=edge-proxy, clientAuth)
#                           that it presents to our server; edge.pem = crt + key
#   edge-crl.pem            the edge CA's CRL (empty): with --crl, every CA our server
#                           trusts needs one
#   clients.pem             ca.crt + edge-ca.crt: what our server trusts (--client-ca)
#   ours-ca.crt             the CA of our server's certificate, which the proxies trust
#                           for it (a copy of ca.crt)
#
# Usage: proxy-pki.sh DIR     (DIR is created; existing files are overwritten)
set -eu

dir=${1:?usage: proxy-pki.sh DIR}
mkdir -p "$dir"
cd "$dir"
OPENSSL_CONF=/dev/null
export OPENSSL_CONF

cat > openssl.cnf <<'CNF'
[ ca ]
default_ca = client_ca

[ client_ca ]
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

[ edge_ca ]
dir              = .
database         = $dir/edge-index.txt
crlnumber        = $dir/edge-crlnumber
certificate      = $dir/edge-ca.crt
private_key      = $dir/edge-ca.key
default_md       = sha256
default_crl_days = 30
crl_extensions   = crl_ext

[ policy_loose ]
countryName            = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied

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

# --- the client CA, which also issues the server certificate ---
openssl genrsa -out ca.key 2048 2>/dev/null
openssl req -x509 -new -nodes -key ca.key -sha256 -days 3650 \
  -subj "/C=US/O=Guide Example/CN=Guide Example Root CA" \
  -config openssl.cnf -extensions v3_ca -out ca.crt

openssl genrsa -out server.key 2048 2>/dev/null
openssl req -new -key server.key -subj "/C=US/O=Guide Example/CN=localhost" \
  -config openssl.cnf -out server.csr
cat > server.ext <<'EXT'
authorityKeyIdentifier = keyid,issuer
basicConstraints       = CA:FALSE
keyUsage               = digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth
subjectAltName         = DNS:localhost, IP:127.0.0.1
EXT
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -out server.crt -days 825 -sha256 -extfile server.ext 2>/dev/null
cat server.crt server.key > server.pem

# --- clients, signed with `openssl x509 -req` and an extfile ---
client() { # NAME EXTFILE [CA]
  ca=${3:-ca}
  openssl genrsa -traditional -out "$1.key" 2048 2>/dev/null
  openssl req -new -key "$1.key" -subj "/C=US/O=Guide Example/OU=clients/CN=$1" \
    -config openssl.cnf -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial \
    -out "$1.crt" -days 825 -sha256 -extfile "$2" 2>/dev/null
}
cat > client.ext <<'EXT'
authorityKeyIdentifier = keyid,issuer
basicConstraints       = CA:FALSE
keyUsage               = digitalSignature, keyEncipherment
extendedKeyUsage       = clientAuth
EXT
cat client.ext > alice.ext
echo "subjectAltName = DNS:alice.example.com, URI:spiffe://example.org/user/alice" >> alice.ext
client alice alice.ext
client admin client.ext

# --- mallory, from a CA that nobody here trusts ---
openssl genrsa -out other-ca.key 2048 2>/dev/null
openssl req -x509 -new -nodes -key other-ca.key -sha256 -days 3650 \
  -subj "/C=US/O=Other Example/CN=Other Example Root CA" \
  -config openssl.cnf -extensions v3_ca -out other-ca.crt
client mallory client.ext other-ca

# --- bob, signed by `openssl ca`, revoked, and the CRL ---
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

# --- the proxies' CA and the edge proxy's client certificate ---
openssl genrsa -out edge-ca.key 2048 2>/dev/null
openssl req -x509 -new -nodes -key edge-ca.key -sha256 -days 3650 \
  -subj "/C=US/O=Guide Example/CN=Edge Proxies CA" \
  -config openssl.cnf -extensions v3_ca -out edge-ca.crt
openssl genrsa -out edge-proxy.key 2048 2>/dev/null
openssl req -new -key edge-proxy.key -subj "/C=US/O=Guide Example/CN=edge-proxy" \
  -config openssl.cnf -out edge-proxy.csr
openssl x509 -req -in edge-proxy.csr -CA edge-ca.crt -CAkey edge-ca.key -CAcreateserial \
  -out edge-proxy.crt -days 825 -sha256 -extfile client.ext 2>/dev/null
cat edge-proxy.crt edge-proxy.key > edge.pem
: > edge-index.txt
echo 1000 > edge-crlnumber
openssl ca -config openssl.cnf -name edge_ca -gencrl -out edge-crl.pem 2>/dev/null

cat ca.crt edge-ca.crt > clients.pem
cp ca.crt ours-ca.crt
