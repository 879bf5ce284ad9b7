#!/usr/bin/env bash
# Start, stop or report the test suite's own Docker engine.
#
#   harness/docker-engine.sh start    start the suite's dockerd (reused when it already answers)
#   harness/docker-engine.sh stop     stop the suite's dockerd (its data stays)
#   harness/docker-engine.sh status   exit 0 when the suite's engine answers
#   harness/docker-engine.sh host     print its DOCKER_HOST (unix://.../docker.sock)
#   harness/docker-engine.sh remove   stop it and delete its folder (images, caches)
#
# The suite never talks to the engine a user works with (/var/run/docker.sock): it
# builds stand-in base images under official names (harness/standins.py), and
# those must never feed a user's real builds. So this engine has a socket, data root,
# exec root (its containerd lives there), pidfile, config file and containerd namespaces
# of its own, and can run beside another dockerd. Its data survives between sessions.
#
# The network rule of these machines: no bridge, no iptables, no forwarding, no
# masquerading. Builds and containers then use host networking only.
set -euo pipefail

ENGINE_DIR=${TEMPLATE_DOCKER_ENGINE_DIR:-/var/tmp/template-dockerd}
SOCKET="$ENGINE_DIR/docker.sock"
HOST="unix://$SOCKET"
PIDFILE="$ENGINE_DIR/engine.pid"
LOGFILE="$ENGINE_DIR/engine.log"
CONFIG="$ENGINE_DIR/daemon.json"
DEFAULT_SOCKET=/var/run/docker.sock
DOCKERD_FLAGS=(
  --host "$HOST"
  --data-root "$ENGINE_DIR/data"
  --exec-root "$ENGINE_DIR/exec"
  --pidfile "$PIDFILE"
  --config-file "$CONFIG"
  --containerd-namespace template-test
  --containerd-plugins-namespace template-test-plugins
  --bridge=none --iptables=false --ip-forward=false --ip-masq=false
)
TIMEOUT=${DOCKER_ENGINE_TIMEOUT:-60}
# Debian's client speaks BuildKit without plugins; prefer it when present.
if [ -z "${DOCKER:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || echo docker); fi
fi

if [ "$(realpath -m "$SOCKET")" = "$(realpath -m "$DEFAULT_SOCKET")" ]; then
  echo "docker engine: $SOCKET is the default engine's socket; pick another TEMPLATE_DOCKER_ENGINE_DIR" >&2
  exit 2
fi

answers() { DOCKER_HOST=$HOST "$DOCKER" info --format '{{.ServerVersion}}' 2>/dev/null; }

start() {
  local version
  if version=$(answers); then
    echo "docker engine: reusing the suite's engine at $SOCKET ($version)"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "docker engine: the suite's engine ($SOCKET) is not running, and starting dockerd needs root" >&2
    return 1
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "docker engine: dockerd is not installed (run harness/prerequisites/30-docker.sh)" >&2
    return 1
  fi
  mkdir -p "$ENGINE_DIR"
  [ -f "$CONFIG" ] || echo '{}' >"$CONFIG"
  nohup dockerd "${DOCKERD_FLAGS[@]}" >"$LOGFILE" 2>&1 &
  local pid=$!
  for _ in $(seq "$((TIMEOUT * 5))"); do
    if version=$(answers); then
      echo "docker engine: started the suite's engine at $SOCKET (pid $pid, $version, log $LOGFILE)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "docker engine: dockerd exited; last lines of $LOGFILE:" >&2
      tail -n 20 "$LOGFILE" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "docker engine: no answer on $SOCKET after ${TIMEOUT}s (log $LOGFILE)" >&2
  return 1
}

# dockerd writes and removes this pidfile itself; a stale one (after a crash) may name a
# reused pid, so only a dockerd serving this engine's socket is signalled.
ours() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q "dockerd .*--host $HOST "; }

stop() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if [ -z "$pid" ] || ! ours "$pid"; then
    rm -f "$PIDFILE"
    echo "docker engine: the suite's engine is not running"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 150); do ours "$pid" || break; sleep 0.2; done
  if ours "$pid"; then
    echo "docker engine: dockerd (pid $pid) did not stop within 30 s" >&2
    return 1
  fi
  echo "docker engine: stopped the suite's engine (pid $pid); its data stays in $ENGINE_DIR"
}

status() {
  local version
  if version=$(answers); then
    echo "docker engine: the suite's engine answers at $SOCKET ($version)"
  else
    echo "docker engine: the suite's engine is not running ($SOCKET)"
    return 1
  fi
}

remove() {
  stop
  if grep -q " $ENGINE_DIR/" /proc/mounts; then
    echo "docker engine: something is still mounted under $ENGINE_DIR; not removing it" >&2
    return 1
  fi
  rm -rf "$ENGINE_DIR"
  echo "docker engine: removed $ENGINE_DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  host) echo "$HOST" ;;
  remove) remove ;;
  *) echo "usage: $0 start|stop|status|host|remove" >&2; exit 2 ;;
esac
