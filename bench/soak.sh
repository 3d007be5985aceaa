#!/usr/bin/env bash
# Soak (issue 9): healthy checks beside hostile ones for MINUTES (default 30),
# with a probe stalled (SIGSTOP: it stops reading and writing) for a tenth of
# the run and the coordinator killed and restarted at the middle. At the end
# every probe stops gracefully and the script checks, per probe, that every
# sequence number it produced is stored exactly once (none refused, none
# dropped), and compares the number of metric series early in the run with the
# number at the end (hostile sites must not mint series).
#
#   ./scripts/build.sh && bench/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
bin=${VANTAGE_BUILD:-$PWD/build}
for b in coordinator/vantage-coordinator probe/vantage-probe tools/lab/vantage-lab; do
  [ -x "$bin/$b" ] || { echo "soak.sh: $bin/$b missing; run ./scripts/build.sh first" >&2; exit 1; }
done

work=$(mktemp -d /tmp/vantage-soak-XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ./scripts/local-postgres.sh stop "$work/pg" >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && echo "soak.sh: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

say() { echo "soak.sh: $(date -u +%H:%M:%S) $*" >&2; }
. bench/lib.sh
sql() { psql "$db" -Atc "$1"; }
# The number of series at PORT; their names and labels are kept in FILE (to diff early and late).
series() {  # port file
  curl -fsS "http://127.0.0.1:$1/metrics" | grep -v '^#' | sed 's/ [^ ]*$//' | sort >"$work/$2"
  wc -l <"$work/$2"
}

db=$(./scripts/local-postgres.sh start "$work/pg" --fast)
start_lab

origin="http://127.0.0.1:$origin_port"
{
  echo "defaults: {interval: 5s, timeout: 3s}"
  echo "checks:"
  for i in 1 2 3 4; do echo "  - {name: healthy-$i, url: \"$origin/?n=$i\"}"; done
  echo "  - {name: healthy-edge, url: \"http://shop.test:$edge_base/\", origin: {address: \"127.0.0.1:$origin_port\"}}"
  for path in "fault/headers?kb=200" "fault/header-fields?count=100000" "fault/big-body?mb=64" \
    "fault/stall?seconds=60" "fault/trickle-head?delay_ms=500" "fault/reset" "fault/empty-reply" \
    "fault/bad-chunk" "fault/hostile-headers" "fault/hostile-edge-error" ${SOAK_HOSTILE_PATHS:-}; do
    name=hostile-$(echo "$path" | tr -c 'a-z0-9\n' '-' | sed 's/-*$//' | cut -c1-50)
    echo "  - {name: \"$name\", url: \"$origin/$path\"}"
  done
} >"$work/checks.yaml"
"$bin/coordinator/vantage-coordinator" check-config --checks "$work/checks.yaml" >/dev/null

metrics_port=$(free_port)
grpc_port=$(free_port)
start_coordinator() {
  "$bin/coordinator/vantage-coordinator" serve --database "$db" --checks "$work/checks.yaml" \
    --listen "127.0.0.1:$grpc_port" --metrics-listen "127.0.0.1:$metrics_port" >>"$work/coordinator.log" 2>&1 &
  coordinator=$!
  pids+=($coordinator)
}
start_coordinator
until_log "$work/coordinator.log" "coordinator started"

probe_pids=()
probe_ports=()
i=0
for entry in us-1:us ${SOAK_EXTRA_PROBES:-eu-1:eu ap-1:ap}; do
  IFS=: read -r id region <<<"$entry"
  "$bin/coordinator/vantage-coordinator" add-probe --database "$db" --probe-id "$id" --region "$region" \
    2>/dev/null >"$work/$id.token"
  port=$(free_port)
  "$bin/probe/vantage-probe" --coordinator "127.0.0.1:$grpc_port" --probe-id "$id" --region "$region" \
    --token-file "$work/$id.token" --spool-dir "$work/spool-$id" --metrics-listen "127.0.0.1:$port" \
    --connect-to "shop.test:$edge_base:127.0.0.1:$((edge_base + i))" ${SOAK_PROBE_FLAGS:-} \
    >"$work/probe-$id.log" 2>&1 &
  probe_pids+=($!)
  probe_ports+=("$port")
  pids+=($!)
  i=$((i + 1))
done
ids=(us-1 eu-1 ap-1)

total=$((minutes * 60))
early=$((total / 10))
say "running for $minutes min (work dir $work)"
sleep "$early"
series_early=$(series "$metrics_port" series-coordinator-early.txt)
probe_series_early=$(series "${probe_ports[0]}" series-probe-early.txt)
say "series after $early s: coordinator $series_early, probe us-1 $probe_series_early"

say "stalling probe ap-1 (SIGSTOP) for $early s"
kill -STOP "${probe_pids[2]}"
sleep "$early"
kill -CONT "${probe_pids[2]}"
say "probe ap-1 resumed"

sleep $((total / 2 - 2 * early))
say "killing the coordinator (SIGKILL) and restarting it"
kill -KILL "$coordinator"
wait "$coordinator" 2>/dev/null || true
sleep 5
start_coordinator
sleep $((total - total / 2 - 5))

series_late=$(series "$metrics_port" series-coordinator-late.txt)
probe_series_late=$(series "${probe_ports[0]}" series-probe-late.txt)
say "series at the end: coordinator $series_late, probe us-1 $probe_series_late"

# Let the probes drain, then stop them gracefully (each logs its last sequence).
sleep 5
for n in 0 1 2; do kill -TERM "${probe_pids[$n]}"; done
for n in 0 1 2; do wait "${probe_pids[$n]}" || true; done

status=0
printf "%-6s %10s %10s %10s %10s %8s\n" probe produced stored distinct hostile dropped
for n in 0 1 2; do
  id=${ids[$n]}
  produced=$(sed -n 's/.*msg=stopped last_sequence=\([0-9]*\).*/\1/p' "$work/probe-$id.log" | tail -1)
  stored=$(sql "SELECT count(*) FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = '$id'")
  distinct=$(sql "SELECT count(DISTINCT seq) FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = '$id'")
  hostile=$(sql "SELECT count(*) FROM results r JOIN probes p ON p.id = r.probe_id JOIN checks c ON c.id = r.check_id WHERE p.name = '$id' AND c.name LIKE 'hostile-%'")
  dropped=$(sed -n 's/.*msg=stopped .*dropped_total=\([0-9]*\).*/\1/p' "$work/probe-$id.log" | tail -1)
  printf "%-6s %10s %10s %10s %10s %8s\n" "$id" "${produced:-?}" "$stored" "$distinct" "$hostile" "${dropped:-?}"
  [ -n "$produced" ] && [ "$produced" = "$stored" ] && [ "$stored" = "$distinct" ] && [ "$dropped" = 0 ] || status=1
done
echo "series: coordinator $series_early -> $series_late, probe us-1 $probe_series_early -> $probe_series_late"
echo "series added during the run (coordinator):"
comm -13 "$work/series-coordinator-early.txt" "$work/series-coordinator-late.txt" | sed 's/^/  /'
echo "(a colo label is a known Cloudflare colo or \"other\": a site sending random codes adds at most one series per known code)"
exit $status
