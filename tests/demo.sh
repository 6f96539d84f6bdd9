#!/usr/bin/env bash
# Kiln's main job on one box, with a virtual lab: installs what it needs, builds kiln, builds the
# boot images from Debian packages (`kiln images build`, cached), creates a network namespace with a
# provisioning bridge (tests/lab/lab.sh), runs `kiln all-in-one` (region + rack, SQLite) inside it,
# and gives it QEMU VMs (TCG) with a real BMC each (OpenIPMI's ipmi_sim, wired to the VM: power on
# starts QEMU, power off stops it). The demo adds them by their BMCs, as an operator adds servers;
# Kiln powers them on over IPMI, they PXE boot, are commissioned in the ephemeral environment and
# end Ready, powered off by Kiln. Then the first one is deployed with Debian onto its disk and the
# demo prints the SSH command that reaches it. A fourth, diskless VM is deployed with its root on
# iSCSI (a tgtd the demo starts as a plain process in the namespace serves the volume Kiln clones
# for it from the same image; the rack's store is ./lab-state/iscsi-store). `ISCSI=0` leaves it
# out. `kiln machines commission|deploy|release ID` work
# from then on with no hand on QEMU. The API is forwarded to http://127.0.0.1:5240 on this host with
# socat, so the CLI, the API and the docs work from here; no host interface is configured. Ctrl-C
# stops everything and removes the namespace. State is kept in ./lab-state.
#   sudo tests/demo.sh          # 3 VMs: BIOS (2 disks, 2 NICs), UEFI, BIOS with e1000
#   VMS=4 sudo tests/demo.sh    DEPLOY=0 sudo tests/demo.sh (commission only)
set -euo pipefail
cd "$(dirname "$0")/.."
VMS=${VMS:-3}
NS=kiln-lab
STATE=$PWD/lab-state
LAB=$PWD/tests/lab/lab.sh
[ "$(id -u)" = 0 ] || { echo "the lab creates a network namespace: run as root (sudo)" >&2; exit 1; }

pkgs=(build-essential pkg-config libsqlite3-dev libpq-dev curl ca-certificates iproute2 socat ipxe python3
      debootstrap squashfs-tools cpio kmod tcpdump ovmf openipmi ipmitool openssh-client libvirt-dev
      tgt e2fsprogs xfsprogs bind9-dnsutils)
if ! dpkg -s "${pkgs[@]}" qemu-system-x86 ipxe-qemu >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  # qemu-system-x86 replaces a newer backported qemu-utils; reinstalling qemu-utils restores qemu-img.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 ipxe-qemu >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-utils >/dev/null
fi
# Under sudo, build with the invoking user's rustup toolchain (and as that user).
BUILD=(cargo)
if ! command -v cargo >/dev/null && [ -n "${SUDO_USER:-}" ]; then
  UHOME=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  if [ -x "$UHOME/.cargo/bin/cargo" ]; then
    BUILD=(runuser -u "$SUDO_USER" -- env "PATH=$UHOME/.cargo/bin:$PATH" "HOME=$UHOME" cargo)
  fi
fi
if [ "${BUILD[0]}" = cargo ] && ! command -v cargo >/dev/null; then
  echo "Kiln builds with a current Rust toolchain (rustup); install it and run again." >&2; exit 1
fi
"${BUILD[@]}" build --release -q -p region
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

ISCSI=${ISCSI:-1}
ISCSI_ARGS=()
if [ "$ISCSI" = 1 ]; then
  # Root on iSCSI: tgtd on the lab bridge (a real rack uses its host's tgt service), control
  # port 77 so it never meets a tgtd of this host.
  mkdir -p "$STATE/iscsi-store"
  ip netns exec $NS tgtd -f -C 77 --iscsi portal=10.20.0.2:3260 > "$STATE/tgtd.log" 2>&1 &
  PIDS+=($!)
  ISCSI_ARGS=(--iscsi-store "$STATE/iscsi-store" --iscsi-portal 10.20.0.2:3260 --tgt-control-port 77)
fi
ip netns exec $NS "$KILN" all-in-one --data-dir "$STATE/data" --listen 127.0.0.1:5240 "${ISCSI_ARGS[@]}" \
  > "$STATE/kiln.log" 2>&1 &
PIDS+=($!)
# The API, from this host's loopback into the lab (socat per connection; no interface involved).
socat TCP-LISTEN:5240,bind=127.0.0.1,fork,reuseaddr EXEC:"ip netns exec $NS socat STDIO TCP\:127.0.0.1\:5240" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "$KILN_URL/healthz" >/dev/null && break; sleep 0.2; done
cat <<MSG
== the web UI: open http://127.0.0.1:5240/ and log in as admin, password $(cat "$STATE/admin-password")
   (the machine list and each machine's page follow the lab live, no reload needed)
MSG

if [ "$("$KILN" subnets list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ]; then
  "$KILN" subnets create 10.20.0.0/24 --gateway 10.20.0.2 --dns 10.20.0.2 \
    --dynamic-range 10.20.0.100-10.20.0.199 >/dev/null
fi
echo "== importing the images into the region (the rack syncs them)"
"$KILN" images import "$STATE/images"
sq=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(next(f["sha256"]+"/"+f["name"] for r in m["resources"] for f in r["files"] if f["name"].endswith("squashfs")))' "$STATE/images/manifest.json")
for _ in $(seq 240); do ip netns exec $NS curl -sf -r 0-0 -o /dev/null "http://10.20.0.2:5248/images/$sq" && break; sleep 0.5; done

NVM=$VMS; [ "$ISCSI" = 1 ] && NVM=$((VMS + 1))
echo "== $NVM VMs with a BMC each (QEMU, TCG; ipmi_sim on 127.0.0.1:97NN); consoles in $STATE/vmN.serial"
rm -f "$STATE"/vm*.serial "$STATE"/vm*-d*.img
IDS=()
for i in $(seq 1 "$NVM"); do
  mac=$(printf '52:54:00:20:00:%02x' "$i")
  port=$((9700 + 10 * i))
  case $i in
    1) opts=(--mac2 "$(printf '52:54:00:20:01:%02x' "$i")" --disk 8 --disk 4 --cpus 2) ;;
    2) opts=(--uefi --disk 6) ;;
    3) opts=(--nic e1000 --disk 10) ;;
    *) opts=(--disk 6) ;;
  esac
  # The extra VM of ISCSI=1 has no disk at all.
  [ "$ISCSI" = 1 ] && [ "$i" = "$NVM" ] && opts=()
  "$LAB" vm $NS "vm$i" "$STATE" --mac "$mac" --mem 1024 --reboot --bmc-port $port \
    --cmd-file "$STATE/vm$i.cmd" "${opts[@]}" >/dev/null
  ip netns exec $NS tests/peers/ipmi/start.sh "$STATE/vm$i-bmc" $port "$STATE/vm$i.cmd" >/dev/null
  PIDS+=("$(cat "$STATE/vm$i-bmc/ipmi_sim.pid")")
  id=$("$KILN" machines list --mac "$mac" --json | python3 -c 'import json,sys; i=json.load(sys.stdin)["items"]; print(i[0]["system_id"] if i else "")')
  if [ -z "$id" ]; then
    id=$("$KILN" machines create --hostname "vm$i" --mac "$mac" --power-type ipmi --power-address 127.0.0.1 \
      --power-param power_port=$port --power-param power_user=admin --power-param power_pass=secret \
      --skip-bmc-config true --json \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["system_id"])')
  fi
  IDS+=("$id")
  "$KILN" machines commission "$id" >/dev/null
done

echo "== Kiln powers them on over IPMI; they PXE boot and commission (watch: kiln machines list)"
for _ in $(seq 600); do
  left=$("$KILN" machines list --json | python3 -c '
import json,sys
p=json.load(sys.stdin)
print(sum(1 for m in p["items"] if m["status"] in ("new","commissioning")))')
  [ "$left" = 0 ] && break
  sleep 2
done
"$KILN" machines list
ID=${IDS[0]}
echo "== the first VM ($ID) as commissioning found it"
"$KILN" machines show "$ID"
echo "== its boot trace"
"$KILN" machines events "$ID" --limit 40
HOST=$("$KILN" machines show "$ID" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["hostname"])')
echo "== its name in the rack's DNS: dig @10.20.0.2 $HOST.kiln (forward and reverse)"
FWD=$(ip netns exec $NS dig +short +time=2 @10.20.0.2 "$HOST.kiln" A | head -n1)
echo "$HOST.kiln -> ${FWD:-no answer}"
[ -z "$FWD" ] || echo "$FWD -> $(ip netns exec $NS dig +short +time=2 @10.20.0.2 -x "$FWD")"

SSH_HINT=
if [ "${DEPLOY:-1}" = 1 ]; then
  [ -f "$STATE/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C kiln-demo -f "$STATE/id_ed25519"
  "$KILN" sshkeys add --file "$STATE/id_ed25519.pub" >/dev/null 2>&1 || true   # there already on a re-run
  printf '#cloud-config\nruncmd:\n  - [sh, -c, "echo deployed by Kiln > /etc/motd"]\n' > "$STATE/user-data"
  echo "== deploying Debian to $ID's disk (Kiln powers it on; each step as it happens)"
  if [ "$("$KILN" machines show "$ID" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = deployed ]; then
    echo "(deployed already)"
  else
    "$KILN" machines deploy "$ID" --user-data "$STATE/user-data" --wait
  fi
  IP=$("$KILN" machines show "$ID" --json | python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(i["ip"] for i in m["interfaces"] if i["ip"]))')
  SSH_HINT="  sudo ip netns exec $NS ssh -i $STATE/id_ed25519 -o StrictHostKeyChecking=no debian@$IP"
  if [ "$ISCSI" = 1 ]; then
    DID=${IDS[$((NVM - 1))]}
    echo "== deploying Debian to the diskless VM $DID with root on iSCSI (Kiln clones its volume, then powers it on)"
    if [ "$("$KILN" machines show "$DID" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" != deployed ]; then
      "$KILN" machines deploy "$DID" --target iscsi --user-data "$STATE/user-data" --wait
    fi
    "$KILN" machines show "$DID" | sed -n '/boot volume/,/message/p'
    DIP=$("$KILN" machines show "$DID" --json | python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(i["ip"] for i in m["interfaces"] if i["ip"]))')
    SSH_HINT="$SSH_HINT
The diskless machine (root on iSCSI; findmnt / shows /dev/sda, lsblk its iscsi transport):
  sudo ip netns exec $NS ssh -i $STATE/id_ed25519 -o StrictHostKeyChecking=no debian@$DIP"
  fi
fi
cat <<MSG

The lab is running: region + rack in namespace $NS, API at $KILN_URL (docs: $KILN_URL/api/docs/).
  Web UI: $KILN_URL/ (user admin, password $(cat "$STATE/admin-password"))
  export KILN_URL=$KILN_URL KILN_TOKEN=\$(cat $STATE/admin-token); alias kiln=$KILN
  kiln machines list | show ID | results ID --output | events ID        kiln scripts list
  kiln machines deploy ID --wait | release ID --erase --wait | commission ID   (Kiln powers them)
  sudo ip netns exec $NS dig @10.20.0.2 ${HOST:-node}.kiln      kiln dns records add www.kiln CNAME ${HOST:-node}.kiln
${SSH_HINT:+The deployed machine, over SSH with your key:
$SSH_HINT
}Ctrl-C stops the lab.
MSG
wait "${PIDS[0]}"
