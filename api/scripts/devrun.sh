#!/usr/bin/env bash
# devrun.sh - what `make run` does after building: the embedded-default PostgreSQL cluster (unless
# DATABASE_URL is set), vigil-hotpath, then vigil-api in the foreground of this terminal.  Ctrl-C
# (or SIGTERM) stops all three cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."

data=${VIGIL_DATA_DIR:-./var}
mkdir -p "$data"
data=$(cd "$data" && pwd)
export VIGIL_DATA_DIR=$data
port=${VIGIL_PG_PORT:-54329}
export VIGIL_HOTPATH_SOCKET=${VIGIL_HOTPATH_SOCKET:-var/run/hotpath.sock}

started_pg=0
api_pid="" hp_pid=""
cleanup() {
  trap - INT TERM EXIT
  [ -n "$api_pid" ] && kill -TERM "$api_pid" 2>/dev/null || true
  [ -n "$hp_pid" ] && kill -TERM "$hp_pid" 2>/dev/null || true
  [ -n "$api_pid" ] && wait "$api_pid" 2>/dev/null || true
  [ -n "$hp_pid" ] && wait "$hp_pid" 2>/dev/null || true
  if [ "$started_pg" = 1 ]; then
    echo "stopping PostgreSQL ($data/pg)" >&2
    bash api/scripts/pgctl.sh stop "$data/pg"
  fi
}
trap cleanup INT TERM EXIT

if [ -z "${DATABASE_URL:-}" ]; then
  echo "starting the embedded PostgreSQL: $data/pg on 127.0.0.1:$port (log: $data/pg.log)" >&2
  bash api/scripts/pgctl.sh start "$data/pg" "$data/pgsock" "$port" "$data/pg.log"
  started_pg=1
  export DATABASE_URL="postgresql://vigil@/vigil?host=$data/pgsock&port=$port"
fi

# A development admin key, created once and kept in var/ (mode 0600) unless one is given.
if [ -z "${VIGIL_BOOTSTRAP_KEY:-}" ]; then
  if [ ! -s "$data/dev-api-key" ]; then
    (umask 077; echo "vgl_dev_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$data/dev-api-key")
  fi
  VIGIL_BOOTSTRAP_KEY=$(cat "$data/dev-api-key")
  export VIGIL_BOOTSTRAP_KEY
fi

bin/vigil-hotpath &
hp_pid=$!
for _ in $(seq 100); do [ -S "$VIGIL_HOTPATH_SOCKET" ] && break; sleep 0.05; done

bin/vigil-api &
api_pid=$!
addr=${VIGIL_HTTP_ADDR:-127.0.0.1:8080}
for _ in $(seq 100); do
  curl -fsS "http://$addr/health" >/dev/null 2>&1 && break
  kill -0 "$api_pid" 2>/dev/null || break
  sleep 0.1
done
# An empty database gets the demo: the committed model (api/demo/demo_model.json, trained by
# api/demo/train_demo.py), a policy using it, and three users.
auth="Authorization: Bearer $VIGIL_BOOTSTRAP_KEY"
if curl -fsS -H "$auth" "http://$addr/api/v1/models?limit=1" 2>/dev/null | grep -q '"data":\[\]'; then
  model=$(curl -fsS -H "$auth" -H 'Content-Type: application/json' \
            --data-binary @api/demo/demo_model.json "http://$addr/api/v1/models?name=demo-fraud" |
          sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
  if [ -n "$model" ]; then
    curl -fsS -o /dev/null -X PUT -H "$auth" -H 'Content-Type: application/json' "http://$addr/api/v1/policy" \
      -d "{\"champion_model_id\":\"$model\",\"review_threshold\":0.5,\"block_threshold\":0.8,\"fallback_decision\":\"review\"}"
    for u in alice:DE bob:FR carol:US; do
      curl -fsS -o /dev/null -H "$auth" -H 'Content-Type: application/json' "http://$addr/api/v1/users" \
        -d "{\"external_id\":\"${u%%:*}\",\"country\":\"${u##*:}\",\"name\":\"${u%%:*}\"}" || true
    done
    echo "loaded the demo: model demo-fraud ($model) as champion, users alice, bob, carol" >&2
  else
    echo "could not load the demo model" >&2
  fi
fi

cat >&2 <<MSG

  vigil is running:  http://$addr   (Ctrl-C stops the API, the worker and PostgreSQL)
  development API key (admin):  $VIGIL_BOOTSTRAP_KEY
  try:  curl -H "Authorization: Bearer $VIGIL_BOOTSTRAP_KEY" http://$addr/api/v1/users

MSG
# Return when either process exits (or on Ctrl-C, through the trap).
wait -n "$api_pid" "$hp_pid" || true
