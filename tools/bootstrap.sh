#!/usr/bin/env bash
# Install what is missing: the virtualenv (pinned by requirements.lock), the project
# itself (editable), and node_modules (anvil, pinned by package-lock.json).
# Re-running is cheap: each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "error: Python 3.11 is required (found $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
command -v npm >/dev/null 2>&1 || { echo "error: npm is required (for the pinned anvil binary)" >&2; exit 1; }

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

py_stamp=".venv/.installed-$(stamp_of requirements.lock pyproject.toml)"
if [ ! -f "$py_stamp" ]; then
  echo "==> Python environment (.venv, requirements.lock)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
  rm -f .venv/.installed-*
  touch "$py_stamp"
fi

# --- plasma_fast: the Plasma operator's compiled hot path (native/plasma_fast) -------------
# Built from the repository's C source into the venv whenever the source changes. Optional:
# without a C compiler the operator runs its pure-Python path (plasma_core.wire), slower.
build_plasma_fast() {
  local stamp=".venv/.plasma-fast-$(stamp_of native/plasma_fast/setup.py native/plasma_fast/plasma_fast.c)"
  [ -f "$stamp" ] && return 0
  echo "==> plasma_fast (compiled Plasma operator hot path)"
  if .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
       --force-reinstall ./native/plasma_fast; then
    rm -f .venv/.plasma-fast-*
    touch "$stamp"
  else
    echo "warning: plasma_fast did not build; the Plasma operator uses its pure-Python path" >&2
  fi
}
build_plasma_fast
# --- end plasma_fast --------------------------------------------------------------------

# --- postgresql: the server the PostgreSQL store tests run (dccn_devtools.postgres) --------
# psycopg and the pgserver wheel (a PostgreSQL 16 server) come pinned from requirements.lock.
# Where that wheel's server cannot run, Debian's postgresql package is installed instead.
# Services never need a local server: they connect to whatever `store: postgresql://...` names.
ensure_postgres() {
  .venv/bin/python -m dccn_devtools.postgres --check >/dev/null 2>&1 && return 0
  echo "==> postgresql (Debian package: the pgserver wheel's server is missing or does not run here)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
  fi
  .venv/bin/python -m dccn_devtools.postgres --check >/dev/null \
    || echo "warning: no PostgreSQL server; the PostgreSQL store tests cannot run" >&2
}
ensure_postgres
# --- end postgresql -------------------------------------------------------------------

# ape-vyper 0.8.12 leaves a forward reference in its config model unresolved, so pydantic-settings
# warns on every ape command; nothing a user can act on. One narrow filter for this one message,
# loaded by every Python of the venv (a .pth line runs at interpreter start).
pth="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/dccn_quiet_ape_vyper.pth"
[ -f "$pth" ] || echo "import warnings; warnings.filterwarnings('ignore', message=\"Field 'import_remapping' has an incomplete definition\")" > "$pth"

node_stamp="node_modules/.installed-$(stamp_of package.json package-lock.json)"
if [ ! -f "$node_stamp" ]; then
  echo "==> anvil (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$node_stamp"
fi

# ape's data folder stays inside the project.
export APE_DATA_FOLDER="$PWD/.ape"
export PATH="$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH"
if [ ! -f .build/__local__.json ] || [ -n "$(find contracts -newer .build/__local__.json -name '*.vy*' -print -quit)" ]; then
  echo "==> compiling contracts (ape compile)"
  # --force: ape does not notice a changed module inside an unchanged contract.
  ape compile --force >/dev/null
fi
