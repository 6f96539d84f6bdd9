#!/usr/bin/env bash
# Installs the Debian packages Kiln's build and tests need (as root, or through sudo), on a fresh
# Debian machine. Called by tests/run.sh (the README's test command) and .ci/run; does nothing when
# everything is there already.
set -euo pipefail
PKGS=(build-essential pkg-config libsqlite3-dev libpq-dev postgresql ca-certificates
  iproute2 curl busybox isc-dhcp-client isc-dhcp-relay tftp-hpa atftp ipxe
  debootstrap squashfs-tools cpio kmod tcpdump
  # power drivers and their peers: libvirt (the virsh driver links it; tests run a private
  # libvirtd), OpenIPMI's ipmi_sim and ipmitool, python3-venv for sushy-emulator (from PyPI)
  libvirt-dev libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients openipmi ipmitool
  python3-venv util-linux
  # deployment end to end: SSH into deployed VMs, the demo's port forward, raw/zstd images
  openssh-client socat zstd e2fsprogs
  # root on iSCSI: the tgt target daemon, XFS for reflink clones
  tgt xfsprogs
  # the web UI's browser tests: Debian's Chromium, driven by Playwright (tests/ui/setup.sh)
  chromium
  # the rack's DNS: dig as the client, dnsmasq (the binary only) as the test's upstream resolver
  bind9-dnsutils dnsmasq-base
  # the rack's package proxy: tinyproxy as the parent proxy its test chains to; openssl's TLS server
  tinyproxy-bin openssl
  # two regions on one PostgreSQL whose clocks disagree: libfaketime sets one region an hour back
  faketime)
# QEMU for the boot tests: qemu-system-x86 replaces a newer (backported) qemu-utils when one is
# installed; installing qemu-utils right after brings back a qemu-img that matches.
QEMU=(qemu-system-x86 ipxe-qemu ovmf)
missing=()
for p in "${PKGS[@]}" "${QEMU[@]}" qemu-utils; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} = 0 ] && exit 0
SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)
echo "tests/deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${QEMU[@]}" >/dev/null
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends qemu-utils >/dev/null
