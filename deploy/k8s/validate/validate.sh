#!/usr/bin/env bash
# The deployment's test (ctest: k8s_manifests): the generated PrometheusRule
# and dashboards ConfigMap match alerts/ and dashboards/ (no drift), then every
# kustomize tree renders and every object validates (validate.mjs).
# Needs kubectl (for `kubectl kustomize`), node, and this directory's
# node_modules (scripts/test.sh runs `npm ci` here).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v kubectl >/dev/null ||
  { echo "validate.sh: kubectl not found: it renders the overlays (kubectl kustomize); install kubectl 1.21 or later" \
         "(Debian 12's kubernetes-client is 1.20: its kustomize knows no components)" >&2; exit 1; }
command -v node >/dev/null ||
  { echo "validate.sh: node not found (scripts/deps.sh installs nodejs)" >&2; exit 1; }
for p in kubernetes-models @kubernetes-models/prometheus-operator js-yaml; do
  [ -d "$here/node_modules/$p" ] ||
    { echo "validate.sh: $here/node_modules/$p missing: run scripts/test.sh, or (cd deploy/k8s/validate && npm ci)" >&2; exit 1; }
done
"$here/../generate.sh" --check
cd "$here"
exec node validate.mjs
