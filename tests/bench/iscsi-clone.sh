#!/usr/bin/env bash
# Benchmark: what a root-on-iSCSI clone costs, reflink (XFS) against a full copy (ext4), for a
# 4 GiB golden volume made the way the rack makes it (unsquashfs of the deployable image,
# mkfs.ext4 -d) and clones made with the rack's own commands (`cp --reflink=always`, else
# `cp --reflink=never --sparse=always`). Time and the space each clone takes on the store
# (df before and after). Loop devices made here, removed at exit.
#   sudo tests/bench/iscsi-clone.sh [SQUASHFS]    (default: the OS image of `kiln images build`)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-5}
SQ=${1:-}
if [ -z "$SQ" ]; then
  SQ=$(ls -t /var/cache/kiln/images/os-*/root.squashfs 2>/dev/null | head -1)
fi
[ -f "$SQ" ] || { echo "no OS image squashfs: run kiln images build, or pass one" >&2; exit 1; }
W=$(mktemp -d /tmp/kiln-bclone.XXXX)
LOOPS=()
cleanup() {
  for m in "$W"/mnt-*; do mountpoint -q "$m" && umount "$m"; done
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
mkfs_mount() { # fstype
  truncate -s 24G "$W/$1.img"
  if [ "$1" = xfs ]; then mkfs.xfs -q "$W/$1.img"; else mkfs.ext4 -qF "$W/$1.img"; fi
  local dev; dev=$(losetup --find --show "$W/$1.img"); LOOPS+=("$dev")
  mkdir -p "$W/mnt-$1"; mount "$dev" "$W/mnt-$1"
}
mkfs_mount xfs
mkfs_mount ext4
unsquashfs -q -n -d "$W/tree" "$SQ" >/dev/null
truncate -s 4G "$W/golden.img"
t0=$(date +%s%N)
mkfs.ext4 -q -F -L kiln-iscsi -d "$W/tree" "$W/golden.img"
echo "golden: 4 GiB ext4 from $(du -sh "$W/tree" | cut -f1) of files in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
rm -rf "$W/tree"
used_kib() { df --output=used -k "$1" | tail -1; }
for fs in xfs ext4; do
  M=$W/mnt-$fs
  cp --sparse=always "$W/golden.img" "$M/golden.img"; sync
  if [ $fs = xfs ]; then how=(--reflink=always); else how=(--reflink=never --sparse=always); fi
  times=(); spaces=()
  for i in $(seq "$N"); do
    sync; before=$(used_kib "$M")
    t0=$(date +%s%N)
    cp "${how[@]}" -- "$M/golden.img" "$M/vol$i.img"
    sync
    times+=($(( ($(date +%s%N) - t0) / 1000000 )))
    spaces+=($(( $(used_kib "$M") - before )))
  done
  med() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
  echo "$fs ${how[*]}: clone median $(med "${times[@]}") ms (all: ${times[*]}), store space per clone median $(( $(med "${spaces[@]}") / 1024 )) MiB"
done
