#!/usr/bin/env bash
# Web UI benchmark (not a test): a release region (all-in-one, SQLite, pinned to core 0) with COUNT
# machines created through the API; then the machine list's pages as a logged-in browser gets them
# (session cookie), timed from core 1, beside nginx serving the first page's bytes as a static file
# (the floor) and the JSON API's page of the same size. Stopped by PID at exit.
#   tests/bench/ui.sh [COUNT] [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-10000}
REQUESTS=${2:-50}

command -v nginx >/dev/null || { apt-get install -y -qq nginx >/dev/null; }
cargo build --release -q -p region
KILN=$PWD/target/release/kiln
WORK=$(mktemp -d /tmp/kiln-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() { rc=$?; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ "$rc" = 0 ] || tail -n 20 "$WORK/region.log" >&2; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RPORT=$(port); NPORT=$(port)
echo "bench-password" | "$KILN" admin create-user admin --admin --password-stdin --data-dir "$WORK/data" 2>/dev/null
TOKEN=$("$KILN" admin create-token admin --data-dir "$WORK/data")
KILN_LOG=warn taskset -c 0 "$KILN" all-in-one --data-dir "$WORK/data" --no-dns --no-proxy --listen "127.0.0.1:$RPORT" 2>"$WORK/region.log" &
RPID=$!; PIDS+=("$RPID")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$RPORT/healthz" >/dev/null && break; sleep 0.1; done
B="http://127.0.0.1:$RPORT"

echo "## Web UI benchmark: $COUNT machines ($(nproc) cores, region on core 0, client on core 1, $(date -u +%F))"
taskset -c 1 "$KILN" bench create --url "$B" --token "$TOKEN" --count "$COUNT" --concurrency 16
ID=$(curl -sf -H "Authorization: Bearer $TOKEN" "$B/api/v1/machines?limit=1&offset=$((COUNT / 2))" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["system_id"])')
HOST=$(curl -sf -H "Authorization: Bearer $TOKEN" "$B/api/v1/machines/$ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["hostname"])')

# nginx with the first page's HTML as a static file: the cost of just moving those bytes.
mkdir -p "$WORK/www" && chmod 755 "$WORK/www"
SESSION=$(python3 - "$B" <<'PY'
import sys, urllib.request, urllib.parse, http.cookiejar, re
b = sys.argv[1]
jar = http.cookiejar.CookieJar()
op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
html = op.open(b + "/login").read().decode()
csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
op.open(b + "/login", urllib.parse.urlencode({"username": "admin", "password": "bench-password", "csrf": csrf}).encode())
print(next(c.value for c in jar if c.name == "kiln_session"))
PY
)
curl -sf -b "kiln_session=$SESSION" "$B/machines" -o "$WORK/www/machines.html"
chmod 644 "$WORK/www/machines.html"
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; default_type text/html; server { listen 127.0.0.1:$NPORT; root $WORK/www; } }
NGINX
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK" &
NPID=$!; PIDS+=("$NPID")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$NPORT/machines.html" -o /dev/null && break; sleep 0.1; done

echo bench-password | taskset -c 1 "$KILN" bench get --login admin --login-base "$B" --token "$TOKEN" --requests "$REQUESTS" --pid "$RPID" \
  --url "http://127.0.0.1:$NPORT/machines.html" \
  --url "$B/machines" \
  --url "$B/api/v1/machines?limit=50" \
  --url "$B/machines?q=status%3Anew%20tag%3Abench%20hostname%3Abench-*" \
  --url "$B/machines?sort=-memory&page=$((COUNT / 50))" \
  --url "$B/machines?q=$HOST" \
  --url "$B/machines/$ID"
