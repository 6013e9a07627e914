#!/usr/bin/env bash
# Quick start: set up with the test tools, then run the whole test suite.
# PostgreSQL tests use FOREWARN_TEST_PG_URL (default: the local server with trust auth).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
export FOREWARN_TEST_PG_URL="${FOREWARN_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
exec .venv/bin/python -m pytest "$@"
