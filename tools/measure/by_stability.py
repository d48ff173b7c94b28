#!/usr/bin/env python3
"""`e3relax eval` of models on the made families' pairs, split by whether
the family's prototype is a minimum of the labeller
(`data/prototype-stability.csv`, from prototype_stability.py): the mean
coordinate MAE (Å), shape deviation (Å^2) and volume error (Å^3) of
Dummy, the volume baseline and each model over the pairs of stable (and
untested) families and over those of unstable ones. A pair's family is
its id `proto-SEED-JOB-CHILD` -> `SEED-JOB`, the tail of its prototype.

  python3 tools/measure/by_stability.py \\
      --validation-of models/default-training/unseen-families-all.json \\
      models/default runs/some-run/best
"""

import argparse
import csv
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from residual_steps import eval_rows  # noqa: E402

METRICS = ("coordinate_mae", "shape_deviation", "volume_error")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--validation-of", required=True)
    parser.add_argument("--stability", default="data/prototype-stability.csv")
    parser.add_argument("--e3relax", default="target/release/e3relax")
    args = parser.parse_args()
    stable = {r["prototype"].rsplit(":", 1)[1]: r["stable"]
              for r in csv.DictReader(open(args.stability))}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            _, table = eval_rows(args.e3relax, model, args.validation_of, tmp)
            rows[model] = {r["id"]: r for r in table}

    def family(ident):
        parts = ident.split("-")
        if parts[0] != "proto" or len(parts) != 4:
            sys.exit(f"{ident}: not a made family's pair (proto-SEED-JOB-CHILD)")
        key = f"{parts[1]}-{parts[2]}"
        if key not in stable:
            sys.exit(f"{ident}: family {key} is not in {args.stability}")
        return stable[key]

    first = rows[args.models[0]]
    for name, kinds in (("stable or untested", ("yes", "untested")), ("unstable", ("no",))):
        ids = [i for i in first if family(i) in kinds]
        print(f"families {name}: {len(ids)} pairs")
        if not ids:
            continue

        def line(label, table, prefix=""):
            means = [sum(float(table[i][prefix + m]) for i in ids) / len(ids) for m in METRICS]
            print(f"  {label:<44} {means[0]:.4f} {means[1]:8.3f} {means[2]:8.3f}")

        line("Dummy", first, "dummy_")
        line("volume baseline", first, "baseline_")
        for model in args.models:
            line(model, rows[model])


if __name__ == "__main__":
    main()
