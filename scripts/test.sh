#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need when missing, then runs the
# formatting and lint checks and every test tier — unit, in-process router, and end-to-end with a
# real distribution registry, skopeo, PostgreSQL.
#
#   scripts/test.sh                 everything
#   scripts/test.sh <filter>        only tests matching <filter> (passed to cargo nextest run)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/depproxy/target}
export DEPPROXY_TEST_DIR=${DEPPROXY_TEST_DIR:-/tmp/depproxy-test}
export DEPPROXY_TEST_POSTGRES_URL=${DEPPROXY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
mkdir -p "$DEPPROXY_TEST_DIR"

scripts/install-test-deps.sh

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "no module cycles"
scripts/check-module-cycles.py

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast -- "$@"
fi
