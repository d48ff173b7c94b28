#!/usr/bin/env bash
# Small-prediction latency on an idle machine and with every core busy (as
# on a full MPI node), through the C ABI and the CLI, for the default
# thread policy and for one thread per core (libtorch's own default).
# A measurement for the notes, not a test. Needs a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
cores=$(nproc)
build=target/busy_node
mkdir -p "$build"
torch_lib=$(ls -d .libtorch/torch/lib 2>/dev/null || true)
cc -O2 -o "$build/busy_node" tools/measure/busy_node.c -Iinclude -Ltarget/release -le3relax \
    -Wl,-rpath,"$PWD/target/release" ${torch_lib:+-Wl,-rpath,"$PWD/$torch_lib"}
model=models/default
input="$build/small.vasp"
printf 'SrTiO3+H2\n1.0\n3.905 0 0\n0 3.905 0\n0 0 3.905\nSr Ti O H\n1 1 3 2\nCartesian\n0 0 0\n1.9525 1.9525 1.9525\n1.9525 1.9525 0\n1.9525 0 1.9525\n0 1.9525 1.9525\n0.9 0.9 3.0\n3.0 0.9 0.9\n' >"$input"

measure() {
    local label=$1 threads=$2
    local c_abi cli
    c_abi=$(env -u OMP_NUM_THREADS "$build/busy_node" "$model" "$threads" 50)
    local cli_threads=()
    if [ "$threads" -gt 0 ]; then cli_threads=(--threads "$threads"); fi
    local start end
    start=$EPOCHREALTIME
    cli=$(env -u OMP_NUM_THREADS target/release/e3relax relax "$input" -o "$build/out.vasp" \
        --model "$model" "${cli_threads[@]}" 2>&1 | sed -n 's/.* in \([0-9.]*\) s.*/\1/p')
    end=$EPOCHREALTIME
    printf '%-34s C ABI: %s | CLI: prediction %s s, whole process %.2f s\n' \
        "$label" "$c_abi" "$cli" "$(awk "BEGIN { print $end - $start }")"
}

echo "$cores cores; model $model"
measure "idle, default threads (1)" 0
measure "idle, $cores threads" "$cores"
pids=()
for _ in $(seq "$cores"); do
    (while :; do :; done) &
    pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
sleep 1
measure "all cores busy, default threads (1)" 0
measure "all cores busy, $cores threads" "$cores"
