#!/usr/bin/env bash
# Builds Vantage and runs the whole test suite: unit, integration (real
# PostgreSQL, real gRPC) and end-to-end (real processes). Installs missing
# Debian packages first. Extra arguments go to ctest, e.g. `-L unit` for the
# fast set.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh
cd build
ctest --output-on-failure "$@"
# The delivery counts of the fault tests (ctest keeps passing tests' output in its log).
if grep -q "produced .*, stored" Testing/Temporary/LastTest.log 2>/dev/null; then
  echo "Delivery counts from the end-to-end tests:"
  grep -hE "^(network cut for|.*probe .*: produced)" Testing/Temporary/LastTest.log | sed 's/^/  /'
fi
