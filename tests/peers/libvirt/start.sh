#!/bin/bash
# Start a private libvirtd (qemu:///system driver, TCG guests) as a plain background process.
# Usage: start.sh DIR            (needs root, unshare and overlayfs; no systemd, no dbus)
# Prints the URI to use:  qemu:///system?socket=DIR/sock/libvirt-sock
#
# How it is isolated: libvirtd runs in its own mount namespace with overlays over /etc, /run and /var
# whose upper dirs are DIR/ov/{etc,run,var}/up, so its config, state, caches and logs live in DIR and
# the host's files stay untouched. Inside, it gets /etc/libvirt/qemu.conf (run QEMU as root, no
# cgroups, no security driver, stdio to files: no virtlogd) and a libvirt-qemu passwd/group entry
# (the driver looks that compiled-in user up before reading qemu.conf; Debian's
# libvirt-daemon-system, which would create it, is not installed).
# env LIBVIRT_CAPS_CACHE: dir to keep libvirt's QEMU capabilities cache between starts
#   (default /var/cache/kiln/libvirt-caps-tcg; libvirt re-probes when QEMU changes, not when
#   /dev/kvm does: this cache holds the TCG-only view)
# Gotchas: use <domain type='qemu'> (/dev/kvm is hidden from it: TCG only, on every host); guest files written by QEMU under /etc, /run or
# /var land in the overlay, not on the host; domain logs: DIR/ov/var/up/log/libvirt/qemu/NAME.log.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"; DIR=$(cd "$1" && pwd)
URI="qemu:///system?socket=$DIR/sock/libvirt-sock"
CAPS=${LIBVIRT_CAPS_CACHE:-/var/cache/kiln/libvirt-caps-tcg}
CAPS_IN=$DIR/ov/var/up/cache/libvirt/qemu/capabilities

# fresh state every start
"$HERE/stop.sh" "$DIR" >/dev/null 2>&1 || true
rm -rf "$DIR/ov" "$DIR/sock"
mkdir -p "$DIR/sock" "$DIR/ov/etc/up/libvirt"
for d in etc run var; do mkdir -p "$DIR/ov/$d/up" "$DIR/ov/$d/work"; done
# seed the capabilities cache (saves the ~8 s QEMU probe on the first connection)
if [ -d "$CAPS" ]; then mkdir -p "$CAPS_IN"; cp -p "$CAPS"/*.xml "$CAPS_IN"/ 2>/dev/null || true; fi

cat > "$DIR/ov/etc/up/libvirt/qemu.conf" <<'EOF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
EOF
cat > "$DIR/libvirtd.conf" <<EOF
unix_sock_dir = "$DIR/sock"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$DIR/libvirtd.log"
EOF
: > "$DIR/libvirtd.log"

# runs inside the new mount namespace, then becomes libvirtd (same pid as unshare)
cat > "$DIR/ns.sh" <<'EOF'
set -euo pipefail
DIR=$1
for d in etc run var; do
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$DIR/ov/$d/up,workdir=$DIR/ov/$d/work" "/$d"
done
# TCG only, on hosts with and without KVM: this libvirtd gets a /dev without kvm (the host's other
# nodes bound in). A /dev/kvm that exists but does not work would make libvirt re-probe QEMU on
# every call; one that is absent is simply "no KVM".
if [ -e /dev/kvm ]; then
  mkdir -p "$DIR/hostdev"; mount --rbind /dev "$DIR/hostdev"
  mount -t tmpfs -o mode=755 tmpfs /dev
  for e in "$DIR"/hostdev/*; do
    n=${e##*/}; [ "$n" = kvm ] && continue
    # the pty multiplexer must sit beside the devpts it serves
    if [ "$n" = ptmx ]; then ln -s pts/ptmx /dev/ptmx; continue; fi
    if [ -L "$e" ]; then cp -P "$e" "/dev/$n"
    elif [ -d "$e" ]; then mkdir "/dev/$n"; mount --rbind "$e" "/dev/$n"
    else : > "/dev/$n"; mount --bind "$e" "/dev/$n"; fi
  done
fi
getent passwd libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >> /etc/passwd
getent group libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:' >> /etc/group
exec libvirtd -f "$DIR/libvirtd.conf" -p "$DIR/libvirtd.daemon.pid"
EOF

setsid unshare -m --propagation private bash "$DIR/ns.sh" "$DIR" </dev/null >"$DIR/libvirtd.out" 2>&1 &
echo $! > "$DIR/libvirtd.pid"

# wait (up to ~60 s): the first connection probes QEMU capabilities (~8 s here)
for _ in $(seq 120); do
  kill -0 "$(cat "$DIR/libvirtd.pid")" 2>/dev/null || { echo "libvirtd exited:" >&2; cat "$DIR/libvirtd.out" "$DIR/libvirtd.log" >&2; exit 1; }
  if [ -S "$DIR/sock/libvirt-sock" ] && virsh -c "$URI" version >/dev/null 2>&1; then
    readlink "/proc/$(cat "$DIR/libvirtd.pid")/ns/mnt" > "$DIR/mntns"   # stop.sh kills what runs in it
    mkdir -p "$CAPS" && cp -p "$CAPS_IN"/*.xml "$CAPS"/ 2>/dev/null || true
    echo "$URI"
    exit 0
  fi
  sleep 0.5
done
echo "libvirtd did not answer at $URI" >&2; exit 1
