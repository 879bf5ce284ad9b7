#!/usr/bin/env bash
# Service tier: a real Prometheus (Debian's prometheus) that tests/test_service.py starts
# on loopback to scrape the generated service, and wrk, the load generator of
# benchmarks/service_load.py. Idempotent and quiet; safe to rerun.
set -euo pipefail

# shellcheck source=harness/prerequisites/apt-install-missing.sh
source "$(dirname "$0")/apt-install-missing.sh"
apt_install_missing prometheus=prometheus wrk=wrk
# Debian may start a prometheus service on install; the tests run their own on free ports.
command -v prometheus wrk >/dev/null
