#!/bin/bash
# Stop the BMC started by start.sh DIR: ipmi_sim and the VM (if any), by their pid files.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$1

# running and not a zombie (orphans are reaped late here)
alive() { kill -0 "$1" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# kill PID (and its process group, when it leads one); wait up to 5 s, then SIGKILL
stop_pid() {
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}
stop_pid "$DIR/qemu.pid"
stop_pid "$DIR/ipmi_sim.pid"
