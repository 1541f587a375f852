#!/usr/bin/env bash
# Runs the gates (ruff, mypy on the pure layers) and every suite. Suites that need root are
# skipped (with the reason printed) when not root. Exits non-zero if any gate or suite failed.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
echo "== gate: ruff check src tests"
.venv/bin/ruff check src tests || rc=1
echo "== gate: mypy (model, ipam, plan, reconcile; configuration in pyproject.toml)"
.venv/bin/mypy || rc=1
if [ "$(id -u)" != 0 ]; then
  echo "NOTE: not running as root: the kernel and lab suites (tests/kernel, tests/lab) are skipped; they need network namespaces."
fi
.venv/bin/python -m pytest --durations=25 "$@"
prc=$?
# pytest exits 5 when it collected nothing: that is a failure of the suite, not a pass.
[ $prc -ne 0 ] && rc=$prc
exit $rc
