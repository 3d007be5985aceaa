#!/usr/bin/env bash
# Installs the Debian 12 packages Vantage needs to build, test and run locally,
# if any are missing. Idempotent: does nothing (and needs no network) when all
# are present.
set -euo pipefail

packages=(
  # build
  cmake g++ make pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libc-ares-dev
  libboost-dev libssl-dev libpqxx-dev prometheus-cpp-dev libfmt-dev libspdlog-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev zlib1g-dev libre2-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  # running locally: PostgreSQL server and client, and curl for the status line
  postgresql postgresql-client curl
  # the system trust store, for https checks
  ca-certificates
  # Prometheus (and promtool) and Alertmanager: the alert rules' tests, the
  # paging end-to-end test and the local run
  prometheus prometheus-alertmanager
  # the function-size check (scripts/function-sizes.sh)
  universal-ctags
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The Node.js example client (examples/node) and its end-to-end test: node and
# npm from Debian, unless the machine already has them (another nodejs package,
# such as NodeSource's, brings its own npm; Debian's npm would conflict with it).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
sudo=
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: run as root, or install sudo, to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
