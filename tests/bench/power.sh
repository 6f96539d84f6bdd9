#!/usr/bin/env bash
# Power benchmark (not a test): N power queries of one ipmi_sim BMC, side by side in one run:
#   ipmitool -I lanplus -C 3 ... chassis power status     (what an operator runs by hand; one
#                                                          process and one RMCP+ session per query)
#   kiln machines power ID                                 (the whole Kiln path: CLI → region API →
#                                                          power job → rack long poll → RMCP+ session
#                                                          → result → API answer)
# and the BMC's active sessions afterwards (Kiln closes each session). Runs a release all-in-one
# (DHCP off) on 127.0.0.1; everything is stopped by PID at exit.
#   tests/bench/power.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100}
cargo build --release -q -p region
KILN=$PWD/target/release/kiln
WORK=$(mktemp -d /tmp/kiln-bench-power.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  tests/peers/ipmi/stop.sh "$WORK/bmc" >/dev/null 2>&1 || true
  wait 2>/dev/null || true; rm -rf "$WORK"
}
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RPORT=$(port); HPORT=$(port); TPORT=$(port); BPORT=$(python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
tests/peers/ipmi/start.sh "$WORK/bmc" "$BPORT" >/dev/null

echo "bench-password" | "$KILN" admin create-user admin --admin --password-stdin --data-dir "$WORK/data" 2>/dev/null
export KILN_TOKEN; KILN_TOKEN=$("$KILN" admin create-token admin --data-dir "$WORK/data")
export KILN_URL=http://127.0.0.1:$RPORT
KILN_LOG=warn "$KILN" all-in-one --data-dir "$WORK/data" --listen "127.0.0.1:$RPORT" --no-dhcp --no-ra --no-dns --no-proxy \
  --http-bind "127.0.0.1:$HPORT" --tftp-bind "127.0.0.1:$TPORT" 2>"$WORK/kiln.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "$KILN_URL/healthz" >/dev/null && break; sleep 0.1; done
ID=$("$KILN" machines create --hostname bench1 --power-type ipmi --power-address 127.0.0.1 \
  --power-param "power_port=$BPORT" --power-param power_user=admin --power-param power_pass=secret --json \
  | python3 -c 'import json,sys;print(json.load(sys.stdin)["system_id"])')
"$KILN" machines power "$ID" >/dev/null   # the rack is registered and has taken a job

IPMI=(ipmitool -I lanplus -C 3 -H 127.0.0.1 -p "$BPORT" -U admin -P secret chassis power status)
t() { local s e; s=$(date +%s%N); for _ in $(seq "$N"); do "$@" >/dev/null; done; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
ipmitool_ms=$(t "${IPMI[@]}")
kiln_ms=$(t "$KILN" machines power "$ID")
sessions=$(ipmitool -I lanplus -C 3 -H 127.0.0.1 -p "$BPORT" -U admin -P secret raw 0x06 0x3d 0x00 | awk '{print $3}')
echo "power queries of one ipmi_sim BMC, $N each, sequential:"
printf '  ipmitool lanplus -C 3:   %6d ms  (%s ms/query)\n' "$ipmitool_ms" "$((ipmitool_ms / N))"
printf '  kiln machines power:     %6d ms  (%s ms/query)\n' "$kiln_ms" "$((kiln_ms / N))"
python3 -c "print('  ratio kiln/ipmitool: %.2fx' % ($kiln_ms/$ipmitool_ms))"
echo "  BMC sessions active afterwards (hex, the asking one included): $sessions"
