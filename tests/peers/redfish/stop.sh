#!/bin/bash
# Stop the sushy-emulator started by start.sh DIR (by DIR/sushy.pid).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
F=$1/sushy.pid
[ -s "$F" ] || exit 0
pid=$(cat "$F")
# running and not a zombie (orphans are reaped late here)
alive() { kill -0 "$pid" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]; }
if alive; then
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true   # setsid: pid leads its group
  for _ in $(seq 50); do alive || break; sleep 0.1; done
  if alive; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
fi
rm -f "$F"
