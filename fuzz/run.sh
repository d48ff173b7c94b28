#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each. cargo-fuzz needs
# nightly flags; RUSTC_BOOTSTRAP lets the one stable toolchain here take
# them. Without a sanitizer (-s none): Rust's own checks catch the bugs.
#   cargo install cargo-fuzz && fuzz/run.sh 120
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
export RUSTC_BOOTSTRAP=1
export LD_LIBRARY_PATH="$PWD/../.libtorch/torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p corpus/poscar corpus/extxyz corpus/cif corpus/c_api
cp ../tests/fixtures/*.vasp ../tests/fixtures/pymatgen_POSCAR corpus/poscar/
cp ../tests/fixtures/*.extxyz corpus/extxyz/
cp ../tests/fixtures/*.cif corpus/cif/
for target in poscar extxyz cif c_api; do
    cargo fuzz run -s none --release "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=4096
done
