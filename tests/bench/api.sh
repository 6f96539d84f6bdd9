#!/usr/bin/env bash
# API benchmark (not a test): a release region on SQLite (or PostgreSQL with DATABASE_URL=...) with
# COUNT machines created through the API; then GET /api/v1/machines for all of them, side by side
# with nginx serving the same JSON bytes as a static file. Everything runs on 127.0.0.1 and is
# stopped by PID at exit.
#   tests/bench/api.sh [COUNT] [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-10000}
REQUESTS=${2:-30}

command -v nginx >/dev/null || { apt-get install -y -qq nginx >/dev/null; }
cargo build --release -q -p region
KILN=$PWD/target/release/kiln
WORK=$(mktemp -d /tmp/kiln-bench.XXXXXX)
chmod 755 "$WORK"   # nginx workers run unprivileged
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; cp "$WORK/region.log" /tmp/api-region.log 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RPORT=$(port); NPORT=$(port)
DBARGS=(--data-dir "$WORK/data")
[ -n "${DATABASE_URL:-}" ] && DBARGS+=(--database-url "$DATABASE_URL")

echo "bench-password" | "$KILN" admin create-user admin --admin --password-stdin "${DBARGS[@]}" 2>/dev/null
TOKEN=$("$KILN" admin create-token admin "${DBARGS[@]}")
env ${BENCH_ENV:-} KILN_LOG=warn taskset -c 0 "$KILN" all-in-one "${DBARGS[@]}" --no-dns --no-proxy --no-dhcp --no-ra --tftp-bind 127.0.0.1:0 --listen "127.0.0.1:$RPORT" 2>"$WORK/region.log" &
RPID=$!; PIDS+=("$RPID")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$RPORT/healthz" >/dev/null && break; sleep 0.1; done

echo "## API benchmark: $COUNT machines ($(nproc) cores, $(date -u +%F))"
taskset -c 1 "$KILN" bench create --url "http://127.0.0.1:$RPORT" --token "$TOKEN" --count "$COUNT" --concurrency 16

echo "region VmRSS after creating them: $(awk '/VmRSS/{print $2, $3}' /proc/$RPID/status)"
mkdir -p "$WORK/www" && chmod 755 "$WORK/www"
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$RPORT/api/v1/machines?limit=$COUNT" -o "$WORK/www/machines.json"
chmod 644 "$WORK/www/machines.json"
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  default_type application/json;
  server { listen 127.0.0.1:$NPORT; root $WORK/www; }
}
NGINX
taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK" &
NPID=$!; PIDS+=("$NPID")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$NPORT/machines.json" -o /dev/null && break; sleep 0.1; done

taskset -c 1 "$KILN" bench get --token "$TOKEN" --requests "$REQUESTS" --pid "$RPID" \
  --url "http://127.0.0.1:$NPORT/machines.json" \
  --url "http://127.0.0.1:$RPORT/api/v1/machines?limit=$COUNT" \
  --url "http://127.0.0.1:$RPORT/api/v1/machines?limit=100" \
  --url "http://127.0.0.1:$RPORT/api/v1/machines?status=ready&limit=100"
