#!/usr/bin/env bash
# Checks the alert rules: promtool's syntax check, then every test file in
# alerts/tests (each alert fires when it should, with its labels and
# annotations, and stays silent when it should). Run by the test suite.
set -euo pipefail
cd "$(dirname "$0")/../alerts"
command -v promtool >/dev/null || { echo "check-alerts.sh: promtool not found (Debian package prometheus; scripts/deps.sh installs it)" >&2; exit 1; }
promtool check rules vantage.rules.yml
promtool test rules tests/*.test.yml
# The example Alertmanager configuration (docs/alerting.md).
command -v amtool >/dev/null || { echo "check-alerts.sh: amtool not found (Debian package prometheus-alertmanager)" >&2; exit 1; }
amtool check-config ../examples/alertmanager.yml
