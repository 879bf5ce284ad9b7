#!/usr/bin/env bash
# Rust tools for the slow tier (tests/test_service.py): cargo with rustfmt and
# clippy, and systemfd, which holds the listening socket across restarts.
# Idempotent and quiet; safe to rerun.
set -euo pipefail

SYSTEMFD_VERSION=0.4.6

if ! command -v cargo >/dev/null 2>&1; then
  echo "20-rust-tools.sh: cargo is not installed (install Rust with rustup first)" >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component" >/dev/null
  fi
done

if [ "$(systemfd --version 2>/dev/null)" != "systemfd $SYSTEMFD_VERSION" ]; then
  cargo install --quiet --locked systemfd --version "$SYSTEMFD_VERSION"
fi
