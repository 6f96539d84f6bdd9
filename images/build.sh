#!/usr/bin/env bash
# Builds Kiln's boot-resource bundle from Debian packages only:
#   ephemeral/vmlinuz       the kernel of linux-image-amd64
#   ephemeral/initrd.gz     busybox-static + the modules in initramfs/modules + initramfs/init
#   ephemeral/root.squashfs debootstrap minbase + packages.txt + Kiln's runner (ephemeral/), zstd
#   bootloader/{undionly.kpxe,ipxe.efi,snponly.efi}   from the ipxe package
#   manifest.json           os, release, arch, kind, files (name, path, sha256, size) per resource
#
# Usage: build.sh --output DIR [--cache-dir DIR] [--release bookworm] [--mirror URL] [--no-cache]
# Needs root (debootstrap), debootstrap, squashfs-tools, cpio, kmod, apt-get, dpkg-deb.
# The build is cached under --cache-dir by a key of this directory's files, the release and the
# candidate versions of the kernel, busybox and iPXE packages: a second build with the same inputs
# copies the cached bundle. Usually called by `kiln images build`.
set -euo pipefail
umask 022

OUT=
CACHE=${KILN_IMAGE_CACHE:-/var/cache/kiln/images}
RELEASE=${KILN_RELEASE:-bookworm}
MIRROR=${KILN_MIRROR:-}
USE_CACHE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --output) OUT=$2; shift 2 ;;
    --cache-dir) CACHE=$2; shift 2 ;;
    --release) RELEASE=$2; shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    --no-cache) USE_CACHE=0; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || { echo "build.sh: --output DIR is required" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "build.sh: debootstrap needs root; run as root" >&2; exit 2; }
for t in debootstrap mksquashfs cpio depmod modprobe apt-get apt-cache dpkg-deb gzip sha256sum flock; do
  command -v "$t" >/dev/null || { echo "build.sh: '$t' is missing (apt-get install debootstrap squashfs-tools cpio kmod)" >&2; exit 2; }
done
HERE=$(cd "$(dirname "$0")" && pwd)
say() { echo "[kiln images] $*" >&2; }

# The Debian mirror the host already uses, unless told otherwise.
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -hE '^\s*(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -1 || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

# The kernel package behind the linux-image-amd64 metapackage.
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$KPKG" ] || { echo "build.sh: apt knows no linux-image-amd64 (run apt-get update)" >&2; exit 2; }
cand() { apt-cache policy "$1" | awk '/Candidate:/{print $2}'; }
KEY=$( {
  echo "release=$RELEASE kernel=$KPKG=$(cand "$KPKG") busybox=$(cand busybox-static) ipxe=$(cand ipxe)"
  (cd "$HERE" && find . -type f ! -name '*.md' | LC_ALL=C sort | xargs sha256sum)
} | sha256sum | cut -c1-16)

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9   # one build at a time; the second waits and then finds the first one's result

deliver() {
  rm -rf "$OUT"; mkdir -p "$OUT"
  cp -a "$CACHE/$KEY/." "$OUT/"
  say "bundle $KEY in $OUT"
}
if [ "$USE_CACHE" = 1 ] && [ -f "$CACHE/$KEY/manifest.json" ]; then
  say "cached build $KEY (inputs unchanged)"
  deliver; exit 0
fi

W=$(mktemp -d "$CACHE/.build-XXXXXX")
cleanup() {
  for m in proc sys dev/pts dev; do umount "$W/rootfs/$m" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600}
T0=$(date +%s)

say "downloading $KPKG, busybox-static, ipxe"
mkdir -p "$W/debs" "$W/kernel" "$W/busybox" "$W/ipxe" "$W/out/ephemeral" "$W/out/bootloader"
(cd "$W/debs" && apt-get download -q "$KPKG" busybox-static ipxe >/dev/null 2>&1) \
  || { echo "build.sh: apt-get download failed (is the package index current?)" >&2; exit 1; }
dpkg-deb -x "$W"/debs/linux-image-*.deb "$W/kernel"
dpkg-deb -x "$W"/debs/busybox-static_*.deb "$W/busybox"
dpkg-deb -x "$W"/debs/ipxe_*.deb "$W/ipxe"
KVER=$(ls "$W/kernel/lib/modules" | head -1)
depmod -b "$W/kernel" "$KVER"
cp "$W/kernel/boot/vmlinuz-$KVER" "$W/out/ephemeral/vmlinuz"
for f in undionly.kpxe ipxe.efi snponly.efi; do cp "$W/ipxe/usr/lib/ipxe/$f" "$W/out/bootloader/$f"; done

say "initramfs for $KVER"
I="$W/initramfs"
mkdir -p "$I/bin" "$I/lib/modules" "$I/proc" "$I/sys" "$I/dev" "$I/run" "$I/tmp" "$I/newroot" "$I/etc"
cp "$W/busybox/bin/busybox" "$I/bin/busybox"
ln -s busybox "$I/bin/sh"
install -m755 "$HERE/initramfs/init" "$I/init"
install -m755 "$HERE/initramfs/udhcpc.script" "$I/udhcpc.script"
: > "$I/modules.list"
grep -vE '^\s*(#|$)' "$HERE/initramfs/modules" | while read -r m; do
  if ! deps=$(modprobe -d "$W/kernel" -S "$KVER" --show-depends "$m" 2>/dev/null); then
    say "warning: kernel $KVER has no module $m; skipped"; continue
  fi
  echo "$deps" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" "$I/lib/modules/"
  basename "$ko" >> "$I/modules.list"
done
find "$I" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$I" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 --reproducible) | gzip -n -9 > "$W/out/ephemeral/initrd.gz"

say "root filesystem: debootstrap $RELEASE from $MIRROR"
PKGS=$(grep -vE '^\s*(#|$)' "$HERE/packages.txt" | paste -sd, -)
debootstrap --variant=minbase --include="$PKGS" "$RELEASE" "$W/rootfs" "$MIRROR" > "$W/debootstrap.log" 2>&1 \
  || { tail -30 "$W/debootstrap.log" >&2; echo "build.sh: debootstrap failed" >&2; exit 1; }
install -m755 "$HERE/ephemeral/kiln-init" "$W/rootfs/usr/local/sbin/kiln-init"
install -m755 "$HERE/ephemeral/kiln-commission" "$W/rootfs/usr/local/sbin/kiln-commission"
echo "kiln-ephemeral" > "$W/rootfs/etc/hostname"
echo "build $KEY, kernel $KVER, $RELEASE" > "$W/rootfs/etc/kiln-image"
rm -rf "$W"/rootfs/var/cache/apt/archives/*.deb "$W"/rootfs/var/lib/apt/lists/* \
  "$W"/rootfs/usr/share/doc/* "$W"/rootfs/usr/share/man/* "$W"/rootfs/usr/share/info/* \
  "$W"/rootfs/var/log/* "$W"/rootfs/var/cache/ldconfig/aux-cache "$W"/rootfs/etc/machine-id
find "$W/rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
mksquashfs "$W/rootfs" "$W/out/ephemeral/root.squashfs" -comp zstd -noappend -no-progress -quiet >/dev/null
# (mksquashfs takes every timestamp from SOURCE_DATE_EPOCH)

say "manifest"
files_json() {
  local dir=$1 first=1
  for f in "$W/out/$dir"/*; do
    [ $first = 1 ] || printf ','
    first=0
    printf '{"name":"%s","path":"%s/%s","sha256":"%s","size":%s}' \
      "$(basename "$f")" "$dir" "$(basename "$f")" "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")"
  done
}
cat > "$W/out/manifest.json" <<JSON
{
  "format": 1,
  "build_key": "$KEY",
  "resources": [
    {"os": "debian", "release": "$RELEASE", "arch": "amd64/generic", "kind": "ephemeral",
     "kernel_version": "$KVER", "files": [$(files_json ephemeral)]},
    {"os": "ipxe", "release": "$(cand ipxe | tr -c 'A-Za-z0-9.\n-' '-')", "arch": "amd64/generic", "kind": "bootloader",
     "files": [$(files_json bootloader)]}
  ]
}
JSON
rm -rf "${CACHE:?}/$KEY"
mv "$W/out" "$CACHE/$KEY"
say "built $KEY in $(( $(date +%s) - T0 )) s: $(du -sh "$CACHE/$KEY" | cut -f1)"
deliver
