#!/bin/bash
# ipmi_sim "chassis_control" program: the power/boot backend of one simulated BMC.
# ipmi_sim runs it through popen() as:
#   chassis.sh DIR get power|boot ...      -> prints "power:0|1", "boot:<dev>" lines
#   chassis.sh DIR set power "1"|reset "1"|shutdown "1"|boot "pxe"|identify ...
# (boot devices ipmi_sim passes: none pxe default cdrom bios; `bootdev disk` arrives as "default").
# State: DIR/chassis/{power,boot}; every set is appended to DIR/chassis.log.
# If DIR/qemu.cmd exists, power 1 runs it (bash, setsid, in the background, pid in DIR/qemu.pid,
# env BOOTDEV=<boot dev>), power 0 kills its process group, and power state = kill -0 of that pid.
# ipmi_sim blocks while this runs and reads stdout until EOF: children must not inherit stdout.
set -euo pipefail
DIR=$1; op=$2; shift 2
S=$DIR/chassis; mkdir -p "$S"
QCMD=$DIR/qemu.cmd; QPID=$DIR/qemu.pid

# alive = exists and not a zombie (PID 1 here reaps orphans ~1 s late, so kill -0 alone lies)
alive() {
  local pid st
  [ -s "$QPID" ] && pid=$(cat "$QPID") && kill -0 "$pid" 2>/dev/null || return 1
  st=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) || return 1   # comm has no spaces here
  [ "$st" != Z ]
}
power() { if [ -f "$QCMD" ]; then alive && echo 1 || echo 0; else cat "$S/power" 2>/dev/null || echo 0; fi; }
boot() { cat "$S/boot" 2>/dev/null || echo default; }

start_vm() {
  alive && return 0
  # close fds inherited from ipmi_sim (its UDP/TCP sockets have no CLOEXEC: the VM would keep
  # the BMC ports open), then setsid (no fork: $! leads the new session/process group)
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true
    done
    BOOTDEV=$(boot) exec setsid bash "$QCMD" </dev/null >>"$DIR/qemu.log" 2>&1
  ) </dev/null >/dev/null 2>&1 &
  echo $! > "$QPID"
}
stop_vm() {
  if alive; then
    local pid; pid=$(cat "$QPID")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 40); do alive || break; sleep 0.02; done    # QEMU/TCG exits in ~0.1-0.3 s
    if alive; then
      kill -KILL -- "-$pid" 2>/dev/null || true
      for _ in $(seq 25); do alive || break; sleep 0.02; done
    fi
  fi
  rm -f "$QPID"
}
set_power() {
  if [ -f "$QCMD" ]; then
    if [ "$1" = 1 ]; then start_vm; else stop_vm; fi
  fi
  echo "$1" > "$S/power"
}

case "$op" in
  get)
    for p in "$@"; do
      case "$p" in
        power) echo "power:$(power)" ;;
        boot) echo "boot:$(boot)" ;;
        *) echo "bad parm $p" >&2; exit 1 ;;
      esac
    done ;;
  set)
    echo "set $*" >> "$DIR/chassis.log"
    while [ $# -ge 2 ]; do
      p=$1; v=$2; shift 2
      case "$p" in
        power) set_power "$v" ;;
        reset) if [ "$(power)" = 1 ]; then set_power 0; set_power 1; fi ;;   # hard reset: only when on
        shutdown) set_power 0 ;;                                              # soft-off (no ACPI here)
        boot) echo "$v" > "$S/boot" ;;
        identify) : ;;
        *) echo "bad parm $p" >&2; exit 1 ;;
      esac
    done ;;
  *) echo "bad op $op" >&2; exit 1 ;;
esac
exit 0
