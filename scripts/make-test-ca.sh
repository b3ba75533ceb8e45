#!/usr/bin/env bash
# Make a throw-away certificate authority for bench and test brokers.
#
#   scripts/make-test-ca.sh OUTDIR DEVICE_ID...
#
# Writes into OUTDIR:
#   ca.crt ca.key                 the test CA (key unencrypted: test use only)
#   server.crt server.key         broker certificate, CN/SAN localhost + 127.0.0.1
#   <device>.crt <device>.key     one per DEVICE_ID, CN = device id (MQTT username and client id)
#   backoffice.crt backoffice.key the back-office client (CN = backoffice)
# Keys are EC P-256, mode 0600. Never commit the output.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 OUTDIR [DEVICE_ID...]" >&2
    exit 2
fi
out=$1
shift
for id in "$@"; do
    if [[ ! $id =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
        echo "$0: invalid device id: $id" >&2
        exit 2
    fi
    # CNs starting with "backoffice" are back-office identities (config/mosquitto/bodycam.acl).
    if [[ ${id,,} == backoffice* ]]; then
        echo "$0: '$id': names starting with 'backoffice' are reserved for back-office identities" >&2
        exit 2
    fi
done

mkdir -p "$out"
cd "$out"
umask 077
days=30

newkey() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# sign NAME SUBJECT EXTFILE
sign() {
    newkey "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -days "$days" -sha256 -extfile "$3" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr"
}

newkey ca.key
openssl req -new -x509 -key ca.key -subj "/CN=bodycam test CA" -days "$days" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt

cat > server.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EXT
cat > client.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EXT

sign server "/CN=localhost" server.ext
sign backoffice "/CN=backoffice" client.ext
for id in "$@"; do
    sign "$id" "/CN=$id" client.ext
done
rm -f server.ext client.ext ca.srl
chmod 0644 ./*.crt
echo "test CA and certificates written to $out" >&2
