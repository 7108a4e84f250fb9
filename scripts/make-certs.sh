#!/usr/bin/env bash
# Makes a throwaway certificate authority and certificates for a local raftkv cluster,
# for trying TLS and for the tests. Not for production: the CA key sits beside the
# certificates, unencrypted. docs/security.md explains what each file is for.
#
#     scripts/make-certs.sh DIR [NODES]      # NODES defaults to 3
#
# Writes into DIR (created if missing):
#   ca.crt, ca.key                 the CA that signs everything below
#   node-<id>.crt, node-<id>.key   for ids 1..NODES: subject CN "raftkv-node-<id>", the
#                                  name a peer's certificate must carry for that id; also
#                                  usable as the node's HTTPS certificate (SANs localhost,
#                                  127.0.0.1 and ::1)
#   client.crt, client.key         a client certificate (CN "raftkv-client") for HTTPS
#                                  with --client-ca
# Existing files are replaced. Certificates are valid for 30 days.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || "$1" == -h || "$1" == --help ]]; then
    echo "usage: $0 DIR [NODES]" >&2
    exit 2
fi
dir=$1
nodes=${2:-3}
if ! [[ "$nodes" =~ ^[1-9][0-9]*$ ]]; then
    echo "make-certs: NODES must be a positive number, not '$nodes'" >&2
    exit 2
fi
command -v openssl >/dev/null || {
    echo "make-certs: openssl not found (Debian package: openssl)" >&2
    exit 1
}

mkdir -p "$dir"
cd "$dir"
umask 077
days=30

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca.key -out ca.crt -days "$days" -subj "/CN=raftkv test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null

# issue NAME CN EXTENDED_KEY_USAGE
issue() {
    local name=$1 cn=$2 eku=$3
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$name.key" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
    printf '%s\n' \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=$eku" \
        "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -out "$name.crt" -days "$days" -extfile "$name.ext" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}

for ((id = 1; id <= nodes; id++)); do
    issue "node-$id" "raftkv-node-$id" serverAuth,clientAuth
done
issue client raftkv-client clientAuth
rm -f ca.srl
chmod 644 ./*.crt
echo "make-certs: wrote a CA, $nodes node certificates and a client certificate to $(pwd)"
