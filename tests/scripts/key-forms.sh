#!/bin/sh
# Writes every encrypted-key and PKCS#12 form of the guide PKI's server and alice
# identities with the openssl CLI, into DIR (the guide PKI directory, made by
# guide-pki.sh). The password of every encrypted file is the first line of pw.txt.
#
#   WHO.pbes2.key        openssl pkcs8 -topk8                (OpenSSL 3 default: PBES2,
#                                                          PBKDF2-HMAC-SHA256, AES-256-CBC)
#   WHO.pbes2.der        the same, -outform DER
#   WHO.empty-pw.key     the same with the empty password (-passout pass:)
#   WHO.scrypt.key       openssl pkcs8 -topk8 -scrypt
#   WHO.pbe-3des.key     openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES  (legacy PKCS#12 PBE)
#   WHO.pbe-md5-des.key  openssl pkcs8 -topk8 -v1 PBE-MD5-DES    (PKCS#5 v1.5 PBES1)
#   WHO.aes128.key WHO.aes192.key WHO.aes256.key WHO.des3.key
#                        openssl rsa -aes256 -traditional      (Proc-Type: 4,ENCRYPTED)
#   WHO.p12              openssl pkcs12 -export               (OpenSSL 3 defaults)
#   WHO.legacy.p12       openssl pkcs12 -export -legacy       (RC2-40 / 3DES, SHA-1 MAC)
#   WHO.empty.p12        openssl pkcs12 -export -passout pass:
#   WHO.plain.p12        openssl pkcs12 -export -keypbe NONE -certpbe NONE -passout pass:
#   WHO.nomac.p12        the same, -nomac
#   ca.p12               openssl pkcs12 -export -nokeys -in ca.crt  (a trust bundle)
#   WHO.camellia.key     -v2 camellia-256-cbc (not supported: for the error)
#   WHO.trad-camellia.key openssl rsa -camellia256 -traditional (not supported)
#   WHO.rc4.p12          openssl pkcs12 -export -legacy -keypbe/-certpbe PBE-SHA1-RC4-128
#                        (not supported)
#   WHO.cut.key WHO.cut.p12  truncated copies
#   ec.key ec.aes256.key an EC key, and it as `openssl ec -aes256` writes it
#
# Usage: key-forms.sh DIR
set -eu

dir=${1:?usage: key-forms.sh DIR}
cd "$dir"
OPENSSL_CONF=/dev/null
export OPENSSL_CONF

printf 'correct horse battery\n' > pw.txt
chmod 600 pw.txt

for who in server alice; do
  k=$who.key
  c=$who.crt
  openssl pkcs8 -topk8 -in $k -passout file:pw.txt -out $who.pbes2.key
  openssl pkcs8 -topk8 -in $k -passout file:pw.txt -outform DER -out $who.pbes2.der
  openssl pkcs8 -topk8 -scrypt -in $k -passout file:pw.txt -out $who.scrypt.key
  openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES -in $k -passout file:pw.txt -out $who.pbe-3des.key
  openssl pkcs8 -topk8 -v1 PBE-MD5-DES -provider default -provider legacy \
    -in $k -passout file:pw.txt -out $who.pbe-md5-des.key
  openssl pkcs8 -topk8 -in $k -passout pass: -out $who.empty-pw.key
  openssl pkcs8 -topk8 -v2 camellia-256-cbc -in $k -passout file:pw.txt -out $who.camellia.key
  for alg in aes128 aes192 aes256 des3 camellia256; do
    out=$who.$alg.key
    [ $alg = camellia256 ] && out=$who.trad-camellia.key
    openssl rsa -in $k -$alg -traditional -passout file:pw.txt -out $out 2>/dev/null
  done
  openssl pkcs12 -export -in $c -inkey $k -certfile ca.crt -passout file:pw.txt -out $who.p12
  openssl pkcs12 -export -legacy -in $c -inkey $k -passout file:pw.txt -out $who.legacy.p12
  openssl pkcs12 -export -in $c -inkey $k -passout pass: -out $who.empty.p12
  openssl pkcs12 -export -keypbe NONE -certpbe NONE -in $c -inkey $k -passout pass: \
    -out $who.plain.p12
  openssl pkcs12 -export -keypbe NONE -certpbe NONE -nomac -in $c -inkey $k -passout pass: \
    -out $who.nomac.p12
  openssl pkcs12 -export -legacy -keypbe PBE-SHA1-RC4-128 -certpbe PBE-SHA1-RC4-128 \
    -in $c -inkey $k -passout file:pw.txt -out $who.rc4.p12
  head -n 12 $who.pbes2.key > $who.cut.key
  printf -- '-----END ENCRYPTED PRIVATE KEY-----\n' >> $who.cut.key
  head -c 1500 $who.p12 > $who.cut.p12
done
openssl pkcs12 -export -nokeys -in ca.crt -passout pass: -out ca.p12
# An EC key in the traditional form (`EC PRIVATE KEY` with DEK-Info), for the loader.
openssl ecparam -genkey -name prime256v1 -noout -out ec.key
openssl ec -in ec.key -aes256 -passout file:pw.txt -out ec.aes256.key 2>/dev/null
