#!/usr/bin/env bash
# Python tooling: the template engines and the test tools, pinned in requirements-dev.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -r requirements-dev.txt
