#!/usr/bin/env bash
# Detection latency end to end (issue 4): three probes in three regions, each
# through its own colo of the lab's fake Cloudflare edge, the real coordinator
# and PostgreSQL, one check every 60 s. For each round: switch a 520 on for
# every edge request, wait until /metrics shows
# vantage_incidents_open{kind="outage",scope="global"} 1, switch it off, wait
# until the incident is resolved (every probe recovered). Prints per round:
#   first failure  fault on -> the start of the first failing attempt (the
#                  probes' schedule: up to an interval / the probes)
#   confirmation   that attempt's start -> the incident on the metric (what
#                  the coordinator's re-checks and correlation cost)
#   total          fault on -> the incident on the metric
#
#   ./scripts/build.sh && bench/detection.sh [ROUNDS] [INTERVAL]   (default 5 rounds, 60s)
#
# The binaries are those of ./build, or of the build directory named by
# VANTAGE_BUILD_DIR (e.g. VANTAGE_BUILD_DIR=build-mine bench/detection.sh 20 60s).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
interval=${2:-60s}
bin=$(realpath -m "${VANTAGE_BUILD_DIR:-build}")
case $interval in
  *s) interval_seconds=${interval%s} ;;
  *m) interval_seconds=$((${interval%m} * 60)) ;;
  *) echo "detection.sh: INTERVAL as 60s or 1m, not $interval" >&2; exit 1 ;;
esac
for b in coordinator/vantage-coordinator probe/vantage-probe tools/lab/vantage-lab; do
  [ -x "$bin/$b" ] || { echo "detection.sh: $bin/$b missing; run ./scripts/build.sh first (or set VANTAGE_BUILD_DIR)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "detection.sh: needs curl (apt-get install curl)" >&2; exit 1; }

work=$(mktemp -d /tmp/vantage-detection-XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ./scripts/local-postgres.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
. bench/lib.sh

db=$(./scripts/local-postgres.sh start "$work/pg" --fast)
start_lab
cat >"$work/checks.yaml" <<EOF
checks:
  - name: shop
    url: http://shop.test:$edge_base/
    interval: $interval
    timeout: 5s
    origin: {address: "127.0.0.1:$origin_port"}
EOF
metrics_port=$(free_port)
grpc_port=$(free_port)
"$bin/coordinator/vantage-coordinator" serve --database "$db" --checks "$work/checks.yaml" \
  --listen "127.0.0.1:$grpc_port" --metrics-listen "127.0.0.1:$metrics_port" >"$work/coordinator.log" 2>&1 &
pids+=($!)
until_log "$work/coordinator.log" "coordinator started"
i=0
for entry in us-1:us:IAD eu-1:eu:FRA ap-1:ap:SIN; do
  IFS=: read -r id region colo <<<"$entry"
  "$bin/coordinator/vantage-coordinator" add-probe --database "$db" --probe-id "$id" --region "$region" \
    2>/dev/null >"$work/$id.token"
  "$bin/probe/vantage-probe" --coordinator "127.0.0.1:$grpc_port" --probe-id "$id" --region "$region" \
    --token-file "$work/$id.token" --connect-to "shop.test:$edge_base:127.0.0.1:$((edge_base + i))" \
    >"$work/probe-$id.log" 2>&1 &
  pids+=($!)
  i=$((i + 1))
done

metric() {
  curl -fsS "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null |
    sed -n "s/^vantage_incidents_open{kind=\"outage\",scope=\"global\"} \([0-9.]*\)$/\1/p"
}
sql() { psql "$db" -Atc "$1"; }
wait_metric() {  # value timeout_seconds
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do [ "$(metric)" = "$1" ] && return 0; sleep 0.05; done
  echo "detection.sh: vantage_incidents_open{global} did not become $1 in $2 s" >&2; exit 1
}
# Every probe recovered: the incident resolved (not just narrowed from global).
wait_resolved() {  # timeout_seconds
  local deadline=$((SECONDS + $1))
  while [ $SECONDS -lt $deadline ]; do
    [ "$(sql "SELECT count(*) FROM incidents WHERE state <> 'resolved'")" = 0 ] && return 0
    sleep 0.5
  done
  echo "detection.sh: the incident did not resolve in $1 s" >&2; exit 1
}
fault() { curl -fsS "http://127.0.0.1:$origin_port/lab/fault?$1" >/dev/null; }

echo "detection.sh: waiting for every probe's first result (up to one interval)..." >&2
for _ in $(seq 1 900); do
  [ "$(sql "SELECT count(DISTINCT probe_id) FROM results")" = 3 ] && break
  sleep 0.2
done
printf "%-6s %-15s %-15s %-10s\n" round "first failure" "confirmation" total
totals=()
for round in $(seq 1 "$rounds"); do
  # Switch on at a random point of the probes' schedule: anywhere in one
  # interval after the last round ended. (The rounds ended by the schedule
  # itself: a probe's attempt resolves the incident. A shorter random wait
  # would put every switch just after an attempt, and measure the longest
  # wait for the next one, not a fault at any moment.)
  sleep "$(awk -v s="$RANDOM" -v i="$interval_seconds" 'BEGIN { srand(s); printf "%.1f", rand() * i }')"
  on=$(now)
  fault "name=empty-reply"
  wait_metric 1 600
  seen=$(now)
  first=$(sql "SELECT extract(epoch FROM min(start_time)) FROM results WHERE class <> 1 AND start_time >= to_timestamp($on)")
  awk -v on="$on" -v first="$first" -v seen="$seen" -v r="$round" \
    'BEGIN { printf "%-6d %-15s %-15s %-10s\n", r, sprintf("%.2f s", first - on), sprintf("%.2f s", seen - first), sprintf("%.2f s", seen - on) }'
  totals+=("$(awk -v on="$on" -v seen="$seen" 'BEGIN { printf "%.2f", seen - on }')")
  fault "name=none"
  wait_resolved 900
done
printf "%s\n" "${totals[@]}" |
  awk '{ s += $1; if (NR == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 }
       END { printf "total over %d rounds: mean %.2f s, min %.2f s, max %.2f s\n", NR, s / NR, lo, hi }'
