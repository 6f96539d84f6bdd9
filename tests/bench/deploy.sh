#!/usr/bin/env bash
# Benchmark: a QEMU VM (TCG, BIOS, IPMI-powered through ipmi_sim) from the deploy request to
# Deployed under Kiln, split by phase from its events; and in the same run the same VM deployed
# with the same ephemeral environment, the same installer steps and the same image by dnsmasq
# (DHCP, TFTP, RA) + nginx (files, a static plan, 200 to every report, the NoCloud seed) in Kiln's
# place: phase 1 boots the environment and installs, phase 2 boots the disk until cloud-init's
# phone-home reaches nginx. Kiln's overhead is the ratio.
#   sudo tests/bench/deploy.sh            RUNS=2 sudo tests/bench/deploy.sh
# Needs: the release kiln (cargo build --release -p region), dnsmasq, nginx, python3, ipmi_sim.
# Everything runs in namespace kiln-bdep; removed at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-1}
NS=kiln-bdep
LAB=$PWD/tests/lab/lab.sh
KILN=$PWD/target/release/kiln
W=$(mktemp -d /tmp/kiln-bdep.XXXX)
chmod 755 "$W"
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
ip netns exec $NS "$KILN" all-in-one --data-dir "$W/data" --listen 127.0.0.1:5240 > "$W/kiln.log" 2>&1 &
KPID=$!; PIDS+=($KPID)
for _ in $(seq 100); do k racks list >/dev/null 2>&1 && break; sleep 0.2; done
k subnets create 10.20.0.0/24 --gateway 10.20.0.2 --dynamic-range 10.20.0.100-10.20.0.199 >/dev/null
k images import "$W/images" >/dev/null 2>&1
OSQ=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); r=next(r for r in m["resources"] if r["kind"]=="os"); f=next(f for f in r["files"] if f["name"].endswith(".squashfs")); print(f["sha256"]+"/"+f["name"])' "$W/images/manifest.json")
for _ in $(seq 600); do ip netns exec $NS curl -sf -r 0-0 -o /dev/null "http://10.20.0.2:5248/images/$OSQ" && break; sleep 0.5; done
ssh-keygen -q -t ed25519 -N '' -f "$W/key"; k sshkeys add --file "$W/key.pub" >/dev/null
printf '#cloud-config\nruncmd:\n  - [sh, -c, "echo bench > /var/tmp/marker"]\n' > "$W/user-data"

echo "== Kiln: commission, then deploy (runs: $RUNS); phases from the machine's events"
for r in $(seq "$RUNS"); do
  mac=$(printf '52:54:00:bd:00:%02x' "$r"); port=$((9800 + r * 10))
  "$LAB" vm $NS "k$r" "$W" --mac "$mac" --disk 6 --mem 1536 --reboot --bmc-port $port --cmd-file "$W/k$r.cmd" >/dev/null
  ip netns exec $NS tests/peers/ipmi/start.sh "$W/k$r-bmc" $port "$W/k$r.cmd" >/dev/null
  PIDS+=("$(cat "$W/k$r-bmc/ipmi_sim.pid")")
  id=$(k machines create --mac "$mac" --hostname "k$r" --power-type ipmi --power-address 127.0.0.1 \
    --power-param power_port=$port --power-param power_user=admin --power-param power_pass=secret --skip-bmc-config true --json \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["system_id"])')
  k machines commission "$id" >/dev/null
  for _ in $(seq 600); do
    st=$(k machines show "$id" --json | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["status"], m["power_state"])')
    [ "$st" = "ready off" ] && break; sleep 1
  done
  t0=$(date +%s.%N)
  k machines deploy "$id" --user-data "$W/user-data" --wait >/dev/null
  t_end=$(date +%s.%N)
  k machines events "$id" --limit 500 --json > "$W/ev-$r.json"
  python3 - "$t0" "$t_end" "$W/ev-$r.json" <<'PY' | tee -a "$W/kiln-runs.txt"
import json, sys, datetime, re
t0, tend = float(sys.argv[1]), float(sys.argv[2])
evs = sorted(json.load(open(sys.argv[3])), key=lambda e: (e["created_at"], e["id"]))
ts = lambda e: datetime.datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")).timestamp()
evs = [e for e in evs if ts(e) >= t0 - 1]
def first(pred, after=0):
    for e in evs:
        if ts(e) >= after and pred(e): return ts(e), e
    return None, None
step = lambda name: (lambda e: e["event_type"] == "deploy_step" and e["description"].startswith(name))
up, _ = first(step("installer: up"))
img, e_img = first(step("image:"))
boot, _ = first(step("bootloader:"))
inst, _ = first(lambda e: e["event_type"] == "os_installed")
pxe2, _ = first(lambda e: e["event_type"] == "ipxe_script" and "local disk" in e["description"], inst or 0)
done, _ = first(lambda e: e["event_type"] == "deployed")
mbs = re.search(r"at (\d+) MB/s", e_img["description"]).group(1) if e_img else "-"
rel = lambda a, b: f"{a - b:.1f}" if a and b else "-"
print(f"total={done - t0:.1f}s | power-on+PXE+environment up {rel(up, t0)}s | disk+partition+image ({mbs} MB/s) {rel(img, up)}s"
      f" | configure+bootloader {rel(boot, img)}s | report+reboot to local-disk script {rel(pxe2, boot)}s"
      f" | first boot to cloud-init done {rel(done, pxe2)}s")
PY
done

echo "== dnsmasq + nginx: the same VM, environment, installer and image (runs: $RUNS)"
kill $KPID; wait $KPID 2>/dev/null || true
B=$W/baseline; mkdir -p "$B/www/metadata/v1/nocloud/t" "$B/tftp" "$B/www/images/${OSQ%/*}"
for f in vmlinuz initrd.gz root.squashfs; do ln -f "$W/images/ephemeral/$f" "$B/www/$f"; done
ln -f "$W/images/os/root.squashfs" "$B/www/images/$OSQ"
cp /usr/lib/ipxe/undionly.kpxe "$B/tftp/"
SIZE=$(stat -c %s "$W/images/os/root.squashfs")
cat > "$B/www/install.ipxe" <<'IPXE'
#!ipxe
kernel http://10.20.0.2:8080/vmlinuz initrd=initrd console=tty0 console=ttyS0,115200 BOOTIF=01-${net0/mac:hexhyp} kiln.url=http://10.20.0.2:8080 kiln.token=t kiln.root=http://10.20.0.2:8080/root.squashfs
initrd --name initrd http://10.20.0.2:8080/initrd.gz
boot
IPXE
printf '#!ipxe\nsanboot --no-describe --drive 0x80\n' > "$B/www/local.ipxe"
cp "$W/user-data" "$B/www/metadata/v1/nocloud/t/user-data"
printf '#cloud-config\nlocale: C.UTF-8\nphone_home:\n  url: http://10.20.0.2:8080/metadata/v1/nocloud/t/phone-home\n  post: [instance_id]\n  tries: 20\n' > "$B/www/metadata/v1/nocloud/t/vendor-data"
cat > "$B/nginx.conf" <<NGINX
worker_processes 2;
pid $B/nginx.pid;
error_log $B/nginx-error.log;
events { worker_connections 1024; }
http {
  log_format t '\$msec \$request_method \$uri \$status';
  access_log $B/access.log t;
  sendfile on;
  client_max_body_size 8m;
  server {
    listen 10.20.0.2:8080;
    root $B/www;
    location = /metadata/v1/meta { default_type application/json; }
    location /metadata/v1/ {
      default_type text/plain;
      if (\$request_method = POST) { return 200 '{}'; }
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
dhcp-boot=tag:!ipxe,undionly.kpxe
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
  mac=$(printf '52:54:00:bd:01:%02x' "$r")
  cat > "$B/www/metadata/v1/meta" <<JSON
{"system_id":"b$r","hostname":"b$r","status":"deploying","boot_id":"b","power_off_by":"machine",
 "deployment":{"deployment_id":"b","instance_id":"i-b$r","target":"disk","storage_layout":"flat","firmware":"bios",
  "boot_disk":"vda","boot_disk_serial":"b$r-d0","image_format":"squashfs","image_path":"/images/$OSQ",
  "image_sha256":"${OSQ%/*}","image_size":$SIZE}}
JSON
  printf 'instance-id: i-b%s-%s\nlocal-hostname: b%s\npublic-keys: ["%s"]\n' "$r" "$RANDOM" "$r" "$(cat "$W/key.pub")" \
    > "$B/www/metadata/v1/nocloud/t/meta-data"
  cp "$B/www/install.ipxe" "$B/www/boot.ipxe"
  t0=$(date +%s.%N)
  pid=$("$LAB" vm $NS "b$r" "$W" --mac "$mac" --disk 6 --mem 1536)   # -no-reboot: QEMU exits at the installer's reboot
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  t1=$(date +%s.%N)
  grep -aq KILN-DEPLOY-INSTALLED "$W/b$r.serial" || { echo "baseline install failed:" >&2; tail -30 "$W/b$r.serial" >&2; exit 1; }
  cp "$B/www/local.ipxe" "$B/www/boot.ipxe"
  mv "$W/b$r.serial" "$W/b$r-install.serial"
  # Phase 2: the same disk, booted (a new QEMU: what the reboot did in Kiln's run).
  qpid=$(ip netns exec $NS bash -c "exec qemu-system-x86_64 -accel tcg -m 1536 -nographic -monitor none \
    -netdev tap,id=n0,ifname=kb${r}0,script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=$mac,bootindex=1 \
    -drive file=$W/b$r-d0.img,if=none,id=d0,format=raw -device virtio-blk-pci,drive=d0,serial=b$r-d0 \
    </dev/null >$W/b$r.serial 2>&1 & echo \$!")
  PIDS+=("$qpid")
  for _ in $(seq 1800); do grep -q "phone-home" "$B/access.log" 2>/dev/null && break; sleep 0.5; done
  t2=$(awk '/phone-home/{print $1; exit}' "$B/access.log")
  kill "$qpid" 2>/dev/null || true
  sed -i '/phone-home/d' "$B/access.log"
  python3 -c "t0,t1,t2=$t0,$t1,$t2; print(f'total={t2-t0:.1f}s | install (power-on to the installer reboot) {t1-t0:.1f}s | first boot to cloud-init done {t2-t1:.1f}s')" \
    | tee -a "$W/base-runs.txt"
done
python3 - "$W/kiln-runs.txt" "$W/base-runs.txt" <<'PY'
import re, sys
k = [float(re.search(r"total=([\d.]+)s", l).group(1)) for l in open(sys.argv[1])]
b = [float(re.search(r"total=([\d.]+)s", l).group(1)) for l in open(sys.argv[2])]
km, bm = sorted(k)[len(k)//2], sorted(b)[len(b)//2]
print(f"== deploy request to Deployed, median: Kiln {km:.1f}s, dnsmasq+nginx {bm:.1f}s, ratio {km/bm:.2f}")
PY
