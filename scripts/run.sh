#!/usr/bin/env bash
# The main job: set up, build, and relax the example structure shipped in
# examples/structures with the shipped default model (models/default).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
bin=target/release/e3relax
example=examples/structures/triclinic-K4P4Te8.extxyz
out=$(mktemp -d)
"$bin" relax "$example" -o "$out/relaxed.extxyz" --model models/default --trajectory "$out/layers.extxyz"
echo "--- input"
"$bin" info "$example"
echo "--- relaxed by e3relax (all layers in $out/layers.extxyz)"
"$bin" info "$out/relaxed.extxyz"
"$bin" convert "$out/relaxed.extxyz" "$out/POSCAR"
echo "--- $out/POSCAR"
cat "$out/POSCAR"
