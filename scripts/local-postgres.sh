#!/usr/bin/env bash
# A PostgreSQL cluster in a directory of our own, listening on 127.0.0.1 only,
# with a generated password. Used by run-local.sh and by the test fixture.
#
#   local-postgres.sh start DIR [--fast]   start (initialising if needed); prints the URL
#   local-postgres.sh stop DIR             stop it
#   local-postgres.sh url DIR              print the URL of a running cluster
#
# --fast turns fsync off: for throwaway test clusters only.
# As root, the server runs as the postgres user (PostgreSQL refuses root).
set -euo pipefail

die() { echo "local-postgres.sh: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: local-postgres.sh start|stop|url DIR [--fast]"
cmd=$1 dir=$(realpath -m "$2") fast=${3:-}
# The postgres user may not be allowed into the caller's directory.
cd /

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bindir" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)"

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() {
  echo "postgresql://vantage:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/vantage"
}

running() { [ -f "$dir/data/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case $cmd in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
      chown postgres: "$dir"
      runuser -u postgres -- test -w "$dir" ||
        die "$dir: the postgres user cannot write here (a parent directory is private?); choose a directory under /var/tmp or /tmp"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      rm -rf "$dir/data"
      as_pg sh -c "umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > '$dir/password'"
      as_pg "$bindir/initdb" -D "$dir/data" -U vantage --pwfile="$dir/password" \
        --auth=scram-sha-256 -E UTF8 --no-instructions ${fast:+--no-sync} >"$dir/initdb.log" 2>&1 ||
        die "initdb failed; see $dir/initdb.log"
    fi
    if running; then url; exit 0; fi
    options="-c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
    [ "$fast" = --fast ] && options="$options -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    # The port of the last start first, so a restarted cluster keeps its URL.
    previous=$(cat "$dir/port" 2>/dev/null || true)
    for attempt in 1 2 3 4 5 6 7 8; do
      if [ "$attempt" = 1 ] && [ -n "$previous" ]; then port=$previous; else port=$(( 20000 + RANDOM % 30000 )); fi
      port_free "$port" || continue
      if as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
          -o "$options -c port=$port" start >/dev/null; then
        as_pg sh -c "echo $port > '$dir/port'"
        break
      fi
      port=
    done
    [ -n "${port:-}" ] || die "could not start PostgreSQL; see $dir/postgres.log"
    base="postgresql://vantage:$(cat "$dir/password")@127.0.0.1:$port"
    if [ "$(psql "$base/postgres" -Atc "SELECT 1 FROM pg_database WHERE datname = 'vantage'")" != 1 ]; then
      psql "$base/postgres" -qc "CREATE DATABASE vantage" >/dev/null
    fi
    url
    ;;
  stop)
    if running; then as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; fi
    ;;
  url)
    running || die "no PostgreSQL running in $dir"
    url
    ;;
  *) die "unknown command $cmd (start, stop or url)" ;;
esac
