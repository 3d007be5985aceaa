#!/usr/bin/env bash
# Runs Vantage on this machine: PostgreSQL in a project-local directory, the
# coordinator, three probes labelled as three regions, and the fault lab's
# origin (with a fake Cloudflare edge in front: colos IAD, FRA, SIN) as the
# site they monitor (works offline); Prometheus scraping them all with the
# alert rules, and Alertmanager sending pages to a receiver that prints them
# ("page: ..."). Ctrl-C stops everything.
#
# Environment: VANTAGE_STATE_DIR (default ./.vantage), VANTAGE_GRPC_PORT (7000),
# VANTAGE_METRICS_PORT (9464; the probes' /metrics take the next three ports),
# VANTAGE_LAB_PORT (8080; its edge colos the next three), VANTAGE_PROMETHEUS_PORT
# (9090), VANTAGE_ALERTMANAGER_PORT (9093), VANTAGE_WEBHOOK_PORT (9099, the
# page printer), VANTAGE_RUN_SECONDS (stop by itself after that many seconds;
# default: run until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

./scripts/deps.sh
./scripts/build.sh

grpc_port=${VANTAGE_GRPC_PORT:-7000}
metrics_port=${VANTAGE_METRICS_PORT:-9464}
lab_port=${VANTAGE_LAB_PORT:-8080}
prometheus_port=${VANTAGE_PROMETHEUS_PORT:-9090}
alertmanager_port=${VANTAGE_ALERTMANAGER_PORT:-9093}
webhook_port=${VANTAGE_WEBHOOK_PORT:-9099}
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
# The same for a server that says it is ready over HTTP.
wait_for_http() {  # pid url log what
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$2" 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  echo "run-local.sh: $4 did not start; the end of $3:" >&2
  tail -5 "$3" >&2
  exit 1
}

echo "run-local.sh: starting PostgreSQL in $pgdir"
db=$(./scripts/local-postgres.sh start "$pgdir")

bin=$root/build
"$bin/tools/lab/vantage-lab" --listen "127.0.0.1:$lab_port" \
  --edge-colos IAD,FRA,SIN --edge-port-base $((lab_port + 1)) >"$state/logs/lab.log" 2>&1 &
pids+=($!)
wait_for_log $! "$state/logs/lab.log" "edge listening\" colo=SIN" "the example site (vantage-lab on port $lab_port)"

# The example checks, and "shop" through the fake edge: each probe's "DNS"
# sends shop.test to its own colo, as anycast would (us-east IAD, eu-west
# FRA, ap-south SIN), and the origin leg goes straight to the lab.
edge_port=$((lab_port + 1))
sed "s/127.0.0.1:8080/127.0.0.1:$lab_port/g" examples/checks.local.yaml >"$state/checks.yaml"
cat >>"$state/checks.yaml" <<CHECK
  # Through the lab's fake Cloudflare edge: /lab/fault on the lab makes it fail.
  - name: shop
    url: http://shop.test:$edge_port/
    interval: 5s
    timeout: 2s
    origin: {address: "127.0.0.1:$lab_port"}
    correlation: {resolve_consecutive: 2}
CHECK

probes=(us-east-1:us-east:IAD eu-west-1:eu-west:FRA ap-south-1:ap-south:SIN)
for entry in "${probes[@]}"; do
  IFS=: read -r id region _ <<<"$entry"
  if [ ! -s "$state/tokens/$id" ]; then
    (umask 077; "$bin/coordinator/vantage-coordinator" add-probe --database "$db" \
      --probe-id "$id" --region "$region" 2>>"$state/logs/coordinator.log" >"$state/tokens/$id")
  fi
done

# Pages: a receiver that prints them, Alertmanager (grouping shortened so a
# page arrives within seconds; examples/alertmanager.yml has the usual
# values), and Prometheus with the alert rules, scraping the coordinator and
# the probes (the job names the rules use). The coordinator also pushes its
# incidents straight to Alertmanager (--alertmanager-url), the fast path.
node scripts/print-alerts.js "$webhook_port" 2>>"$state/logs/print-alerts.log" &
pids+=($!)
mkdir -p "$state/alertmanager" "$state/prometheus"
cat >"$state/alertmanager/alertmanager.yml" <<AM
route:
  receiver: print
  group_by: [alertname, check, incident]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 4h
receivers:
  - name: print
    webhook_configs:
      - url: http://127.0.0.1:$webhook_port/
        send_resolved: true
AM
prometheus-alertmanager --config.file="$state/alertmanager/alertmanager.yml" \
  --storage.path="$state/alertmanager/data" --web.listen-address="127.0.0.1:$alertmanager_port" \
  --cluster.listen-address= >"$state/logs/alertmanager.log" 2>&1 &
pids+=($!)
wait_for_http $! "http://127.0.0.1:$alertmanager_port/-/ready" "$state/logs/alertmanager.log" "Alertmanager"
{
  cat <<PROM
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $root/alerts/vantage.rules.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$alertmanager_port"]
scrape_configs:
  - job_name: vantage-coordinator
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
  - job_name: vantage-probe
    static_configs:
PROM
  n=0
  for entry in "${probes[@]}"; do
    IFS=: read -r id region _ <<<"$entry"
    n=$((n + 1))
    printf '      - targets: ["127.0.0.1:%s"]\n        labels: {probe: %s, region: %s}\n' \
      $((metrics_port + n)) "$id" "$region"
  done
} >"$state/prometheus/prometheus.yml"
prometheus --config.file="$state/prometheus/prometheus.yml" --storage.tsdb.path="$state/prometheus/data" \
  --web.listen-address="127.0.0.1:$prometheus_port" >"$state/logs/prometheus.log" 2>&1 &
pids+=($!)
wait_for_http $! "http://127.0.0.1:$prometheus_port/-/ready" "$state/logs/prometheus.log" "Prometheus"

"$bin/coordinator/vantage-coordinator" serve --database "$db" --checks "$state/checks.yaml" \
  --listen "127.0.0.1:$grpc_port" --metrics-listen "127.0.0.1:$metrics_port" \
  --alertmanager-url "http://127.0.0.1:$alertmanager_port" \
  >>"$state/logs/coordinator.log" 2>&1 &
coordinator=$!
pids+=($coordinator)
wait_for_log $coordinator "$state/logs/coordinator.log" "coordinator started.*grpc_port=$grpc_port" "the coordinator"

# Incidents as they open, change and resolve, read through the public API
# by vantagectl with a read-only API token of its own (kept in tokens/; a new
# one is made when the stored one is refused, e.g. after the database went).
ctl=("$bin/cli/vantagectl" --addr "127.0.0.1:$grpc_port" --token-file "$state/tokens/api-watch")
if [ ! -s "$state/tokens/api-watch" ] || { "${ctl[@]}" probes list >/dev/null 2>&1; [ $? = 3 ]; }; then
  (umask 077; "$bin/coordinator/vantage-coordinator" add-api-token --database "$db" \
    --name "run-local-$(date +%s)" --role read 2>>"$state/logs/coordinator.log" >"$state/tokens/api-watch")
fi
"${ctl[@]}" incidents watch 2>>"$state/logs/vantagectl-watch.log" > >(sed -u 's/^/incident: /') &
pids+=($!)

n=0
for entry in "${probes[@]}"; do
  IFS=: read -r id region colo <<<"$entry"
  n=$((n + 1))
  colo_port=$(sed -n "s/.*edge listening.*colo=$colo address=127.0.0.1:\([0-9]*\).*/\1/p" "$state/logs/lab.log")
  "$bin/probe/vantage-probe" --coordinator "127.0.0.1:$grpc_port" --probe-id "$id" \
    --region "$region" --token-file "$state/tokens/$id" --spool-dir "$state/spool/$id" \
    --metrics-listen "127.0.0.1:$((metrics_port + n))" --connect-to "shop.test:$edge_port:127.0.0.1:$colo_port" \
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
  the API with vantagectl (a read token):  build/cli/vantagectl --addr 127.0.0.1:$grpc_port --token-file $state/tokens/api-watch checks list
  Prometheus (alert rules, dashboards' data): http://127.0.0.1:$prometheus_port/  (alerts: /alerts)
  Alertmanager:                            http://127.0.0.1:$alertmanager_port/
  pages go to a receiver that prints them: http://127.0.0.1:$webhook_port/  ("page: ...")
  Grafana dashboards to import:            dashboards/*.json (docs/dashboards.md)
Incidents are printed as they open, change and resolve ("incident: time id check event scope kind cause").

To see a page arrive and resolve, make the edge's FRA colo answer 520 (eu-west's view of "shop"):
  curl 'http://127.0.0.1:$lab_port/lab/fault?name=empty-reply&colo=FRA'
and, once "page: ... firing" is printed, switch it off again:
  curl 'http://127.0.0.1:$lab_port/lab/fault?name=none'
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
