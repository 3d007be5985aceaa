#!/usr/bin/env bash
# Checks the Grafana dashboards: the committed JSON is what
# dashboards/generate.js makes (no drift), and each one type-checks against
# @grafana/schema's Dashboard type (tsc --noEmit --strict, dashboards/check),
# with known-wrong dashboards failing that check. Run by the test suite; the
# npm packages come from scripts/test.sh (npm ci in dashboards/check).
set -euo pipefail
cd "$(dirname "$0")/../dashboards"
command -v node >/dev/null || { echo "check-dashboards.sh: node not found (Node.js is needed for the dashboards)" >&2; exit 1; }
node generate.js --check
if [ ! -d check/node_modules/@grafana/schema ] || [ ! -d check/node_modules/typescript ]; then
  echo "check-dashboards.sh: dashboards/check/node_modules is missing: run ./scripts/test.sh (or cd dashboards/check && npm ci)" >&2
  exit 1
fi
node check/check.js
