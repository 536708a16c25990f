#!/usr/bin/env bash
# The whole test suite, installing what it needs. This is the README's test command and what CI
# runs (.ci/run). Builds go to CARGO_TARGET_DIR (default: a cache outside the clone) so repeated
# runs reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/platformd-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Snapshot tests must match what is committed; never write new snapshots here.
export INSTA_UPDATE=no

need() { command -v "$1" >/dev/null 2>&1; }

if ! need git; then
    apt-get update -qq && apt-get install -y -qq git
fi
if ! need cargo-nextest; then
    cargo install --locked cargo-nextest
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy

echo "==> formatting"
cargo fmt --all --check
echo "==> lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> tests"
cargo nextest run --workspace --locked --no-fail-fast
