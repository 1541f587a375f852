#!/usr/bin/env bash
# Runs every suite. Suites that need root are skipped (with the reason printed) when not root.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "NOTE: not running as root: the kernel and lab suites (tests/kernel, tests/lab) are skipped; they need network namespaces."
fi
.venv/bin/python -m pytest "$@"
rc=$?
# pytest exits 5 when it collected nothing: that is a failure of the suite, not a pass.
exit $rc
