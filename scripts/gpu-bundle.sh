#!/usr/bin/env bash
# Builds, here, what scripts/gpu-check.sh runs on a GPU machine (which has
# no Rust toolchain and no network): the CLI, the C library and the CUDA
# test binary, copied into gpu-bundle/ (git-ignored, a few MB: carry it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo build --release --quiet
cuda_tests=$(cargo test --release --no-run --test cuda --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda":
        print(m["executable"])')
rm -rf gpu-bundle
mkdir -p gpu-bundle
cp target/release/e3relax target/release/libe3relax.so "$cuda_tests" gpu-bundle/
mv "gpu-bundle/$(basename "$cuda_tests")" gpu-bundle/cuda-tests
git rev-parse HEAD >gpu-bundle/commit
scripts/source-hash.sh >gpu-bundle/source-hash
scripts/source-hash.sh --files >gpu-bundle/source-files
du -sh gpu-bundle
