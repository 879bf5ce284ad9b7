# shellcheck shell=bash
# Sourced by harness/prerequisites/*.sh (not a step of its own): installs, in one apt-get run,
# the Debian packages whose command is missing.
#   apt_install_missing COMMAND=PACKAGES...   COMMAND: a name on PATH, or an absolute path
#                                             that must be executable; PACKAGES: one or
#                                             more package names separated by spaces
apt_install_missing() {
  local sudo="" wanted=() pair command packages
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  for pair in "$@"; do
    command=${pair%%=*}
    if [[ $command == /* ]]; then
      [ -x "$command" ] && continue
    else
      command -v "$command" >/dev/null 2>&1 && continue
    fi
    read -ra packages <<<"${pair#*=}"
    wanted+=("${packages[@]}")
  done
  [ "${#wanted[@]}" -gt 0 ] || return 0
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${wanted[@]}" >/dev/null
}
