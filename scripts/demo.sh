#!/usr/bin/env bash
# Quick start: set up, then run the demo (console at http://127.0.0.1:8000, Ctrl-C stops).
# Extra arguments go to 'forewarn demo', e.g. scripts/demo.sh --headless --sim-days 30 --json
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/forewarn demo "$@"
