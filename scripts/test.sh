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

missing=()
need git || missing+=(git)
need tmux || missing+=(tmux) # terminal end-to-end tests
need openssl || missing+=(openssl) # self-signed certificates for the HTTPS tests
need curl || missing+=(curl) # the daemon's own HTTPS listener, checked with curl
need gpg || missing+=(gnupg) # OpenPGP-signed commits in the signature tests (the daemon verifies in process)
need ssh-keygen || missing+=(openssh-client) # SSH-signed commits in the signature tests
need prometheus || missing+=(prometheus) # the cost controller reads utilisation from a real Prometheus
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# Every rendered Kubernetes manifest is checked with kubernetes-validate --strict (it ships the
# official schemas and works offline).
if ! need kubernetes-validate; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore kubernetes-validate
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
# Scripts installed by pip may live outside PATH (user or venv installs).
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH
need kubernetes-validate || { echo "kubernetes-validate could not be installed" >&2; exit 1; }
# The AWS driver is tested against a moto server on loopback (each test starts its own).
if ! need moto_server; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'moto[server]'
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
need moto_server || { echo "moto_server could not be installed" >&2; exit 1; }
# The API is checked against its OpenAPI document by schemathesis, a property-based API tester.
if ! need schemathesis; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore schemathesis
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
need schemathesis || { echo "schemathesis could not be installed" >&2; exit 1; }
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
# A short coverage-guided run of every fuzz target (the long run: docs/FUZZING.md).
echo "==> fuzzing (short run)"
./scripts/fuzz.sh "${PLATFORMD_FUZZ_SECONDS:-10}"
