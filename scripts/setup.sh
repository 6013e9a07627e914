#!/usr/bin/env bash
# Set up forewarn on a fresh Debian/Ubuntu machine: system packages (only those missing), then a
# virtualenv in .venv with the project installed in editable mode.
#   scripts/setup.sh          what the demo needs (mosquitto, python3-venv)
#   scripts/setup.sh --dev    also what the tests need (victoria-metrics, chromium, dev tools)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ "$dev" = 1 ]; then
  command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
  # The console's browser tests drive the system Chromium through Playwright (never a
  # downloaded browser: 'playwright install' is not needed).
  [ -x /usr/bin/chromium ] || need+=(chromium chromium-driver)
fi
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup: installing ${need[*]} (Debian packages)" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian package starts a system-wide broker on 1883; forewarn runs its own brokers.
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
extras="all"
[ "$dev" = 1 ] && extras="dev"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[$extras]"
