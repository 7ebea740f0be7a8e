#!/usr/bin/env bash
# Installs Kling Balance Bot into a virtual environment, .venv/ in the repository, so it works
# on Debian and Ubuntu's own Python (which refuses `pip install` outside a venv) and touches
# nothing else. `--test` adds the test tools. Safe to run again: it reuses .venv.
#   bash scripts/install.sh [--test]
# Afterwards: `.venv/bin/kling-bot ...`, or `. .venv/bin/activate` and `kling-bot ...`
# (`deactivate` leaves the venv; deleting .venv/ removes the install).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

say() { echo "install: $*" >&2; }

if ! command -v python3 >/dev/null; then
  say "python3 is missing: install Python 3.11 or newer (Debian/Ubuntu: apt-get install python3)."
  exit 1
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "Python $(python3 -c 'import platform; print(platform.python_version())') is too old: the bot needs 3.11 or newer."
  exit 1
fi

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  if ! python3 -m venv .venv >/dev/null 2>&1; then
    # Debian and Ubuntu ship venv's pip bootstrap in a package of its own.
    rm -rf .venv
    venv_pkg="python3-venv"
    version=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    if command -v apt-get >/dev/null; then
      say "creating a virtual environment needs $venv_pkg; installing it with apt-get"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$version-venv" >/dev/null 2>&1 ||
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$venv_pkg" >/dev/null || {
          say "could not install $venv_pkg: run 'sudo apt-get install $venv_pkg' and try again."
          exit 1
        }
    fi
    python3 -m venv .venv || { say "could not create a virtual environment in .venv/."; exit 1; }
  fi
fi

.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet --disable-pip-version-check ".$extras"
say "done: .venv/bin/kling-bot is installed ($(.venv/bin/kling-bot --version))."
