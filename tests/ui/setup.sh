#!/usr/bin/env bash
# The browser tests' Python: a venv with Playwright (from PyPI, pinned), which drives Debian's
# Chromium (/usr/bin/chromium, installed by tests/deps.sh; Playwright cannot download browsers
# here and does not need to). Called by tests/run.sh; does nothing when the venv is there.
set -euo pipefail
VENV=${KILN_UI_VENV:-/var/cache/kiln/ui-venv}
PLAYWRIGHT=1.65.2
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import playwright, sys; from importlib.metadata import version; sys.exit(version('playwright') != '$PLAYWRIGHT')" 2>/dev/null; then
  exit 0
fi
echo "tests/ui/setup.sh: making $VENV with playwright==$PLAYWRIGHT" >&2
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "playwright==$PLAYWRIGHT"
