#!/usr/bin/env bash
# One hash of the sources the carried binaries are built from, so that
# scripts/gpu-check.sh can tell a stale gpu-bundle/ (no git needed there).
# `--files` prints the per-file hashes instead, to see which file differs.
set -euo pipefail
cd "$(dirname "$0")/.."
# Byte order whatever the machine's locale, so both machines list alike.
export LC_ALL=C
files() {
    find src tests/common tests/*.rs Cargo.toml Cargo.lock build.rs -type f -print0 |
        sort -z | xargs -0 sha256sum
}
if [ "${1:-}" = --files ]; then
    files
else
    files | sha256sum | cut -d' ' -f1
fi
