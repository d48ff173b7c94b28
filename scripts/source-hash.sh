#!/usr/bin/env bash
# One hash of the sources the carried binaries are built from, so that
# scripts/gpu-check.sh can tell a stale gpu-bundle/ (no git needed there).
set -euo pipefail
cd "$(dirname "$0")/.."
find src tests/common tests/*.rs Cargo.toml Cargo.lock build.rs -type f -print0 |
    sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
