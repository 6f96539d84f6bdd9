#!/usr/bin/env bash
# Builds Kiln's boot-resource bundle from Debian packages only:
#   ephemeral/vmlinuz       the kernel of linux-image-amd64
#   ephemeral/initrd.gz     busybox-static + the modules in initramfs/modules + initramfs/init
#   ephemeral/root.squashfs debootstrap minbase + packages.txt + Kiln's runner (ephemeral/), zstd
#   os/root.squashfs        the deployable OS (kind os): debootstrap minbase + os-packages.txt, zstd
#   bootloader/{undionly.kpxe,ipxe.efi,snponly.efi}   from the ipxe package
#   bootloader/grub-local.efi  grub (from the OS image) that chainloads a UEFI machine's disk
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
  echo "grub=$(cand grub2-common) cloud-init=$(cand cloud-init)"
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
  for m in proc sys dev/pts dev; do umount "$W/rootfs/$m" "$W/osroot/$m" 2>/dev/null || true; done
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
for f in kiln-commission kiln-deploy kiln-erase; do install -m755 "$HERE/ephemeral/$f" "$W/rootfs/usr/local/sbin/$f"; done
echo "kiln-ephemeral" > "$W/rootfs/etc/hostname"
echo "build $KEY, kernel $KVER, $RELEASE" > "$W/rootfs/etc/kiln-image"
rm -rf "$W"/rootfs/var/cache/apt/archives/*.deb "$W"/rootfs/var/lib/apt/lists/* \
  "$W"/rootfs/usr/share/doc/* "$W"/rootfs/usr/share/man/* "$W"/rootfs/usr/share/info/* \
  "$W"/rootfs/var/log/* "$W"/rootfs/var/cache/ldconfig/aux-cache "$W"/rootfs/etc/machine-id
find "$W/rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
mksquashfs "$W/rootfs" "$W/out/ephemeral/root.squashfs" -comp zstd -noappend -no-progress -quiet >/dev/null
# (mksquashfs takes every timestamp from SOURCE_DATE_EPOCH)

# The deployable OS image has a cache of its own (keyed by its package list and the versions of
# the packages that matter), so a change to the ephemeral environment does not rebuild it.
OSKEY=$( {
  echo "os-format=1 release=$RELEASE kernel=$KPKG=$(cand "$KPKG") grub=$(cand grub2-common) cloud-init=$(cand cloud-init)"
  sha256sum < "$HERE/os-packages.txt"
  sed -n '/^# BEGIN OS IMAGE/,/^# END OS IMAGE/p' "$0" | sha256sum
} | sha256sum | cut -c1-16)
if [ "$USE_CACHE" = 1 ] && [ -f "$CACHE/os-$OSKEY/root.squashfs" ]; then
  say "cached OS image $OSKEY"
else
# BEGIN OS IMAGE
say "deployable OS image: debootstrap $RELEASE + os-packages.txt"
O="$W/osroot"
mkdir -p "$W/os-out"
# debootstrap takes only the base; apt in the chroot resolves the rest (debootstrap's own
# --include cannot order a package set this large: its configure step fails on python3 modules).
debootstrap --variant=minbase "$RELEASE" "$O" "$MIRROR" > "$W/debootstrap-os.log" 2>&1 \
  || { tail -30 "$W/debootstrap-os.log" >&2; echo "build.sh: debootstrap of the OS image failed" >&2; exit 1; }
for m in proc sys dev; do mkdir -p "$O/$m"; mount --bind "/$m" "$O/$m"; done
printf '#!/bin/sh\nexit 101\n' > "$O/usr/sbin/policy-rc.d"; chmod +x "$O/usr/sbin/policy-rc.d"
# The host's package sources (updates and security too), so the OS image gets the same kernel as
# the ephemeral environment (memory deployments boot Kiln's initramfs with the image's modules).
if [ -z "${KILN_MIRROR:-}" ] && ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
  rm -f "$O/etc/apt/sources.list"; cp /etc/apt/sources.list.d/*.sources "$O/etc/apt/sources.list.d/"
else
  printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$RELEASE" "$MIRROR" "$RELEASE" > "$O/etc/apt/sources.list"
fi
cp /etc/resolv.conf "$O/etc/resolv.conf" 2>/dev/null || true
mapfile -t OPKGS < <(grep -vE '^\s*(#|$)' "$HERE/os-packages.txt")
{ chroot "$O" apt-get update -q && DEBIAN_FRONTEND=noninteractive chroot "$O" apt-get install -y -q \
    --no-install-recommends "${OPKGS[@]}" "$KPKG"; } >> "$W/debootstrap-os.log" 2>&1 \
  || { tail -30 "$W/debootstrap-os.log" >&2; echo "build.sh: installing the OS image's packages failed" >&2; exit 1; }
rm -f "$O/usr/sbin/policy-rc.d"
# Root on iSCSI (the same image, booted diskless): the initiator name comes from the iBFT that
# iPXE's sanhook filled (one per machine, never per image), written before iscsid starts; the
# initramfs has the iBFT and iSCSI modules (open-iscsi's hook adds iscsistart).
cat > "$O/etc/systemd/system/kiln-iscsi-initiatorname.service" <<'UNIT'
[Unit]
Description=Kiln: the iSCSI initiator name from the iBFT
DefaultDependencies=no
After=local-fs.target
Before=iscsid.service iscsid.socket open-iscsi.service
ConditionPathExists=/sys/firmware/ibft/initiator/initiator-name
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "InitiatorName=$(cat /sys/firmware/ibft/initiator/initiator-name)" > /etc/iscsi/initiatorname.iscsi'
[Install]
WantedBy=sysinit.target
UNIT
chroot "$O" systemctl enable kiln-iscsi-initiatorname.service >> "$W/debootstrap-os.log" 2>&1
printf '%s\n' iscsi_ibft iscsi_tcp virtio_net virtio_pci e1000 >> "$O/etc/initramfs-tools/modules"
chroot "$O" update-initramfs -u -k all >> "$W/debootstrap-os.log" 2>&1 \
  || { tail -30 "$W/debootstrap-os.log" >&2; echo "build.sh: update-initramfs in the OS image failed" >&2; exit 1; }
chroot "$O" sh -c 'lsinitramfs /boot/initrd.img-*' 2>/dev/null | grep -q 'sbin/iscsistart' \
  || say "warning: the OS image's initramfs has no iscsistart (root on iSCSI will not boot)"
for m in dev sys proc; do umount "$O/$m"; done
OKVER=$(ls "$O/lib/modules" | head -1)
# The image's own kernel and initramfs, for root on iSCSI (iPXE boots them over HTTP). Not
# named *.img: the deploy path reads that as a raw disk image.
cp "$O/boot/vmlinuz-$OKVER" "$W/os-out/vmlinuz"
cp "$O/boot/initrd.img-$OKVER" "$W/os-out/initrd"

[ "$OKVER" = "$KVER" ] || say "warning: OS image kernel $OKVER differs from the ephemeral kernel $KVER (memory deployments need both alike)"
# Console on the serial port and the screen, a one-second menu; kiln-deploy runs update-grub on the target.
cat > "$O/etc/default/grub" <<'GRUB'
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0"
GRUB_DISABLE_OS_PROBER=true
GRUB
# No machine identity in the image: SSH host keys (cloud-init makes them), machine-id (systemd
# makes one at first boot), the iSCSI initiator name (open-iscsi generates one when it reads
# GenerateName=yes), the hostname (cloud-init sets it from Kiln's meta-data).
rm -f "$O"/etc/ssh/ssh_host_* "$O/var/lib/dbus/machine-id" "$O/etc/resolv.conf"
: > "$O/etc/machine-id"
echo "GenerateName=yes" > "$O/etc/iscsi/initiatorname.iscsi"
echo "localhost" > "$O/etc/hostname"
echo "kiln os image $KEY, kernel $OKVER, $RELEASE" > "$O/etc/kiln-image"
# grub-local.efi (bootloader): how a UEFI machine that network-boots first reaches its disk. The
# rack writes the machine's ESP UUID over the placeholder (same length) before serving it.
cat > "$O/tmp/grub-local.cfg" <<'GCFG'
set timeout=0
search --no-floppy --fs-uuid --set=esp KILNESPUUIDPLACEHOLDER00000000000000
if [ -z "$esp" ]; then search --no-floppy --file --set=esp /EFI/BOOT/BOOTX64.EFI; fi
set root=$esp
echo "Kiln: booting the local disk from ESP ($root)"
chainloader /EFI/BOOT/BOOTX64.EFI
boot
GCFG
chroot "$O" grub-mkstandalone -O x86_64-efi -o /tmp/grub-local.efi --compress=no --locales= --fonts= --themes= \
  --install-modules="part_gpt part_msdos fat ext2 search search_fs_file search_fs_uuid chain normal echo test configfile efi_gop efi_uga" \
  --modules="part_gpt part_msdos fat search search_fs_uuid search_fs_file chain echo test" \
  "boot/grub/grub.cfg=/tmp/grub-local.cfg" \
  || { echo "build.sh: grub-mkstandalone failed" >&2; exit 1; }
grep -q KILNESPUUIDPLACEHOLDER "$O/tmp/grub-local.efi" || { echo "build.sh: grub-local.efi lacks the ESP placeholder" >&2; exit 1; }
mv "$O/tmp/grub-local.efi" "$W/os-out/grub-local.efi"
rm -f "$O/tmp/grub-local.cfg"
rm -rf "$O"/var/cache/apt/archives/*.deb "$O"/var/lib/apt/lists/* "$O"/usr/share/doc/* "$O"/usr/share/man/* \
  "$O"/usr/share/info/* "$O"/var/log/*.log "$O"/var/cache/ldconfig/aux-cache
find "$O/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
echo "OKVER=$OKVER OS_BYTES=$(du -sb "$O" | cut -f1)" > "$W/os-out/info"
mksquashfs "$O" "$W/os-out/root.squashfs" -comp zstd -noappend -no-progress -quiet >/dev/null
rm -rf "$O"
rm -rf "${CACHE:?}/os-$OSKEY"; mv "$W/os-out" "$CACHE/os-$OSKEY"

# END OS IMAGE
fi
. "$CACHE/os-$OSKEY/info"
mkdir -p "$W/out/os"
cp "$CACHE/os-$OSKEY/root.squashfs" "$W/out/os/root.squashfs"
cp "$CACHE/os-$OSKEY/vmlinuz" "$CACHE/os-$OSKEY/initrd" "$W/out/os/"
cp "$CACHE/os-$OSKEY/grub-local.efi" "$W/out/bootloader/grub-local.efi"

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
    {"os": "debian", "release": "$RELEASE", "arch": "amd64/generic", "kind": "os",
     "kernel_version": "$OKVER", "installed_bytes": $OS_BYTES, "files": [$(files_json os)]},
    {"os": "ipxe", "release": "$(cand ipxe | tr -c 'A-Za-z0-9.\n-' '-')", "arch": "amd64/generic", "kind": "bootloader",
     "files": [$(files_json bootloader)]}
  ]
}
JSON
rm -rf "${CACHE:?}/$KEY"
mv "$W/out" "$CACHE/$KEY"
say "built $KEY in $(( $(date +%s) - T0 )) s: $(du -sh "$CACHE/$KEY" | cut -f1)"
deliver
