#!/usr/bin/env bash
# Installs and starts everything the test suite needs, on a fresh machine or a warm one.
# Each numbered harness/prerequisites/*.sh is idempotent and owns one kind of prerequisite.
set -euo pipefail
cd "$(dirname "$0")/.."
for step in harness/prerequisites/[0-9]*.sh; do
    started=$(date +%s)
    echo "==> ${step}"
    bash "${step}"
    echo "    done in $(( $(date +%s) - started )) s"
done
