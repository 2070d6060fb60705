#!/usr/bin/env bash
# A shared MLflow tracking server: PostgreSQL holds runs and the registry, the server itself
# stores artifacts (--serve-artifacts), so clients on other machines need only its URL.
#
#   scripts/tracking_server.sh start    # then: export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
#   scripts/tracking_server.sh status
#   scripts/tracking_server.sh stop     # keeps the data; start again to carry on
#
# Settings (environment): TRACKING_DIR (./tracking: pgdata/, artifacts/, logs), MLFLOW_HOST
# (127.0.0.1; 0.0.0.0 to serve other machines), MLFLOW_PORT (5000), PG_PORT (5433),
# MLFLOW_WORKERS (1), MLFLOW_ARGS (more `mlflow server` flags, e.g. --allowed-hosts).
# PostgreSQL only ever listens on loopback: the MLflow server is its one client.
# It refuses to run as root, so as root the database runs as the `postgres` user.
set -euo pipefail
DIR=$(mkdir -p "${TRACKING_DIR:-tracking}" && cd "${TRACKING_DIR:-tracking}" && pwd)
HOST=${MLFLOW_HOST:-127.0.0.1}
PORT=${MLFLOW_PORT:-5000}
PG_PORT=${PG_PORT:-5433}
PYTHON=${PYTHON:-python3}

die() { echo "error: tracking server: $*" >&2; exit 1; }

pg_bin() {  # Debian keeps the server binaries off PATH, under /usr/lib/postgresql/VERSION/bin
  command -v pg_ctl >/dev/null && { dirname "$(readlink -f "$(command -v pg_ctl)")"; return; }
  local found; found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$found" ] || die "PostgreSQL is not installed (Debian: apt-get install postgresql)"
  echo "$found"
}

as_pg() {  # run a PostgreSQL command as a user it accepts
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local bin; bin=$(pg_bin)
  if [ ! -f "$DIR/pgdata/PG_VERSION" ]; then
    mkdir -p "$DIR/pgdata"
    [ "$(id -u)" = 0 ] && chown postgres: "$DIR/pgdata"
    as_pg test -w "$DIR/pgdata" || die "user postgres cannot write $DIR/pgdata (a parent directory is private?)"
    as_pg "$bin/initdb" -D "$DIR/pgdata" -U postgres --auth=trust -E UTF8 >"$DIR/initdb.log" \
      || die "initdb failed; see $DIR/initdb.log"
  fi
  if ! as_pg "$bin/pg_ctl" -D "$DIR/pgdata" status >/dev/null; then
    as_pg "$bin/pg_ctl" -D "$DIR/pgdata" -l "$DIR/pgdata/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $DIR/pgdata" start >/dev/null \
      || die "PostgreSQL did not start; see $DIR/pgdata/postgres.log"
  fi
  as_pg "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "select 1 from pg_database where datname='mlflow'" \
    | grep -q 1 || as_pg "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres mlflow
}

start_mlflow() {
  mkdir -p "$DIR/artifacts"
  local extra; read -r -a extra <<<"${MLFLOW_ARGS:-}"  # split on spaces, no globbing (vm:* stays vm:*)
  running && { echo "already running: http://$HOST:$PORT"; return; }
  # setsid: the server and its worker processes form one group that `stop` ends together
  setsid "$PYTHON" -m mlflow server --host "$HOST" --port "$PORT" --workers "${MLFLOW_WORKERS:-1}" \
    --backend-store-uri "postgresql+psycopg2://postgres@127.0.0.1:$PG_PORT/mlflow" \
    --serve-artifacts --artifacts-destination "$DIR/artifacts" "${extra[@]}" \
    >"$DIR/mlflow.log" 2>&1 </dev/null &
  echo $! >"$DIR/mlflow.pid"
  for _ in $(seq 240); do
    "$PYTHON" - "$HOST" "$PORT" <<'EOF' && { echo "MLflow server: http://$HOST:$PORT (data in $DIR)"; return; }
import sys, urllib.request
host = "127.0.0.1" if sys.argv[1] == "0.0.0.0" else sys.argv[1]
try:
    urllib.request.urlopen(f"http://{host}:{sys.argv[2]}/health", timeout=2)
except OSError:
    sys.exit(1)
EOF
    kill -0 "$(cat "$DIR/mlflow.pid")" 2>/dev/null || die "mlflow server exited; see $DIR/mlflow.log"
    sleep 0.5
  done
  die "mlflow server did not answer within 2 minutes; see $DIR/mlflow.log"
}

running() { [ -f "$DIR/mlflow.pid" ] && kill -0 "$(cat "$DIR/mlflow.pid")" 2>/dev/null; }

stop() {
  if [ -f "$DIR/mlflow.pid" ]; then  # the server, uvicorn and MLflow's job consumers: one process group
    local group; group=$(cat "$DIR/mlflow.pid")
    kill -TERM -- "-$group" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 -- "-$group" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$group" 2>/dev/null || true
    rm -f "$DIR/mlflow.pid"
  fi
  [ -f "$DIR/pgdata/postmaster.pid" ] && as_pg "$(pg_bin)/pg_ctl" -D "$DIR/pgdata" -m fast -w stop >/dev/null
  echo "stopped (data kept in $DIR)"
}

case "${1:-}" in
  start) start_postgres; start_mlflow ;;
  stop) stop ;;
  status)
    if running; then
      echo "running: http://$HOST:$PORT (pid $(cat "$DIR/mlflow.pid"), data in $DIR)"
    else echo "not running"; exit 3; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
