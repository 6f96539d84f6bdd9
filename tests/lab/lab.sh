#!/usr/bin/env bash
# Kiln's virtual lab: a network namespace with a provisioning bridge, and QEMU (TCG) machines that
# PXE boot on it. Used by the end-to-end tests (region/tests/integration/e2e.rs) and by the README's
# demo (tests/demo.sh). Everything it makes lives inside the namespace and is removed by `down`,
# which kills the namespace's processes by PID; no host interface or route is touched.
#
#   lab.sh up NS                     netns NS, bridge br0 10.20.0.2/24 + fd20::2/64, lo up
#   lab.sh vm NS NAME DIR [options]  start a VM in the background; prints its PID
#       --mac MAC          boot NIC's MAC (required)
#       --mac2 MAC         a second NIC on the same bridge
#       --nic MODEL        virtio-net-pci (default) or e1000
#       --uefi             OVMF firmware (q35) instead of SeaBIOS
#       --disk GIB         a virtio disk of that size, serial NAME-dK (repeatable)
#       --nvme GIB         an NVMe drive of that size, serial NAME-nK (repeatable)
#       --mem MIB          memory (default 1024)    --cpus N   (default 1)
#       --reboot           a guest reboot restarts the VM (default: QEMU exits, as a power-off)
#       --bmc-port PORT    attach to ipmi_sim's in-band VM port (PORT+1): the guest sees /dev/ipmi0
#       --cmd-file FILE    write the QEMU command to FILE instead of starting it (for a BMC's
#                          chassis program: tests/peers/ipmi/start.sh DIR PORT FILE, inside NS)
#     Files: DIR/NAME.serial (firmware + kernel console), DIR/NAME.pid, DIR/NAME-dK.img,
#            DIR/NAME-nK.img
#   lab.sh capture NS DIR            tcpdump on br0 into DIR/lab.pcap (PID in DIR/tcpdump.pid)
#   lab.sh down NS                   kill every process in NS (by PID), delete NS
set -euo pipefail

cmd=${1:-}; shift || true
need_ns() { [ -n "${1:-}" ] || { echo "lab.sh $cmd: give the namespace name" >&2; exit 2; }; }

case "$cmd" in
up)
  NS=${1:-}; need_ns "$NS"
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip -n "$NS" link add br0 type bridge stp_state 0 forward_delay 0
  ip -n "$NS" addr add 10.20.0.2/24 dev br0
  ip -n "$NS" addr add fd20::2/64 dev br0 nodad
  ip -n "$NS" link set br0 up
  ;;
vm)
  NS=${1:-}; NAME=${2:-}; DIR=${3:-}; shift 3 || { echo "usage: lab.sh vm NS NAME DIR --mac MAC ..." >&2; exit 2; }
  MAC=; MAC2=; NIC=virtio-net-pci; UEFI=0; MEM=1024; CPUS=1; DISKS=(); NVMES=(); BMC_PORT=; CMD_FILE=; REBOOT=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --mac) MAC=$2; shift 2 ;;
      --mac2) MAC2=$2; shift 2 ;;
      --nic) NIC=$2; shift 2 ;;
      --uefi) UEFI=1; shift ;;
      --disk) DISKS+=("$2"); shift 2 ;;
      --nvme) NVMES+=("$2"); shift 2 ;;
      --mem) MEM=$2; shift 2 ;;
      --cpus) CPUS=$2; shift 2 ;;
      --bmc-port) BMC_PORT=$2; shift 2 ;;
      --cmd-file) CMD_FILE=$2; shift 2 ;;
      --reboot) REBOOT=1; shift ;;
      *) echo "lab.sh vm: unknown option $1" >&2; exit 2 ;;
    esac
  done
  [ -n "$MAC" ] || { echo "lab.sh vm: --mac is required" >&2; exit 2; }
  mkdir -p "$DIR"
  args=(-name "$NAME" -accel tcg -m "$MEM" -smp "$CPUS" -nographic -monitor none)
  [ "$REBOOT" = 1 ] || args+=(-no-reboot)
  if [ "$UEFI" = 1 ]; then
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "$DIR/$NAME-vars.fd"
    args+=(-machine q35
      -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
      -drive "if=pflash,format=raw,unit=1,file=$DIR/$NAME-vars.fd")
  fi
  n=0
  for m in "$MAC" $MAC2; do
    # Tap names: at most 15 characters, unique per VM and NIC.
    tap="k$(echo "$NAME" | tr -cd 'a-zA-Z0-9' | tail -c 11)$n"
    ip -n "$NS" tuntap add dev "$tap" mode tap
    ip -n "$NS" link set "$tap" master br0
    ip -n "$NS" link set "$tap" up
    boot=; [ $n = 0 ] && boot=",bootindex=1"
    args+=(-netdev "tap,id=n$n,ifname=$tap,script=no,downscript=no" -device "$NIC,netdev=n$n,mac=$m$boot")
    n=$((n + 1))
  done
  k=0
  for g in "${DISKS[@]}"; do
    img="$DIR/$NAME-d$k.img"
    rm -f "$img"; truncate -s "${g}G" "$img"
    args+=(-drive "file=$img,if=none,id=d$k,format=raw" -device "virtio-blk-pci,drive=d$k,serial=$NAME-d$k")
    k=$((k + 1))
  done
  k=0
  for g in "${NVMES[@]}"; do
    img="$DIR/$NAME-n$k.img"
    rm -f "$img"; truncate -s "${g}G" "$img"
    args+=(-drive "file=$img,if=none,id=nv$k,format=raw" -device "nvme,drive=nv$k,serial=$NAME-n$k")
    k=$((k + 1))
  done
  if [ -n "$BMC_PORT" ]; then
    # An in-band BMC: ipmi_sim's VM port (tests/peers/ipmi/start.sh listens on PORT+1).
    args+=(-chardev "socket,id=ipmi0,host=127.0.0.1,port=$((BMC_PORT + 1)),reconnect=10"
      -device ipmi-bmc-extern,chardev=ipmi0,id=bmc0 -device isa-ipmi-bt,bmc=bmc0)
  fi
  if [ -n "$CMD_FILE" ]; then
    # Powered by a BMC: write the command for its chassis program (run inside NS) instead.
    { printf 'exec qemu-system-x86_64'; printf ' %q' "${args[@]}"
      printf ' </dev/null >>%q 2>&1\n' "$DIR/$NAME.serial"; } > "$CMD_FILE"
    exit 0
  fi
  ip netns exec "$NS" qemu-system-x86_64 "${args[@]}" </dev/null >"$DIR/$NAME.serial" 2>&1 &
  echo $! > "$DIR/$NAME.pid"
  echo $!
  ;;
capture)
  NS=${1:-}; DIR=${2:-}; need_ns "$NS"
  mkdir -p "$DIR"
  ip netns exec "$NS" tcpdump -i br0 -n -s 512 -U -w "$DIR/lab.pcap" >/dev/null 2>&1 </dev/null &
  echo $! > "$DIR/tcpdump.pid"
  ;;
down)
  NS=${1:-}; need_ns "$NS"
  if ip netns list | grep -qw "$NS"; then
    for p in $(ip netns pids "$NS"); do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 40); do [ -z "$(ip netns pids "$NS")" ] && break; sleep 0.25; done
    for p in $(ip netns pids "$NS"); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$NS"
  fi
  ;;
*)
  sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
