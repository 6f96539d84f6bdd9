#!/usr/bin/env bash
# Kiln's main job on one box, with a virtual lab: builds kiln, creates a network namespace
# "kiln-lab" with a provisioning bridge (10.20.0.0/24), runs `kiln all-in-one` (region + rack, SQLite)
# inside it, and PXE-boots QEMU VMs (TCG) from it. The API is forwarded to http://127.0.0.1:5240 on
# this host with socat, so the CLI, the API and the docs work from here; no host interface is
# configured. Ctrl-C stops everything and removes the namespace. State is kept in ./lab-state.
#   sudo tests/demo.sh          # 2 VMs
#   VMS=4 sudo tests/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VMS=${VMS:-2}
NS=kiln-lab
STATE=$PWD/lab-state
[ "$(id -u)" = 0 ] || { echo "the lab creates a network namespace: run as root (sudo)" >&2; exit 1; }

pkgs=(build-essential pkg-config libsqlite3-dev libpq-dev curl ca-certificates iproute2 socat ipxe python3)
if ! dpkg -s "${pkgs[@]}" qemu-system-x86 ipxe-qemu >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  # qemu-system-x86 replaces a newer backported qemu-utils; reinstalling qemu-utils restores qemu-img.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 ipxe-qemu >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-utils >/dev/null
fi
command -v cargo >/dev/null || { echo "Kiln builds with a current Rust toolchain (rustup); install it and run again." >&2; exit 1; }
cargo build --release -q -p region
KILN=$PWD/target/release/kiln

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if ip netns list | grep -qw $NS; then
    for p in $(ip netns pids $NS); do kill "$p" 2>/dev/null || true; done
    sleep 1
    for p in $(ip netns pids $NS); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del $NS
  fi
}
trap cleanup EXIT INT TERM
cleanup   # a lab left over from an interrupted run

ip netns add $NS
ip -n $NS link set lo up
ip -n $NS link add br0 type bridge stp_state 0 forward_delay 0
ip -n $NS addr add 10.20.0.2/24 dev br0
ip -n $NS link set br0 up
for i in $(seq 0 $((VMS - 1))); do
  ip -n $NS tuntap add dev tap$i mode tap
  ip -n $NS link set tap$i master br0
  ip -n $NS link set tap$i up
done

mkdir -p "$STATE"
if [ ! -s "$STATE/admin-token" ]; then
  PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  echo "$PASSWORD" | "$KILN" admin create-user admin --admin --password-stdin --data-dir "$STATE/data"
  echo "$PASSWORD" > "$STATE/admin-password"
  "$KILN" admin create-token admin --token-name demo --data-dir "$STATE/data" > "$STATE/admin-token"
  chmod 600 "$STATE/admin-password" "$STATE/admin-token"
fi
export KILN_URL=http://127.0.0.1:5240 KILN_TOKEN=$(cat "$STATE/admin-token")

ip netns exec $NS "$KILN" all-in-one --data-dir "$STATE/data" --listen 127.0.0.1:5240 > "$STATE/kiln.log" 2>&1 &
PIDS+=($!)
# The API, from this host's loopback into the lab (socat per connection; no interface involved).
socat TCP-LISTEN:5240,bind=127.0.0.1,fork,reuseaddr EXEC:"ip netns exec $NS socat STDIO TCP\:127.0.0.1\:5240" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "$KILN_URL/healthz" >/dev/null && break; sleep 0.2; done

if [ "$("$KILN" subnets list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ]; then
  "$KILN" subnets create 10.20.0.0/24 --gateway 10.20.0.2 --dns 10.20.0.2 \
    --dynamic-range 10.20.0.100-10.20.0.199 --route 10.50.0.0/16=10.20.0.254 >/dev/null
fi
for i in $(seq 1 "$VMS"); do
  mac=$(printf '52:54:00:20:00:%02x' "$i")
  if [ "$("$KILN" machines list --mac "$mac" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')" = 0 ]; then
    "$KILN" machines create --hostname "vm$i" --mac "$mac" --tag lab --cpu-count 1 --memory-mib 512 >/dev/null
  fi
done
for _ in $(seq 100); do grep -q "DHCP: serving br0" "$STATE/kiln.log" && break; sleep 0.2; done

echo "Powering on $VMS VMs (QEMU, TCG); serial consoles in $STATE/vmN.serial"
for i in $(seq 1 "$VMS"); do
  mac=$(printf '52:54:00:20:00:%02x' "$i")
  ip netns exec $NS qemu-system-x86_64 -name "vm$i" -accel tcg -m 512 -smp 1 -nographic -no-reboot \
    -netdev tap,id=n0,ifname=tap$((i - 1)),script=no,downscript=no \
    -device virtio-net-pci,netdev=n0,mac="$mac",bootindex=1 -boot n \
    < /dev/null > "$STATE/vm$i.serial" 2>&1 &
  PIDS+=($!)
done
for i in $(seq 1 "$VMS"); do
  for _ in $(seq 300); do grep -q "Kiln:" "$STATE/vm$i.serial" 2>/dev/null && break; sleep 0.5; done
  echo "--- vm$i console:"; grep -a "Kiln:" "$STATE/vm$i.serial" | head -3 | tr -d '\r'
done
sleep 2
"$KILN" machines list
ID=$("$KILN" machines list --hostname vm1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["system_id"])')
echo "--- boot trace of vm1 ($ID):"
"$KILN" machines events "$ID" --limit 8
cat <<MSG

The lab is running: region + rack in namespace $NS, API at $KILN_URL (docs: $KILN_URL/api/docs/).
  export KILN_URL=$KILN_URL KILN_TOKEN=\$(cat $STATE/admin-token); alias kiln=$KILN
  kiln machines list | show ID | events ID | commission ID ...     kiln racks list
The VMs ask Kiln for a script every 30 s; what they boot follows their status. Ctrl-C stops the lab.
MSG
wait "${PIDS[0]}"
