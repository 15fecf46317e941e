#!/usr/bin/env bash
# The whole suite: contracts and services, on loopback only, two xdist workers
# (one anvil each). Extra arguments go to pytest. Exit 5 (nothing collected) is
# treated as a failure here, since the suite always has tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export APE_DATA_FOLDER="$PWD/.ape"
export PATH="$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH"
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
echo "==> ruff"
ruff check .
echo "==> mypy"
mypy
echo "==> pytest (hypothesis profile: $HYPOTHESIS_PROFILE)"
exec python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup "$@"
