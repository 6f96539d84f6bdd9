#!/bin/bash
# Start an ipmi_sim LAN BMC on 127.0.0.1:PORT (UDP) as a plain background process.
# Usage: start.sh DIR PORT [QEMU_CMD_FILE]
#   users: 1 = anonymous (""/"test", user priv), 2 = admin/secret (admin priv); cipher suites 0-8 (use -C 3)
#   power/boot handled by chassis.sh (state in DIR/chassis/, set calls logged to DIR/chassis.log)
#   QEMU_CMD_FILE (optional): bash script/command line started on power on, killed on power off
#     (prefer `exec qemu-system-x86_64 ...`; $BOOTDEV holds the IPMI boot device: pxe|default|cdrom|bios|none)
#   In-band BMC for that VM: ipmi_sim listens on 127.0.0.1:PORT+1 (TCP, VM codec); add to QEMU:
#     -chardev socket,id=ipmi0,host=127.0.0.1,port=$((PORT+1)),reconnect=10
#     -device ipmi-bmc-extern,chardev=ipmi0,id=bmc0 -device isa-ipmi-bt,bmc=bmc0
# Writes DIR/ipmi_sim.pid, logs to DIR/ipmi_sim.log; exits 0 once the BMC answers over lanplus.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR PORT [QEMU_CMD_FILE]" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"; DIR=$(cd "$1" && pwd); PORT=$2; QFILE=${3:-}
case "$DIR" in *[[:space:]\"\']*) echo "DIR must not contain spaces or quotes" >&2; exit 2 ;; esac

# fresh state every start (a BMC left running here is stopped first)
"$HERE/stop.sh" "$DIR" >/dev/null 2>&1 || true
rm -rf "$DIR/state" "$DIR/chassis" "$DIR/qemu.cmd" "$DIR/qemu.pid"
mkdir -p "$DIR/state" "$DIR/chassis"
: > "$DIR/chassis.log"; : > "$DIR/qemu.log"
[ -n "$QFILE" ] && cp "$QFILE" "$DIR/qemu.cmd"

cat > "$DIR/lan.conf" <<EOF
name "kiln-bmc"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 $PORT
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  serial 15 127.0.0.1 $((PORT + 1)) codec VM
  chassis_control "$HERE/chassis.sh $DIR"
  #    num enabled name    password priv  max-sessions auths
  user 1   true    ""      "test"   user  10 none md2 md5 straight
  user 2   true    "admin" "secret" admin 10 none md2 md5 straight
EOF
# mc_setbmc is required (crash / "No bmc_ipmb specified" without it)
cat > "$DIR/sim.emu" <<'EOF'
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
EOF

setsid ipmi_sim -c "$DIR/lan.conf" -f "$DIR/sim.emu" -s "$DIR/state" -n \
  </dev/null >"$DIR/ipmi_sim.log" 2>&1 &
echo $! > "$DIR/ipmi_sim.pid"

# wait (up to ~15 s) until the BMC answers an authenticated RMCP+ request
for _ in $(seq 30); do
  kill -0 "$(cat "$DIR/ipmi_sim.pid")" 2>/dev/null || { echo "ipmi_sim exited:" >&2; cat "$DIR/ipmi_sim.log" >&2; exit 1; }
  if ipmitool -I lanplus -C 3 -H 127.0.0.1 -p "$PORT" -U admin -P secret -N 1 -R 1 \
       chassis power status >/dev/null 2>&1; then
    echo "ipmi_sim up on 127.0.0.1:$PORT (pid $(cat "$DIR/ipmi_sim.pid"))"
    exit 0
  fi
  sleep 0.5
done
echo "ipmi_sim did not answer on 127.0.0.1:$PORT" >&2; exit 1
