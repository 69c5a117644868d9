#!/bin/sh
# Entrypoint of the Complement image (complement-tests/Dockerfile): issue a TLS certificate for
# $SERVER_NAME signed by Complement's CA, then run Trellis configured for Complement. Runs at
# every container start (Complement restarts containers made from committed blueprints), so it
# only rewrites the certificate and keeps the database.
#
# Paths can be moved with the environment (to try the script outside a container):
#   COMPLEMENT_CA_DIR  Complement's CA, ca.crt and ca.key   (default /complement/ca)
#   TRELLIS_CONF_DIR   where the certificate and key go      (default /conf)
#   TRELLIS_DATA_DIR   the database directory's parent       (default /data)
#   TRELLIS_BIN        the binary                            (default /usr/local/bin/trellis)
# Any TRELLIS_* setting given to the container wins over the defaults below.
set -eu

: "${SERVER_NAME:?SERVER_NAME is not set (Complement sets it to the homeserver name, e.g. hs1)}"
CA_DIR="${COMPLEMENT_CA_DIR:-/complement/ca}"
CONF_DIR="${TRELLIS_CONF_DIR:-/conf}"
DATA_DIR="${TRELLIS_DATA_DIR:-/data}"
BIN="${TRELLIS_BIN:-/usr/local/bin/trellis}"

for f in ca.crt ca.key; do
    [ -r "$CA_DIR/$f" ] || { echo "entrypoint: $CA_DIR/$f is missing or unreadable" >&2; exit 1; }
done
mkdir -p "$CONF_DIR" "$DATA_DIR"

# The certificate names the host part of SERVER_NAME (no port), as an IP or DNS subjectAltName
# (rustls ignores the CN).
case "$SERVER_NAME" in
    \[*) host="${SERVER_NAME#\[}"; host="${host%%\]*}" ;;
    *) host="${SERVER_NAME%%:*}" ;;
esac
if printf '%s' "$host" | grep -Eq '^[0-9.]+$|:'; then san="IP:$host"; else san="DNS:$host"; fi

cat > "$CONF_DIR/server.ext" <<EXT
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
EXT
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$CONF_DIR/server.key" -subj "/CN=$host" -out "$CONF_DIR/server.csr" 2>/dev/null
# A random serial: the CA directory may be read-only, so no -CAcreateserial file.
openssl x509 -req -in "$CONF_DIR/server.csr" -CA "$CA_DIR/ca.crt" -CAkey "$CA_DIR/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 7 -sha256 -extfile "$CONF_DIR/server.ext" \
    -out "$CONF_DIR/server.crt" 2>/dev/null
rm -f "$CONF_DIR/server.csr"

export TRELLIS_SERVER_NAME="$SERVER_NAME"
export TRELLIS_LISTEN__CLIENT="${TRELLIS_LISTEN__CLIENT:-0.0.0.0:8008}"
export TRELLIS_LISTEN__FEDERATION="${TRELLIS_LISTEN__FEDERATION:-0.0.0.0:8448}"
export TRELLIS_TLS__CERTIFICATE="$CONF_DIR/server.crt"
export TRELLIS_TLS__PRIVATE_KEY="$CONF_DIR/server.key"
export TRELLIS_FEDERATION__ENABLED="${TRELLIS_FEDERATION__ENABLED:-true}"
# Other servers' certificates are signed by the same CA.
export TRELLIS_FEDERATION__EXTRA_CA_FILE="$CA_DIR/ca.crt"
# Complement's servers live on private Docker networks (and host.docker.internal).
export TRELLIS_FEDERATION__DENY_IP_RANGES="${TRELLIS_FEDERATION__DENY_IP_RANGES:-[]}"
export TRELLIS_DATABASE__PATH="${TRELLIS_DATABASE__PATH:-$DATA_DIR/db}"
export TRELLIS_REGISTRATION__ENABLED="${TRELLIS_REGISTRATION__ENABLED:-true}"
export TRELLIS_REGISTRATION__SHARED_SECRET="${TRELLIS_REGISTRATION__SHARED_SECRET:-complement}"
export TRELLIS_REGISTRATION__ALLOW_GUESTS="${TRELLIS_REGISTRATION__ALLOW_GUESTS:-true}"
export TRELLIS_RATE_LIMITS__ENABLED="${TRELLIS_RATE_LIMITS__ENABLED:-false}"
export TRELLIS_PRESENCE__ENABLED="${TRELLIS_PRESENCE__ENABLED:-true}"
export TRELLIS_METRICS__ENABLED="${TRELLIS_METRICS__ENABLED:-false}"
export TRELLIS_LOGGING__LEVEL="${TRELLIS_LOGGING__LEVEL:-info,ruma_state_res=warn}"

exec "$BIN" "$@"
