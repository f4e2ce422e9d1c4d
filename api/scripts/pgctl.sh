#!/usr/bin/env bash
# pgctl.sh - a private PostgreSQL cluster for `make run` and the end-to-end tests.
#
#   pgctl.sh start DATADIR SOCKDIR PORT LOGFILE   initdb on first use, start, wait until ready,
#                                                  create database "vigil" (superuser "vigil",
#                                                  trust auth on the Unix socket and 127.0.0.1 only)
#   pgctl.sh stop DATADIR                          fast shutdown, waits; no-op when not running
#
# As root, initdb/postgres refuse to run, so they run as the `postgres` user and the directories
# are handed to it.  VIGIL_PG_BINDIR overrides the server binaries' directory; VIGIL_PG_FAST=1
# turns off fsync (throwaway test clusters only).
set -euo pipefail

bindir=${VIGIL_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
  echo "pgctl: PostgreSQL server binaries not found (install the 'postgresql' package or set VIGIL_PG_BINDIR)" >&2
  exit 1
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}
case "$cmd" in
start)
  data=$2 sock=$3 port=$4 log=$5
  mkdir -p "$data" "$sock" "$(dirname "$log")"
  touch "$log"
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$data" "$sock" "$log"
    chmod 700 "$data"
    # postgres must be able to reach its directories through every parent.
    d=$(cd "$(dirname "$data")" && pwd)
    while [ "$d" != / ]; do
      if ! runuser -u postgres -- test -x "$d"; then
        echo "pgctl: giving others search (x) permission on $d so the postgres user can reach $data" >&2
        chmod o+x "$d"
      fi
      d=$(dirname "$d")
    done
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    as_pg "$bindir/initdb" -D "$data" -U vigil --auth=trust -E UTF8 --locale=C.UTF-8 -N >>"$log" 2>&1 || {
      echo "pgctl: initdb failed, see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
  fi
  # pg_ctl hands -o to a shell: quote the socket path (it may contain spaces).
  opts="-k '$sock' -p $port -c listen_addresses=127.0.0.1 -c max_connections=200"
  if [ "${VIGIL_PG_FAST:-0}" = 1 ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  # VIGIL_PG_EXTRA_OPTS: more server options for an experiment (e.g. "-c
  # shared_preload_libraries=pg_stat_statements"); never set by make run/test/bench.
  opts="$opts ${VIGIL_PG_EXTRA_OPTS:-}"
  as_pg "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 -o "$opts" start >/dev/null || {
    echo "pgctl: PostgreSQL did not start, see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
  if ! as_pg "$bindir/psql" -h "$sock" -p "$port" -U vigil -d postgres -tAqc \
       "SELECT 1 FROM pg_database WHERE datname = 'vigil'" | grep -q 1; then
    as_pg "$bindir/createdb" -h "$sock" -p "$port" -U vigil vigil
  fi
  ;;
stop)
  data=$2
  if [ -f "$data/postmaster.pid" ]; then
    as_pg "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  fi
  ;;
*)
  echo "usage: pgctl.sh start DATADIR SOCKDIR PORT LOGFILE | stop DATADIR" >&2
  exit 2
  ;;
esac
