#!/usr/bin/env bash
# Installs libtorch 2.11.0 (the build tch 0.24.0 pins) from PyPI into
# .libtorch/, idempotently: no CPU-only libtorch exists on PyPI, so this is
# the torch wheel without its dependencies, plus the two small NVIDIA wheels
# the CPU libraries need to start. Used by scripts/setup.sh and by the
# Python package's build (python/setup.py).
set -euo pipefail
cd "$(dirname "$0")/.."

# The version is Cargo.toml's [package.metadata.e3relax] libtorch-version.
TORCH_VERSION=$(sed -n 's/^libtorch-version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$TORCH_VERSION" ] || { echo "get-libtorch: no libtorch-version in Cargo.toml" >&2; exit 1; }
marker=.libtorch/.e3relax-torch-$TORCH_VERSION
if [ ! -f "$marker" ] || [ ! -f .libtorch/torch/lib/libtorch_cpu.so ]; then
    echo "setup: installing libtorch $TORCH_VERSION into .libtorch (about 540 MB download)" >&2
    rm -rf .libtorch
    python3 -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-deps \
        --target .libtorch "torch==$TORCH_VERSION" \
        'nvidia-cuda-runtime==13.0.96.*' 'nvidia-cuda-cupti==13.0.85.*'
    touch "$marker"
fi
