# Shell helpers for the whole-system benchmarks (sourced by detection.sh and soak.sh).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 30 s for TEXT to appear in FILE; exits naming both otherwise.
until_log() {  # file text
  for _ in $(seq 1 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "$(basename "$0"): \"$2\" not in $1:" >&2; tail -5 "$1" >&2; exit 1
}

# Starts the fault lab's origin and its fake edge (colos IAD, FRA, SIN on
# consecutive ports from $edge_base) and waits for it; sets origin_port and
# edge_base, adds the process to pids. Needs $bin and $work.
start_lab() {
  origin_port=$(free_port)
  edge_base=$(free_port)
  "$bin/tools/lab/vantage-lab" --listen "127.0.0.1:$origin_port" --edge-colos IAD,FRA,SIN \
    --edge-port-base "$edge_base" >"$work/lab.log" 2>&1 &
  pids+=($!)
  until_log "$work/lab.log" "colo=SIN"
}
