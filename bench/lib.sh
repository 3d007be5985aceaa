# Shell helpers for the whole-system benchmarks (sourced by detection.sh and soak.sh).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 30 s for TEXT to appear in FILE; exits naming both otherwise.
until_log() {  # file text
  for _ in $(seq 1 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "$(basename "$0"): \"$2\" not in $1:" >&2; tail -5 "$1" >&2; exit 1
}
