#!/usr/bin/env bash
# Kiln's main job on one box, with a virtual lab: installs what it needs, builds kiln, builds the
# boot images from Debian packages (`kiln images build`, cached), creates a network namespace with a
# provisioning bridge (tests/lab/lab.sh), runs `kiln all-in-one` (region + rack, SQLite) inside it,
# and powers on QEMU VMs (TCG) that nobody told Kiln about. They PXE boot, are enlisted,
# commissioned in the ephemeral environment, and end Ready with their hardware in the API.
# The API is forwarded to http://127.0.0.1:5240 on this host with socat, so the CLI, the API and
# the docs work from here; no host interface is configured. Ctrl-C stops everything and removes
# the namespace. State is kept in ./lab-state.
#   sudo tests/demo.sh          # 3 VMs: BIOS (2 disks, 2 NICs), UEFI, BIOS with e1000
#   VMS=4 sudo tests/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VMS=${VMS:-3}
NS=kiln-lab
STATE=$PWD/lab-state
LAB=$PWD/tests/lab/lab.sh
[ "$(id -u)" = 0 ] || { echo "the lab creates a network namespace: run as root (sudo)" >&2; exit 1; }

pkgs=(build-essential pkg-config libsqlite3-dev libpq-dev curl ca-certificates iproute2 socat ipxe python3
      debootstrap squashfs-tools cpio kmod tcpdump ovmf)
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

echo "== boot images (Debian kernel, busybox initramfs, debootstrap squashfs; cached after the first build)"
"$KILN" images build --output "$STATE/images"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "$LAB" down $NS
}
trap cleanup EXIT INT TERM
cleanup   # a lab left over from an interrupted run
"$LAB" up $NS

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
    --dynamic-range 10.20.0.100-10.20.0.199 >/dev/null
fi
echo "== importing the images into the region (the rack syncs them)"
"$KILN" images import "$STATE/images"
sq=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(next(f["sha256"]+"/"+f["name"] for r in m["resources"] for f in r["files"] if f["name"].endswith("squashfs")))' "$STATE/images/manifest.json")
for _ in $(seq 240); do ip netns exec $NS curl -sf -r 0-0 -o /dev/null "http://10.20.0.2:5248/images/$sq" && break; sleep 0.5; done

echo "== powering on $VMS VMs Kiln has never heard of (QEMU, TCG); consoles in $STATE/vmN.serial"
rm -f "$STATE"/vm*.serial "$STATE"/vm*-d*.img
for i in $(seq 1 "$VMS"); do
  mac=$(printf '52:54:00:20:00:%02x' "$i")
  case $i in
    1) opts=(--mac2 "$(printf '52:54:00:20:01:%02x' "$i")" --disk 8 --disk 4 --cpus 2) ;;
    2) opts=(--uefi --disk 6) ;;
    3) opts=(--nic e1000 --disk 10) ;;
    *) opts=(--disk 4) ;;
  esac
  "$LAB" vm $NS "vm$i" "$STATE" --mac "$mac" --mem 1024 "${opts[@]}" >/dev/null
done

echo "== waiting for them to enlist and commission (watch: kiln machines list)"
for _ in $(seq 600); do
  left=$("$KILN" machines list --json | python3 -c '
import json,sys
p=json.load(sys.stdin)
print(sum(1 for m in p["items"] if m["status"] in ("new","commissioning")) + max(0, int(sys.argv[1]) - p["total"]))' "$VMS")
  [ "$left" = 0 ] && break
  sleep 2
done
"$KILN" machines list
ID=$("$KILN" machines list --mac 52:54:00:20:00:01 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["system_id"])')
echo "== the first VM ($ID) as commissioning found it"
"$KILN" machines show "$ID"
echo "== its boot trace"
"$KILN" machines events "$ID" --limit 40
cat <<MSG

The lab is running: region + rack in namespace $NS, API at $KILN_URL (docs: $KILN_URL/api/docs/).
  export KILN_URL=$KILN_URL KILN_TOKEN=\$(cat $STATE/admin-token); alias kiln=$KILN
  kiln machines list | show ID | results ID --output | events ID        kiln scripts list
Commissioned VMs power themselves off. To commission one again: kiln machines commission ID, then
power it on: $LAB vm $NS vm1b $STATE --mac 52:54:00:20:00:01 --mac2 52:54:00:20:01:01 --disk 8 --disk 4
Ctrl-C stops the lab.
MSG
wait "${PIDS[0]}"
