#!/usr/bin/env bash
# Kiln's main job on one box: build, start `kiln all-in-one` on SQLite, create the first admin and
# an API token, and show machines being driven through their lifecycle from the CLI.
# The region keeps running in the foreground (Ctrl-C stops it); its state is in ./lab-state.
#   tests/demo.sh            # API on http://127.0.0.1:5240
#   KILN_LISTEN=0.0.0.0:5240 tests/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)
if ! dpkg -s libsqlite3-dev libpq-dev pkg-config build-essential curl >/dev/null 2>&1; then
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    build-essential pkg-config libsqlite3-dev libpq-dev curl ca-certificates >/dev/null
fi
command -v cargo >/dev/null || { echo "Kiln builds with a current Rust toolchain (rustup); install it and run again." >&2; exit 1; }

cargo build --release -q -p region
KILN=$PWD/target/release/kiln
STATE=$PWD/lab-state
LISTEN=${KILN_LISTEN:-127.0.0.1:5240}
mkdir -p "$STATE"

if [ ! -s "$STATE/admin-token" ]; then
  PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  echo "$PASSWORD" | "$KILN" admin create-user admin --admin --password-stdin --data-dir "$STATE/data"
  echo "$PASSWORD" > "$STATE/admin-password"
  "$KILN" admin create-token admin --token-name demo --data-dir "$STATE/data" > "$STATE/admin-token"
  chmod 600 "$STATE/admin-password" "$STATE/admin-token"
fi
export KILN_URL="http://${LISTEN/0.0.0.0/127.0.0.1}" KILN_TOKEN=$(cat "$STATE/admin-token")

# --no-dhcp: this demo runs on the host's own network; the netns lab with DHCP comes with the lab issue.
"$KILN" all-in-one --no-dhcp --data-dir "$STATE/data" --listen "$LISTEN" &
REGION=$!
trap 'kill $REGION 2>/dev/null || true; wait $REGION 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 100); do curl -sf "$KILN_URL/healthz" >/dev/null && break; sleep 0.1; done

if [ "$("$KILN" machines list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')" = 0 ]; then
  "$KILN" subnets create 10.20.0.0/24 --gateway 10.20.0.1 --dns 10.20.0.1 \
    --dynamic-range 10.20.0.100-10.20.0.199 --route 10.50.0.0/16=10.20.0.254 >/dev/null
  for i in 1 2 3; do
    "$KILN" machines create --hostname "node$i" --mac "52:54:00:20:00:0$i" --tag demo --cpu-count 2 --memory-mib 2048 >/dev/null
  done
  ID=$("$KILN" machines list --hostname node1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["system_id"])')
  "$KILN" machines commission "$ID"
  "$KILN" machines deploy "$ID" || true    # 409: it is Commissioning; the region says why
fi
"$KILN" subnets list
"$KILN" machines list
cat <<MSG

Kiln region is running at $KILN_URL  (API docs: $KILN_URL/api/docs/)
  export KILN_URL=$KILN_URL KILN_TOKEN=\$(cat $STATE/admin-token); alias kiln=$KILN
  kiln machines list | show ID | commission ID | deploy ID | events ID ...
Admin password for the UI/login: $STATE/admin-password.   Ctrl-C stops the region.
MSG
wait $REGION
