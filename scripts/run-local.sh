#!/usr/bin/env bash
# Runs Vantage on this machine: PostgreSQL in a project-local directory, the
# coordinator, three probes labelled as three regions, and the fault lab's
# origin as the site they monitor (works offline). Ctrl-C stops everything.
#
# Environment: VANTAGE_STATE_DIR (default ./.vantage), VANTAGE_GRPC_PORT (7000),
# VANTAGE_METRICS_PORT (9464), VANTAGE_LAB_PORT (8080), VANTAGE_RUN_SECONDS
# (stop by itself after that many seconds; default: run until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

./scripts/deps.sh
./scripts/build.sh

grpc_port=${VANTAGE_GRPC_PORT:-7000}
metrics_port=${VANTAGE_METRICS_PORT:-9464}
lab_port=${VANTAGE_LAB_PORT:-8080}
state=${VANTAGE_STATE_DIR:-$root/.vantage}
# PostgreSQL runs as the postgres user, which cannot enter a checkout under a
# private home directory (e.g. /root): keep its data under /var/tmp then.
mkdir -p "$state/logs" "$state/tokens"
pgdir=$state/postgres
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$state" 2>/dev/null; then
  pgdir=/var/tmp/vantage-$(echo "$root" | sha1sum | cut -c1-12)/postgres
fi

pids=()
stopping=
cleanup() {
  [ -n "$stopping" ] && return
  stopping=1
  echo
  echo "run-local.sh: stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ./scripts/local-postgres.sh stop "$pgdir" || true
  echo "run-local.sh: stopped. Data and logs are kept in $state"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# Fails with the tail of the log when a component does not come up.
wait_for_log() {  # pid log text what
  for _ in $(seq 1 300); do
    grep -q "$3" "$2" 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  echo "run-local.sh: $4 did not start; the end of $2:" >&2
  tail -5 "$2" >&2
  exit 1
}

echo "run-local.sh: starting PostgreSQL in $pgdir"
db=$(./scripts/local-postgres.sh start "$pgdir")

bin=$root/build
"$bin/tools/lab/vantage-lab" --listen "127.0.0.1:$lab_port" >"$state/logs/lab.log" 2>&1 &
pids+=($!)
wait_for_log $! "$state/logs/lab.log" "msg=listening" "the example site (vantage-lab on port $lab_port)"

sed "s/127.0.0.1:8080/127.0.0.1:$lab_port/g" examples/checks.local.yaml >"$state/checks.yaml"

probes=(us-east-1:us-east eu-west-1:eu-west ap-south-1:ap-south)
for entry in "${probes[@]}"; do
  id=${entry%%:*} region=${entry#*:}
  if [ ! -s "$state/tokens/$id" ]; then
    (umask 077; "$bin/coordinator/vantage-coordinator" add-probe --database "$db" \
      --probe-id "$id" --region "$region" 2>>"$state/logs/coordinator.log" >"$state/tokens/$id")
  fi
done

"$bin/coordinator/vantage-coordinator" serve --database "$db" --checks "$state/checks.yaml" \
  --listen "127.0.0.1:$grpc_port" --metrics-listen "127.0.0.1:$metrics_port" \
  >>"$state/logs/coordinator.log" 2>&1 &
coordinator=$!
pids+=($coordinator)
wait_for_log $coordinator "$state/logs/coordinator.log" "coordinator started.*grpc_port=$grpc_port" "the coordinator"

for entry in "${probes[@]}"; do
  id=${entry%%:*} region=${entry#*:}
  "$bin/probe/vantage-probe" --coordinator "127.0.0.1:$grpc_port" --probe-id "$id" \
    --region "$region" --token-file "$state/tokens/$id" --spool-dir "$state/spool/$id" \
    >"$state/logs/probe-$id.log" 2>&1 &
  pids+=($!)
done

cat <<INFO

Vantage is running.
  gRPC (probes, API, health, reflection):  127.0.0.1:$grpc_port
  Prometheus metrics:                      http://127.0.0.1:$metrics_port/metrics
  the monitored example site:              http://127.0.0.1:$lab_port/
  checks:                                  $state/checks.yaml
  logs:                                    $state/logs/
  PostgreSQL:                              psql "\$(./scripts/local-postgres.sh url $pgdir)"
Press Ctrl-C to stop.

INFO

# A status line every 10 s: results stored per region, from /metrics.
started=$SECONDS
while :; do
  for _ in $(seq 1 10); do
    sleep 1
    kill -0 "$coordinator" 2>/dev/null || { echo "run-local.sh: the coordinator exited; see $state/logs/coordinator.log" >&2; exit 1; }
    if [ -n "${VANTAGE_RUN_SECONDS:-}" ] && [ $((SECONDS - started)) -ge "$VANTAGE_RUN_SECONDS" ]; then exit 0; fi
  done
  stored=$(curl -fsS "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null |
    sed -n 's/^vantage_ingest_results_total{region="\([^"]*\)"} \([0-9.e+]*\)$/\1=\2/p' | sort | tr '\n' ' ')
  echo "$(date -u +%H:%M:%S) results stored by region: ${stored:-none yet}"
done
