#!/usr/bin/env bash
# The whole test suite: set up, check formatting and lints, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --release --all-targets --quiet -- -D warnings
cargo test --release --all-targets
