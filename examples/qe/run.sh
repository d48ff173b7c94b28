#!/usr/bin/env bash
# Runs pw.x from the input and from e3relax's prediction, and prints the
# BFGS steps, wall time and final enthalpy of both.
#
#   examples/qe/run.sh QE_PRERELAX IN.pwi [MODEL_DIR]
#
# QE_PRERELAX is the built examples/qe/prerelax.f90 (see the README);
# MODEL_DIR '' or absent: the shipped model. pw.x runs as one process with
# OMP_NUM_THREADS=1 in a temporary folder.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 QE_PRERELAX IN.pwi [MODEL_DIR]" >&2
    exit 2
fi
prerelax=$(realpath "$1")
input=$(realpath "$2")
model=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
start=$EPOCHREALTIME
"$prerelax" "$input" predicted.pwi "$model" >/dev/null
predict_seconds=$(awk "BEGIN { print $EPOCHREALTIME - $start }")
cp "$input" input.pwi

# "final enthalpy" is BFGS's last one, in the plane-wave basis of the
# starting cell; "final scf energy" is pw.x's closing SCF in a fresh basis
# at the relaxed structure: the number to compare between starts.
printf '%-10s %10s %10s %22s %22s\n' start "bfgs steps" "time (s)" "final enthalpy (Ry)" "final scf energy (Ry)"
for run in input predicted; do
    start=$EPOCHREALTIME
    OMP_NUM_THREADS=1 pw.x -in "$run.pwi" >"$run.out" 2>&1 || { tail -20 "$run.out" >&2; exit 1; }
    seconds=$(awk "BEGIN { print $EPOCHREALTIME - $start }")
    [ "$run" = predicted ] && seconds=$(awk "BEGIN { print $seconds + $predict_seconds }")
    steps=$(sed -n 's/.*bfgs converged in .* and *\([0-9]*\) bfgs steps.*/\1/p' "$run.out" | tail -1)
    enthalpy=$(sed -n 's/.*Final enthalpy = *\([-0-9.]*\) Ry.*/\1/p' "$run.out" | tail -1)
    energy=$(sed -n 's/^! *total energy *= *\([-0-9.]*\) Ry.*/\1/p' "$run.out" | tail -1)
    printf '%-10s %10s %10.2f %22s %22s\n' "${run/predicted/e3relax}" "${steps:-?}" "$seconds" "${enthalpy:-?}" "${energy:-?}"
done
