#!/usr/bin/env bash
# Python tooling: the template engines and the test tools pinned in requirements-dev.txt,
# in a project-local virtual environment (.venv). Nothing goes into the system Python,
# which Debian 12 and Ubuntu 24.04 refuse to change (PEP 668, externally-managed-environment).
# Idempotent and quick when satisfied: .venv/requirements-dev.txt is the list last installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.venv
STAMP="$VENV/requirements-dev.txt"
BASE_PYTHON=${BASE_PYTHON:-python3}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "" 2>/dev/null \
  && cmp -s requirements-dev.txt "$STAMP"; then
  exit 0
fi

if ! command -v "$BASE_PYTHON" >/dev/null 2>&1; then
  echo "10-python.sh: $BASE_PYTHON is not installed (install Python 3.11 or later)" >&2
  exit 1
fi
# Debian and Ubuntu ship venv's pip bootstrap (ensurepip) in a separate package.
if ! "$BASE_PYTHON" -c "import ensurepip, venv" 2>/dev/null; then
  echo "10-python.sh: $BASE_PYTHON cannot create a virtual environment;" \
    "install its venv module (Debian/Ubuntu: apt-get install python3-venv)" >&2
  exit 1
fi
# Built afresh whenever the list changes, so a package dropped from it is gone too
# (pip's wheel cache keeps this quick).
"$BASE_PYTHON" -m venv --clear "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
cp requirements-dev.txt "$STAMP"
