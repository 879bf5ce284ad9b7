#!/usr/bin/env bash
# Docker for the container tier: Debian's engine (docker.io, 20.10 with BuildKit),
# debootstrap for the stand-in base images, and the compose v2 and buildx CLI
# plugins unpacked from Debian trixie's packages (they depend only on libc).
# Idempotent and quiet; safe to rerun. The engine itself is started by
# harness/docker-engine.sh (the test session starts it too when it is down).
set -euo pipefail

PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# shellcheck source=harness/prerequisites/apt-install-missing.sh
source "$(dirname "$0")/apt-install-missing.sh"
apt_install_missing dockerd=docker.io /usr/bin/docker=docker.io debootstrap=debootstrap \
  readelf=binutils curl=curl

# docker compose v2 and docker buildx as CLI plugins, from trixie's .debs.
plugin_ok() { [ -x "$PLUGIN_DIR/docker-$1" ] && "$PLUGIN_DIR/docker-$1" docker-cli-plugin-metadata >/dev/null 2>&1; }
if ! plugin_ok compose || ! plugin_ok buildx; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/sources.d"
  # The Debian mirror this machine already uses (never hard-coded; harness/debian.py).
  mirror=$(cd "$(dirname "$0")/../.." && .venv/bin/python -m harness.debian)
  echo "deb ${mirror} trixie main" > "$work/sources.list"
  apt_opts=(-qq -o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=$work/sources.d"
            -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::archives=$work/archives"
            -o "APT::Get::List-Cleanup=0" -o "Dir::State::status=/dev/null"
            -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update >/dev/null
  (cd "$work" && apt-get "${apt_opts[@]}" download docker-compose docker-buildx >/dev/null)
  for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
  $SUDO mkdir -p "$PLUGIN_DIR"
  for plugin in compose buildx; do
    src=$(find "$work/root" -path "*/cli-plugins/docker-$plugin" | head -n1)
    [ -L "$src" ] && src="$work/root$(readlink "$src")"
    [ -f "$src" ] || src=$(find "$work/root/usr/bin" "$work/root/usr/libexec" -type f -name "docker-$plugin" | head -n1)
    $SUDO install -m 0755 "$src" "$PLUGIN_DIR/docker-$plugin"
  done
fi
