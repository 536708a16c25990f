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
need promtool || missing+=(prometheus) # alert rules are unit-tested with `promtool test rules`
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql) # the shared store's backend
need psql || missing+=(postgresql-client)
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

# One PostgreSQL cluster on a free loopback port for the whole run: each store test takes a
# database of its own in it (tests that restart the server start a private one). PostgreSQL
# refuses to run as root, so as root it runs as the postgres user. Stopped when this script ends.
pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
pg_dir="$(mktemp -d /tmp/platformd-test-pg.XXXXXX)"
pg_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_postgres=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$pg_dir"
    as_postgres=(runuser -u postgres --)
fi
"${as_postgres[@]}" "$pg_bin/initdb" -A trust -U postgres --no-sync -E UTF8 -D "$pg_dir/data" >"$pg_dir/initdb.log"
"${as_postgres[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-p $pg_port -h 127.0.0.1 -k $pg_dir -c fsync=off -c max_connections=300" start >/dev/null
stop_postgres() {
    "${as_postgres[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
}
trap stop_postgres EXIT
export PLATFORMD_TEST_POSTGRES="postgres://postgres@127.0.0.1:$pg_port/postgres"

echo "==> formatting"
cargo fmt --all --check
echo "==> lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> tests"
cargo nextest run --workspace --locked --no-fail-fast
# A short coverage-guided run of every fuzz target (the long run: docs/FUZZING.md).
echo "==> fuzzing (short run)"
./scripts/fuzz.sh "${PLATFORMD_FUZZ_SECONDS:-10}"
