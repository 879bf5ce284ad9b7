#!/usr/bin/env bash
# Service tier: a real Prometheus (Debian's prometheus) that tests/test_service.py starts
# on loopback to scrape the generated service, and wrk, the load generator of
# benchmarks/service_load.py. Idempotent and quiet; safe to rerun.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
if [ "${#need_apt[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi
# Debian may start a prometheus service on install; the tests run their own on free ports.
command -v prometheus wrk >/dev/null
