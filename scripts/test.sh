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
