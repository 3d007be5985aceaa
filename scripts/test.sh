#!/usr/bin/env bash
# Builds Vantage and runs the whole test suite: unit, integration (real
# PostgreSQL, real gRPC) and end-to-end (real processes). Installs missing
# Debian packages first. Extra arguments go to ctest, e.g. `-L unit` for the
# fast set.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh
# npm packages, exactly as each lock file says: the Node.js example client
# (tests/e2e/node_client_test.cc runs it), the Kubernetes manifests' validator
# (deploy/k8s/validate: kubernetes-models; ctest k8s_manifests runs it) and the
# dashboards' type check (scripts/check-dashboards.sh). Skipped when
# node_modules was installed from these very files, so a second run needs no
# network.
npm_dirs=(examples/node deploy/k8s/validate dashboards/check)
for dir in "${npm_dirs[@]}"; do
  stamp=$dir/node_modules/.vantage-installed-from
  hash=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
    echo "test.sh: npm ci in $dir" >&2
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$hash" > "$stamp"
  fi
done
cd build
ctest --output-on-failure "$@"
# The delivery counts of the fault tests (ctest keeps passing tests' output in its log).
if grep -q "produced .*, stored" Testing/Temporary/LastTest.log 2>/dev/null; then
  echo "Delivery counts from the end-to-end tests:"
  grep -hE "^(network cut for|.*probe .*: produced)" Testing/Temporary/LastTest.log | sed 's/^/  /'
fi
