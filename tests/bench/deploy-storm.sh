#!/usr/bin/env bash
# Benchmark: how many QEMU VMs (TCG, BIOS, each powered by its own ipmi_sim) deploy at once on this
# box within 15 minutes. N machines are commissioned (all at once), then deployed with one
# `kiln machines deploy` each, started together; each one's time from the request to Deployed is
# printed, with how many made it within 900 s, and the CPU seconds the kiln process (region + rack)
# used meanwhile, to show where the time went (the VMs' emulation, or Kiln).
# TARGET=iscsi: the machines have no disk and deploy with root on iSCSI (a tgtd started here in
# the namespace, the rack's volume store on an XFS loop device made here).
#   sudo tests/bench/deploy-storm.sh          N=3 sudo tests/bench/deploy-storm.sh
#   TARGET=iscsi N=6 sudo tests/bench/deploy-storm.sh
# Needs: the release kiln (cargo build --release -p region), python3, ipmi_sim. Everything runs in
# namespace kiln-bstorm; removed at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-4}
TARGET=${TARGET:-disk}
LIMIT=${LIMIT:-900}
NS=kiln-bstorm
LAB=$PWD/tests/lab/lab.sh
KILN=$PWD/target/release/kiln
W=$(mktemp -d /tmp/kiln-bstorm.XXXX)
chmod 755 "$W"
[ -x "$KILN" ] || { echo "build it first: cargo build --release -p region" >&2; exit 1; }
PIDS=()
LOOP=
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "$LAB" down $NS
  if [ -n "$LOOP" ]; then umount "$W/store" 2>/dev/null || true; losetup -d "$LOOP" || true; fi
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
"$LAB" down $NS
"$LAB" up $NS
"$KILN" images build --output "$W/images" >/dev/null 2>&1
echo password123 | "$KILN" admin create-user admin --admin --password-stdin --data-dir "$W/data" >/dev/null
export KILN_TOKEN=$("$KILN" admin create-token admin --data-dir "$W/data") KILN_URL=http://127.0.0.1:5240
k() { ip netns exec $NS "$KILN" "$@"; }
EXTRA=()
if [ "$TARGET" = iscsi ]; then
  truncate -s 16G "$W/store.img"; mkfs.xfs -q "$W/store.img"; LOOP=$(losetup --find --show "$W/store.img")
  mkdir -p "$W/store"; mount "$LOOP" "$W/store"
  ip netns exec $NS tgtd -f -C 78 --iscsi portal=10.20.0.2:3260 > "$W/tgtd.log" 2>&1 &
  PIDS+=($!)
  EXTRA=(--iscsi-store "$W/store" --iscsi-portal 10.20.0.2:3260 --tgt-control-port 78)
fi
ip netns exec $NS "$KILN" all-in-one --data-dir "$W/data" --listen 127.0.0.1:5240 "${EXTRA[@]}" > "$W/kiln.log" 2>&1 &
KPID=$!; PIDS+=($KPID)
for _ in $(seq 100); do k racks list >/dev/null 2>&1 && break; sleep 0.2; done
k subnets create 10.20.0.0/24 --gateway 10.20.0.2 --dynamic-range 10.20.0.100-10.20.0.199 >/dev/null
k images import "$W/images" >/dev/null 2>&1
OSQ=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); r=next(r for r in m["resources"] if r["kind"]=="os"); f=next(f for f in r["files"] if f["name"].endswith(".squashfs")); print(f["sha256"]+"/"+f["name"])' "$W/images/manifest.json")
for _ in $(seq 600); do ip netns exec $NS curl -sf -r 0-0 -o /dev/null "http://10.20.0.2:5248/images/$OSQ" && break; sleep 0.5; done
ssh-keygen -q -t ed25519 -N '' -f "$W/key"; k sshkeys add --file "$W/key.pub" >/dev/null

state() { k machines show "$1" --json | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["status"], m["power_state"])'; }
IDS=()
for r in $(seq "$N"); do
  mac=$(printf '52:54:00:bf:00:%02x' "$r"); port=$((9900 + r * 10))
  DISK=(--disk 6); [ "$TARGET" = iscsi ] && DISK=()
  "$LAB" vm $NS "s$r" "$W" --mac "$mac" "${DISK[@]}" --mem 1536 --reboot --bmc-port $port --cmd-file "$W/s$r.cmd" >/dev/null
  ip netns exec $NS tests/peers/ipmi/start.sh "$W/s$r-bmc" $port "$W/s$r.cmd" >/dev/null
  PIDS+=("$(cat "$W/s$r-bmc/ipmi_sim.pid")")
  IDS+=("$(k machines create --mac "$mac" --hostname "s$r" --power-type ipmi --power-address 127.0.0.1 \
    --power-param power_port=$port --power-param power_user=admin --power-param power_pass=secret --skip-bmc-config true --json \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["system_id"])')")
done
echo "== commissioning $N machines at once"
t0=$(date +%s)
for id in "${IDS[@]}"; do k machines commission "$id" >/dev/null; done
for id in "${IDS[@]}"; do
  for _ in $(seq 1800); do [ "$(state "$id")" = "ready off" ] && break; sleep 1; done
  [ "$(state "$id")" = "ready off" ] || { echo "$id did not commission: $(state "$id")" >&2; exit 1; }
done
echo "   all Ready in $(( $(date +%s) - t0 )) s"

echo "== deploying $N machines at once (limit ${LIMIT}s)"
cpu() { awk '{print $14 + $15}' "/proc/$KPID/stat"; }
c0=$(cpu); t0=$(date +%s.%N)
DPIDS=()
for id in "${IDS[@]}"; do
  ( k machines deploy "$id" --target "$TARGET" --wait --timeout 1800 >"$W/deploy-$id.out" 2>&1; echo $? >"$W/deploy-$id.rc"
    date +%s.%N >"$W/deploy-$id.t" ) &
  DPIDS+=($!)
done
for p in "${DPIDS[@]}"; do wait "$p" || true; done
c1=$(cpu); t1=$(date +%s.%N)
python3 - "$W" "$t0" "$LIMIT" "${IDS[@]}" <<'PY'
import sys
w, t0, limit, ids = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
n_in = 0
for i in ids:
    rc = open(f"{w}/deploy-{i}.rc").read().strip()
    t = float(open(f"{w}/deploy-{i}.t").read()) - t0
    ok = rc == "0"
    n_in += ok and t <= limit
    print(f"   {i}: {'Deployed' if ok else 'FAILED'} after {t:.0f} s")
print(f"== {n_in} of {len(ids)} machines deployed within {limit:.0f} s")
PY
HZ=$(getconf CLK_TCK)
python3 -c "print(f'   kiln (region + rack) used {($c1 - $c0) / $HZ:.1f} CPU s over {$t1 - $t0:.0f} s of wall time')"
