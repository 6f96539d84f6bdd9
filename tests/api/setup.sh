#!/usr/bin/env bash
# The API tests' Python: a venv with schemathesis and openapi-spec-validator (from PyPI, pinned),
# which region/tests/integration/api_schema.rs runs against the region's OpenAPI document.
# Called by tests/run.sh; does nothing when the venv is there with these versions.
set -euo pipefail
VENV=${KILN_API_VENV:-/var/cache/kiln/api-venv}
SCHEMATHESIS=4.32.5
VALIDATOR=0.9.0
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import sys; from importlib.metadata import version; sys.exit(version('schemathesis') != '$SCHEMATHESIS' or version('openapi-spec-validator') != '$VALIDATOR')" 2>/dev/null; then
  exit 0
fi
echo "tests/api/setup.sh: making $VENV with schemathesis==$SCHEMATHESIS openapi-spec-validator==$VALIDATOR" >&2
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS" "openapi-spec-validator==$VALIDATOR"
