#!/usr/bin/env bash
# Database tier: Debian's PostgreSQL server. The tests start throwaway clusters with initdb
# and pg_ctl on loopback (harness/postgres.py); none is started here. Idempotent; safe to rerun.
set -euo pipefail

# shellcheck source=harness/prerequisites/apt-install-missing.sh
source "$(dirname "$0")/apt-install-missing.sh"
# pg_ctlcluster comes with the server package (postgresql-common); initdb is checked below.
apt_install_missing psql=postgresql-client pg_ctlcluster=postgresql
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
