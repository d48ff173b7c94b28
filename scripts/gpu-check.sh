#!/usr/bin/env bash
# The CUDA checks, run on a GPU machine from the repository root with the
# binaries of scripts/gpu-bundle.sh in gpu-bundle/ and libtorch 2.11.0 from
# the machine's PyTorch. Writes its logs to $OUT (default gpu-check-output/).
#   1. tests/cuda.rs: CPU vs CUDA layer by layer (shipped and published
#      sizes), rotations and batching on CUDA, training and resuming on CUDA,
#      the C ABI on CUDA;
#   2. the CLI relaxing the example on cuda and on auto;
#   3. `e3relax bench model --device cuda`, one cell per process, with the
#      GPU memory sampled by nvidia-smi every 20 ms (the peak includes the
#      CUDA context).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-gpu-check-output}
mkdir -p "$out"
bundle=gpu-bundle
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
# The binaries were built in another checkout: name the shipped model here.
export E3RELAX_MODEL=$PWD/models/default
export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
status=0
# A bundle built from other sources than these fails in confusing ways.
if [ "$(scripts/source-hash.sh)" != "$(cat $bundle/source-hash)" ]; then
    echo "gpu-bundle/ was built from other sources than this checkout's: rerun scripts/gpu-bundle.sh" >&2
    diff <(cat $bundle/source-files 2>/dev/null) <(scripts/source-hash.sh --files) >&2
    exit 2
fi
{
    echo "bundle built from commit $(cat $bundle/commit)"
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
} | tee "$out/machine.txt"

echo "== tests/cuda.rs"
timeout 300 $bundle/cuda-tests --include-ignored --test-threads 1 --nocapture 2>&1 |
    tee "$out/cuda-tests.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

echo "== CLI on cuda and auto"
for device in cpu cuda auto; do
    timeout 60 $bundle/e3relax relax examples/structures/triclinic-K4P4Te8.extxyz \
        -o "$out/relaxed-$device.extxyz" --device "$device" --trajectory "$out/trajectory-$device.extxyz" ||
        status=1
done

echo "== bench model --device cuda"
for model in published default; do
    for cell in 8 mos2 1000 10000; do
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 \
            >"$out/gpu-memory-$model-$cell.txt" &
        sampler=$!
        timeout 120 $bundle/e3relax bench model --device cuda --models "$model" --cells "$cell" \
            --repeat 5 --json >"$out/bench-$model-$cell.json" || status=1
        kill "$sampler" 2>/dev/null
        wait "$sampler" 2>/dev/null
        peak=$(sort -n "$out/gpu-memory-$model-$cell.txt" | tail -n 1)
        echo "$model $cell: $(cat "$out/bench-$model-$cell.json") gpu_peak_MiB=$peak" |
            tee -a "$out/bench-cuda.txt"
    done
done
echo "gpu-check: $([ $status = 0 ] && echo passed || echo FAILED)" | tee -a "$out/machine.txt"
exit $status
