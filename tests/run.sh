#!/usr/bin/env bash
# Runs Kiln's whole test suite: installs the Debian packages the tests need (tests/deps.sh), starts
# a throwaway PostgreSQL (a plain process on 127.0.0.1, in a
# temp directory, removed afterwards) so every database test runs on SQLite and PostgreSQL, then
# `cargo test --workspace`. Extra arguments go to `cargo test`.
#   tests/run.sh                 # everything
#   tests/run.sh lifecycle       # tests whose name contains "lifecycle"
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests need (PostgreSQL, QEMU, OVMF, libvirt, ipmi_sim, ...): installed when missing.
tests/deps.sh

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    echo "PostgreSQL server binaries not found: apt-get install postgresql (or set TEST_DATABASE_URL)" >&2
    exit 1
  fi
  PGDIR=$(mktemp -d /tmp/kiln-pg.XXXXXX)
  PGPORT=${KILN_TEST_PGPORT:-54329}
  RUNAS=()
  if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root.
    chown postgres:postgres "$PGDIR"
    RUNAS=(runuser -u postgres --)
  fi
  cleanup() {
    "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PGDIR"
  }
  trap cleanup EXIT
  "${RUNAS[@]}" "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDIR -c fsync=off -c max_connections=400" start >/dev/null
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
  echo "PostgreSQL for tests at $TEST_DATABASE_URL"
fi

# The browser tests' Playwright (a venv; Chromium itself comes from Debian).
tests/ui/setup.sh
# The API tests' schemathesis and OpenAPI validator (a venv).
tests/api/setup.sh

cargo test --workspace "$@"
