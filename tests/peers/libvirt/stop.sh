#!/bin/bash
# Stop the libvirtd started by start.sh DIR: destroy its running domains, stop libvirtd, then kill
# whatever is left in its private mount namespace (QEMU outlives libvirtd otherwise).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$(cd "$1" 2>/dev/null && pwd) || exit 0
URI="qemu:///system?socket=$DIR/sock/libvirt-sock"
F=$DIR/libvirtd.pid

# running and not a zombie (orphans are reaped late here)
alive() { kill -0 "$1" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }

[ -s "$F" ] || exit 0
pid=$(cat "$F")
if alive "$pid"; then
  for dom in $(timeout 20 virsh -c "$URI" list --name 2>/dev/null || true); do
    timeout 20 virsh -c "$URI" destroy "$dom" >/dev/null 2>&1 || true
  done
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
fi
# leftovers in the namespace recorded by start.sh (e.g. QEMU of a domain destroy missed)
if [ -s "$DIR/mntns" ]; then
  ns=$(cat "$DIR/mntns")
  [ "$ns" = "$(readlink /proc/self/ns/mnt)" ] && ns=none   # never sweep our own namespace
  [ "$ns" = none ] || for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && kill -KILL "${p#/proc/}" 2>/dev/null || true
  done
fi
# keep QEMU capabilities probed during this run for the next start (see start.sh)
CAPS=${LIBVIRT_CAPS_CACHE:-/var/cache/kiln/libvirt-caps-tcg}
if [ -d "$CAPS" ]; then cp -p "$DIR"/ov/var/up/cache/libvirt/qemu/capabilities/*.xml "$CAPS"/ 2>/dev/null || true; fi
rm -f "$F" "$DIR/mntns"
