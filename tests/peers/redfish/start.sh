#!/bin/bash
# Start a Redfish BMC emulator (sushy-tools, fake driver) on http://127.0.0.1:PORT as a background process.
# Usage: start.sh DIR PORT
#   one system: Id/UUID $SUSHY_SYSTEM_ID (default kiln-fake-1), name kiln-fake-1, PowerState Off, boot Hdd
#   basic auth admin/secret (bcrypt htpasswd); /redfish/v1/ itself needs no auth
#   env: SUSHY_VENV   venv to create or reuse (default /var/cache/kiln/sushy-venv)
#        PYTHON       interpreter for a new venv (default python3)
#        SUSHY_INSTANT_POWER=1  make power changes visible at the next GET instead of after the fake
#                     driver's random 1-11 s (no official knob: patches the driver from the config file)
# Writes DIR/sushy.pid, logs to DIR/sushy.log; exits 0 once /redfish/v1/ answers.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR PORT" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"; DIR=$(cd "$1" && pwd); PORT=$2
SUSHY_VERSION=2.2.0
VENV=${SUSHY_VENV:-/var/cache/kiln/sushy-venv}
SYSID=${SUSHY_SYSTEM_ID:-kiln-fake-1}

# create the venv once (flock: parallel starts share one cache)
mkdir -p "$(dirname "$VENV")"
(
  flock 9
  if ! "$VENV/bin/python" -c "import importlib.metadata as m, bcrypt; assert m.version('sushy-tools') == '$SUSHY_VERSION'" 2>/dev/null; then
    echo "creating sushy-tools $SUSHY_VERSION venv in $VENV" >&2
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "sushy-tools==$SUSHY_VERSION" bcrypt >&2
  fi
) 9>"$VENV.lock"

# fresh state every start (the fake driver persists systems in STATE_DIR/fakedriver.sqlite)
"$HERE/stop.sh" "$DIR" >/dev/null 2>&1 || true
rm -rf "$DIR/state"; mkdir -p "$DIR/state"

"$VENV/bin/python" - "$DIR/htpasswd" <<'EOF'
import sys, bcrypt
with open(sys.argv[1], "w") as f:
    f.write("admin:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode() + "\n")
EOF

cat > "$DIR/emulator.conf" <<EOF
# sushy-emulator config (Python, loaded by Flask from_pyfile; only UPPERCASE names become config)
SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = $PORT
SUSHY_EMULATOR_AUTH_FILE = '$DIR/htpasswd'
SUSHY_EMULATOR_STATE_DIR = '$DIR/state'
SUSHY_EMULATOR_FAKE_DRIVER = True
SUSHY_EMULATOR_FAKE_SYSTEMS = [
    {
        'uuid': '$SYSID',
        'name': 'kiln-fake-1',
        'power_state': 'Off',
        'boot_device': 'Hdd',
        'external_notifier': False,
        'nics': [{'mac': '52:54:00:00:00:01', 'ip': '127.0.0.1'}],
    },
]
EOF
if [ "${SUSHY_INSTANT_POWER:-0}" = 1 ]; then
  cat >> "$DIR/emulator.conf" <<'EOF'
# instant power: the fake driver delays by random.randint(1, 11) s; make that 0
import types as _types
import sushy_tools.emulator.resources.systems.fakedriver as _fd
_fd.random = _types.SimpleNamespace(randint=lambda a, b: 0)
EOF
fi

setsid "$VENV/bin/sushy-emulator" --config "$DIR/emulator.conf" \
  </dev/null >"$DIR/sushy.log" 2>&1 &
echo $! > "$DIR/sushy.pid"

# wait (up to ~20 s) for the service root
for _ in $(seq 80); do
  kill -0 "$(cat "$DIR/sushy.pid")" 2>/dev/null || { echo "sushy-emulator exited:" >&2; cat "$DIR/sushy.log" >&2; exit 1; }
  if curl -sf -o /dev/null "http://127.0.0.1:$PORT/redfish/v1/"; then
    echo "sushy-emulator up on http://127.0.0.1:$PORT (pid $(cat "$DIR/sushy.pid")), system /redfish/v1/Systems/$SYSID"
    exit 0
  fi
  sleep 0.25
done
echo "sushy-emulator did not answer on 127.0.0.1:$PORT" >&2; exit 1
