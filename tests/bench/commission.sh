#!/usr/bin/env bash
# Benchmark: a QEMU VM (TCG) from power-on to Ready under Kiln, split by phase from its events, and
# in the same run the same VM booting the same kernel, initrd and squashfs and running the same
# scripts with dnsmasq (DHCP, TFTP, RA) + nginx (files, static script list, 200 to every report)
# in Kiln's place. Then N VMs at once under Kiln: how long until all are Ready.
#   sudo tests/bench/commission.sh            # 1 VM each way, then N=4 and N=8 at once
#   RUNS=3 BATCHES="4 8 12" sudo tests/bench/commission.sh
# Needs: the release kiln (cargo build --release -p region), dnsmasq, nginx, python3, and what
# tests/demo.sh installs. Everything runs in namespace kiln-bench; removed at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-2}
BATCHES=${BATCHES-"4 8"}   # BATCHES= (empty) skips the batches
NS=kiln-bench
LAB=$PWD/tests/lab/lab.sh
KILN=$PWD/target/release/kiln
W=$(mktemp -d /tmp/kiln-bench.XXXX)
chmod 755 "$W"   # nginx's workers (www-data) read the baseline's files from here
[ -x "$KILN" ] || { echo "build it first: cargo build --release -p region" >&2; exit 1; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "$LAB" down $NS
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
"$LAB" down $NS
"$LAB" up $NS
"$KILN" images build --output "$W/images" >/dev/null 2>&1
echo password123 | "$KILN" admin create-user admin --admin --password-stdin --data-dir "$W/data" >/dev/null
export KILN_TOKEN=$("$KILN" admin create-token admin --data-dir "$W/data") KILN_URL=http://127.0.0.1:5240
k() { ip netns exec $NS "$KILN" "$@"; }
start_kiln() {
  ip netns exec $NS "$KILN" all-in-one --data-dir "$W/data" --listen 127.0.0.1:5240 > "$W/kiln.log" 2>&1 &
  KPID=$!
  for _ in $(seq 100); do k racks list >/dev/null 2>&1 && break; sleep 0.2; done
}
stop_kiln() { kill $KPID; wait $KPID 2>/dev/null || true; }
start_kiln
k subnets create 10.20.0.0/24 --gateway 10.20.0.2 --dynamic-range 10.20.0.100-10.20.0.199 >/dev/null
k images import "$W/images" >/dev/null 2>&1
SQ=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(next(f["sha256"]+"/"+f["name"] for r in m["resources"] for f in r["files"] if f["name"].endswith("squashfs")))' "$W/images/manifest.json")
for _ in $(seq 240); do ip netns exec $NS curl -sf -r 0-0 -o /dev/null "http://10.20.0.2:5248/images/$SQ" && break; sleep 0.5; done

# Seconds (float) since the epoch of a QEMU VM's end: when its process is gone (killed after 600 s).
wait_exit() {
  local end=$((SECONDS + 600))
  while kill -0 "$1" 2>/dev/null; do
    [ $SECONDS -lt $end ] || { kill "$1"; echo "VM $1 killed after 600 s" >&2; }
    sleep 0.2
  done
  date +%s.%N
}
ms_of() { python3 -c 'import sys,datetime; print(datetime.datetime.fromisoformat(sys.argv[1].replace("Z","+00:00")).timestamp())' "$1"; }

echo "== Kiln: one VM, power-on to Ready (runs: $RUNS)"
for r in $(seq "$RUNS"); do
  mac=$(printf '52:54:00:be:00:%02x' "$r")
  t0=$(date +%s.%N)
  pid=$("$LAB" vm $NS "k$r" "$W" --mac "$mac" --disk 4 --mem 1024)
  t_end=$(wait_exit "$pid")
  id=$(k machines list --mac "$mac" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["system_id"])')
  k machines events "$id" --limit 200 --json > "$W/ev-$r.json"
  k machines show "$id" --json > "$W/m-$r.json"
  python3 - "$t0" "$t_end" "$W/ev-$r.json" "$W/m-$r.json" <<'PY' | tee -a "$W/kiln-runs.txt"
import json, sys, datetime
t0, tend = float(sys.argv[1]), float(sys.argv[2])
evs = sorted(json.load(open(sys.argv[3])), key=lambda e: (e["created_at"], e["id"]))
m = json.load(open(sys.argv[4]))
ts = lambda e: datetime.datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")).timestamp()
def first(pred):
    for e in evs:
        if pred(e): return ts(e)
    return None
marks = [
    ("first DHCP/PXE request", first(lambda e: e["event_type"] in ("unknown_pxe", "pxe_request"))),
    ("iPXE script sent", first(lambda e: e["event_type"] == "ipxe_script")),
    ("initrd sent", first(lambda e: e["event_type"] == "http_sent" and "initrd" in e["description"])),
    ("squashfs sent", first(lambda e: e["event_type"] == "http_sent" and "squashfs" in e["description"])),
    ("environment up", first(lambda e: e["event_type"] == "booted")),
    ("first script started", first(lambda e: e["event_type"] == "script_started")),
    ("Ready", first(lambda e: e["event_type"] == "commissioning_passed")),
]
prev = t0
parts = []
for name, t in marks:
    if t is None:
        parts.append(f"{name}: -"); continue
    parts.append(f"{name} +{t - prev:.1f}s")
    prev = t
ready = marks[-1][1]
print(f"status={m['status']} ready={ready - t0:.1f}s poweroff={tend - t0:.1f}s | " + " | ".join(parts))
PY
done

echo "== dnsmasq + nginx: the same VM, files and scripts (runs: $RUNS)"
stop_kiln
B=$W/baseline; mkdir -p "$B/www/metadata/v1" "$B/tftp"
for f in vmlinuz initrd.gz root.squashfs; do ln -f "$W/images/ephemeral/$f" "$B/www/$f"; done
cp /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi "$B/tftp/"
# The scripts Kiln would have sent (built-ins), as a static list.
start_kiln; k scripts list --json > "$B/www/metadata/v1/scripts"; stop_kiln
echo '{"system_id":"baseline","hostname":"baseline","status":"commissioning","boot_id":"b"}' > "$B/www/metadata/v1/meta"
cat > "$B/www/boot.ipxe" <<'IPXE'
#!ipxe
kernel http://10.20.0.2:8080/vmlinuz initrd=initrd console=tty0 console=ttyS0,115200 BOOTIF=01-${net0/mac:hexhyp} kiln.url=http://10.20.0.2:8080 kiln.token=boot_baseline kiln.root=http://10.20.0.2:8080/root.squashfs
initrd --name initrd http://10.20.0.2:8080/initrd.gz
boot
IPXE
cat > "$B/nginx.conf" <<NGINX
worker_processes 2;
pid $B/nginx.pid;
error_log $B/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  client_max_body_size 8m;
  server {
    listen 10.20.0.2:8080;
    root $B/www;
    location = /metadata/v1/scripts { default_type application/json; }
    location = /metadata/v1/meta { default_type application/json; }
    location /metadata/v1/ {
      if (\$request_method = POST) { return 200 '{"status":"ready","message":"baseline"}'; }
    }
  }
}
NGINX
cat > "$B/dnsmasq.conf" <<DNSMASQ
port=0
interface=br0
bind-interfaces
user=root
pid-file=$B/dnsmasq.pid
dhcp-authoritative
dhcp-range=10.20.0.100,10.20.0.199,255.255.255.0,10m
dhcp-leasefile=$B/dnsmasq.leases
enable-tftp
tftp-root=$B/tftp
dhcp-match=set:ipxe,175
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe
dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi
dhcp-boot=tag:ipxe,http://10.20.0.2:8080/boot.ipxe
dhcp-option=tag:ipxe,encap:175,176,1
enable-ra
dhcp-range=::,constructor:br0,ra-only,64,1h
no-ping
DNSMASQ
ip netns exec $NS nginx -c "$B/nginx.conf"
ip netns exec $NS dnsmasq --conf-file="$B/dnsmasq.conf"
PIDS+=("$(cat "$B/nginx.pid")" "$(cat "$B/dnsmasq.pid")")
for r in $(seq "$RUNS"); do
  mac=$(printf '52:54:00:be:00:%02x' "$r")
  t0=$(date +%s.%N)
  pid=$("$LAB" vm $NS "b$r" "$W" --mac "$mac" --disk 4 --mem 1024)
  t_end=$(wait_exit "$pid")
  if ! grep -aq "KILN-COMMISSIONING-DONE" "$W/b$r.serial"; then
    echo "baseline run $r: the runner did not finish; see $W/b$r.serial" >&2; tail -20 "$W/b$r.serial" >&2; exit 1
  fi
  echo "poweroff=$(python3 -c "print(f'{$t_end - $t0:.1f}')")s (runner finished)" | tee -a "$W/base-runs.txt"
done
kill "$(cat "$B/nginx.pid")" "$(cat "$B/dnsmasq.pid")" 2>/dev/null || true
python3 - "$W/kiln-runs.txt" "$W/base-runs.txt" <<'PY'
import re, sys
k = [float(re.search(r"poweroff=([\d.]+)s", l).group(1)) for l in open(sys.argv[1])]
b = [float(re.search(r"poweroff=([\d.]+)s", l).group(1)) for l in open(sys.argv[2])]
km, bm = sorted(k)[len(k)//2], sorted(b)[len(b)//2]
print(f"== power-on to power-off (commissioning done), median: Kiln {km:.1f}s, dnsmasq+nginx {bm:.1f}s, ratio {km/bm:.2f}")
PY

start_kiln
for n in $BATCHES; do
  echo "== Kiln: $n VMs at once"
  t0=$(date +%s.%N)
  pids=()
  for i in $(seq "$n"); do
    pids+=("$("$LAB" vm $NS "n$n-$i" "$W" --mac "$(printf '52:54:00:bf:%02x:%02x' "$n" "$i")" --disk 2 --mem 1024)")
  done
  for p in "${pids[@]}"; do wait_exit "$p" >/dev/null; done
  t_end=$(date +%s.%N)
  ready=$(k machines list --status ready --limit 10000 --json | python3 -c "
import json,sys; p=json.load(sys.stdin); print(sum(1 for m in p['items'] if m['boot_mac'].startswith('52:54:00:bf:%02x' % $n)))")
  echo "N=$n: $ready/$n Ready, all powered off after $(python3 -c "print(f'{$t_end - $t0:.0f}')") s"
  rm -f "$W"/n$n-*.img
done
