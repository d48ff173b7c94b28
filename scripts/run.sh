#!/usr/bin/env bash
# The main job: set up, build the release binary, and run e3relax on the
# example structure shipped in examples/structures.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
bin=target/release/e3relax
example=examples/structures/triclinic-K4P4Te8.extxyz
"$bin" info "$example"
out=$(mktemp -d)
"$bin" convert "$example" "$out/POSCAR"
"$bin" convert "$out/POSCAR" "$out/example.cif"
echo "--- $out/POSCAR"
cat "$out/POSCAR"
