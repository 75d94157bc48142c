#!/usr/bin/env bash
# Run the nginx + Lua echo peer with ONE worker on a free loopback port.
#   bench/nginx/serve.sh [--host 127.0.0.1] [--port 0] [--rundir DIR]
# First stdout line, once it accepts connections:
#   "nginx: listening on ws://HOST:PORT"
# nginx cannot listen on port 0, so port 0 means: pick a free one by binding
# port 0 and reading it back (python3), then hand it to nginx (a small race,
# retried). Runs in the foreground; SIGTERM/SIGINT stop nginx (fast
# shutdown) and this script. The run dir (config, pid, error.log) is kept.
set -euo pipefail
HOST=127.0.0.1 PORT=0 RUNDIR=
while (( $# )); do
  case $1 in
    --host) HOST=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --rundir) RUNDIR=$2; shift 2 ;;
    *) echo "usage: serve.sh [--host H] [--port P] [--rundir DIR]" >&2; exit 2 ;;
  esac
done
[[ $HOST == 127.* ]] || { echo "serve.sh: loopback only" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
[[ -n $RUNDIR ]] || RUNDIR=$(mktemp -d /tmp/duplex-bench-nginx.XXXXXX)
mkdir -p "$RUNDIR"
RUNDIR=$(cd "$RUNDIR" && pwd)
chmod 755 "$RUNDIR"   # the worker runs as nobody when the master is root

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("'"$HOST"'", 0)); print(s.getsockname()[1])'
}

NPID=
stop() { [[ -n $NPID ]] && kill -TERM "$NPID" 2>/dev/null; wait 2>/dev/null; exit 0; }
trap stop TERM INT

for attempt in 1 2 3 4 5; do
  p=$PORT
  [[ $p == 0 ]] && p=$(free_port)
  sed -e "s|@PORT@|$p|g" -e "s|@RUNDIR@|$RUNDIR|g" \
    "$HERE/nginx.conf.in" > "$RUNDIR/nginx.conf"
  cp "$HERE/echo.lua" "$RUNDIR/echo.lua"  # readable by the worker (nobody)
  nginx -p "$RUNDIR" -c "$RUNDIR/nginx.conf" -e "$RUNDIR/error.log" \
    -g 'daemon off; worker_processes 1;' &
  NPID=$!
  for _ in $(seq 50); do
    kill -0 "$NPID" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then
      echo "nginx: listening on ws://$HOST:$p"
      wait "$NPID"; exit $?
    fi
    sleep 0.1
  done
  kill -TERM "$NPID" 2>/dev/null || true
  wait "$NPID" 2>/dev/null || true
  NPID=
  [[ $PORT == 0 ]] || break
  echo "serve.sh: nginx did not come up on port $p (attempt $attempt), see $RUNDIR/error.log" >&2
done
echo "serve.sh: nginx failed to start, see $RUNDIR/error.log" >&2
tail -5 "$RUNDIR/error.log" >&2 || true
exit 1
