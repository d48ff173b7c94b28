#!/usr/bin/env bash
# Several training runs side by side on one GPU machine, within a time
# budget, with what they learned copied back in at most 8 files.
#
#   scripts/gpu-train.sh MINUTES CONFIG.json [CONFIG.json ...]
#
# Runs on the GPU machine from the repository root, with the CLI from
# scripts/gpu-bundle.sh in gpu-bundle/ (or E3RELAX=path) and libtorch from
# the machine's PyTorch; each config's `data` folders must travel with the
# working tree (carry them). Every run gets MINUTES (its max_minutes, and a
# hard limit a minute later); all run at once, each with 2 CPU threads.
# Writes to $OUT (default gpu-train-output/):
#   runs.tar.gz       every run's metrics.csv, train_config.json and log
#   best.tar.part-XX  every run's best/ model, split into 15 MB parts
#                     (cat best.tar.part-* | tar x)
#   summary.txt       each run's best validation round
# A device call brings back at most 64 MB: an F=64 model is 5 MB, F=128
# 20 MB, F=256 80 MB (too big; read its summary and metrics instead).
# Nothing here waits on a process that does not end by itself.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
if [ $# -lt 2 ]; then
    echo "usage: $0 MINUTES CONFIG.json [CONFIG.json ...]" >&2
    exit 2
fi
minutes=$1
shift
out=${OUT:-gpu-train-output}
mkdir -p "$out"
e3relax=${E3RELAX:-gpu-bundle/e3relax}
if python3 -c 'import torch' 2>/dev/null; then
    torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
work=$(mktemp -d)
hard_limit=$(python3 -c "print(int(60 * $minutes) + 60)")
pids=()
names=()
for config in "$@"; do
    name=$(basename "$config" .json)
    names+=("$name")
    mkdir -p "$work/$name"
    timeout "$hard_limit" "$e3relax" train --config "$config" -o "$work/$name/run" \
        --max-minutes "$minutes" >"$work/$name/log.txt" 2>&1 &
    pids+=($!)
done
status=0
# Only the training processes are waited for (each ends by itself or by
# its timeout).
for k in "${!pids[@]}"; do
    if ! wait "${pids[$k]}"; then
        echo "${names[$k]}: training ended with an error or its time limit (see its log)" >&2
        status=1
    fi
done
: >"$out/summary.txt"
for name in "${names[@]}"; do
    csv=$work/$name/run/metrics.csv
    if [ -f "$csv" ]; then
        python3 - "$name" "$csv" >>"$out/summary.txt" <<'EOF'
import csv, sys
name, path = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(path)))
best = min(rows, key=lambda r: float(r["val_coordinate_mae"]))
print(f"{name}: {len(rows)} epochs, best epoch {best['epoch']}: coord "
      f"{float(best['val_coordinate_mae']):.4f} A, shape {float(best['val_shape_deviation']):.3f} A^2, "
      f"volume {float(best['val_volume_error']):.3f} A^3 ({float(best['seconds']):.0f} s)")
EOF
    else
        echo "$name: no metrics (see its log)" >>"$out/summary.txt"
    fi
done
cat "$out/summary.txt"
(cd "$work" && tar czf - */log.txt */run/metrics.csv */run/train_config.json 2>/dev/null) >"$out/runs.tar.gz"
(cd "$work" && tar cf - $(for n in "${names[@]}"; do [ -d "$n/run/best" ] && echo "$n/run/best"; done)) |
    split -b 15M - "$out/best.tar.part-"
rm -rf "$work"
exit $status
