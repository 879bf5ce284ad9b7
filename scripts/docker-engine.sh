#!/usr/bin/env bash
# Start, stop or report the Docker engine the container tier uses.
#
#   scripts/docker-engine.sh start    reuse a running engine, or start dockerd with the
#                                     loopback-only network flags and wait for its socket
#   scripts/docker-engine.sh stop     stop the engine only if this script started it
#   scripts/docker-engine.sh status   exit 0 when an engine answers
#
# The network rule of these machines: no bridge, no iptables, no forwarding, no
# masquerading. Builds and containers then use host networking only.
set -euo pipefail

STATE_DIR=${DOCKER_ENGINE_STATE_DIR:-/var/tmp/template-dockerd}
PIDFILE="$STATE_DIR/dockerd.pid"
LOGFILE="$STATE_DIR/dockerd.log"
DOCKERD_FLAGS=(--bridge=none --iptables=false --ip-forward=false --ip-masq=false)
TIMEOUT=${DOCKER_ENGINE_TIMEOUT:-60}
# Debian's client speaks BuildKit without plugins; prefer it when present.
if [ -z "${DOCKER:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker); fi
fi

answers() { "$DOCKER" info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

start() {
  if answers; then
    echo "docker engine: reusing the running engine ($("$DOCKER" info --format '{{.ServerVersion}}'))"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "docker engine: not running, and starting dockerd needs root" >&2
    return 1
  fi
  mkdir -p "$STATE_DIR"
  nohup dockerd "${DOCKERD_FLAGS[@]}" >"$LOGFILE" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq "$((TIMEOUT * 5))"); do
    if answers; then
      echo "docker engine: started (pid $(cat "$PIDFILE"), log $LOGFILE)"
      return 0
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "docker engine: dockerd exited; last lines of $LOGFILE:" >&2
      tail -n 20 "$LOGFILE" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "docker engine: no answer on the socket after ${TIMEOUT}s (log $LOGFILE)" >&2
  return 1
}

stop() {
  if [ ! -f "$PIDFILE" ]; then
    echo "docker engine: not started by this script; leaving it alone"
    return 0
  fi
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$PIDFILE"
  echo "docker engine: stopped (pid $pid)"
}

status() {
  if answers; then
    echo "docker engine: running ($("$DOCKER" info --format '{{.ServerVersion}}'))"
  else
    echo "docker engine: not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
