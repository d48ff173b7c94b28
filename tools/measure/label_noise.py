#!/usr/bin/env python3
"""How well defined the labels are: the label's potential, another optimizer.

Relaxes validation inputs of a training run again with the potential that
made the labels (CHGNet through ASE, FrechetCellFilter, fmax 0.05 eV/Å, at
most 500 steps) but with BFGS instead of the labels' FIRE, and reports per
group (an info key, `source` by default) how far that second answer lies
from the label, in the metrics of `e3relax eval` (coordinate MAE against
the label unwrapped next to the input, shape deviation, volume error),
beside the model's own error from `e3relax eval --csv`. Where two
optimizers of the same potential disagree by as much as the model errs, no
model can do much better: the input does not decide which minimum a
relaxation ends in.

  /opt/chgnet-venv/bin/python tools/measure/label_noise.py --model models/default \\
      --train-config models/default/train.json --per-group 20 --out runs/label-noise.json
"""

import argparse
import json
import multiprocessing
import random
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from residual_steps import eval_rows, label_calculator, pairs_by_id  # noqa: E402

METRICS = ("coordinate_mae", "shape_deviation", "volume_error")


def unwrapped_next_to(positions, lattice, reference):
    """Each target atom's periodic image nearest its reference position
    (the metric's unwrap: rounded fractional shift, then the 27 neighbours)."""
    inverse = np.linalg.inv(lattice)
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    out = []
    for p, r in zip(positions, reference):
        base = p + np.round((r - p) @ inverse) @ lattice
        candidates = base + shifts @ lattice
        out.append(candidates[np.argmin(np.linalg.norm(candidates - r, axis=1))])
    return np.array(out)


def metrics(lattice, positions, target_lattice, target_positions):
    gram = lattice @ lattice.T - target_lattice @ target_lattice.T
    return {
        "coordinate_mae": float(np.abs(positions - target_positions).mean()),
        "shape_deviation": float(np.linalg.norm(gram)),
        "volume_error": float(abs(abs(np.linalg.det(lattice))
                                  - abs(np.linalg.det(target_lattice)))),
    }


def relax_bfgs(atoms):
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = CALCULATOR
    converged = BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=0.05, steps=500)
    return np.array(atoms.cell[:]), atoms.positions.copy(), bool(converged)


def init_worker():
    global CALCULATOR
    CALCULATOR = label_calculator(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--train-config", required=True)
    parser.add_argument("--e3relax", default="target/release/e3relax")
    parser.add_argument("--group-by", default="source")
    parser.add_argument("--per-group", type=int, default=20, help="pairs relaxed per group")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        _, rows = eval_rows(args.e3relax, args.model, args.train_config, tmp)
        model_rows = {row["id"]: row for row in rows}
    config = json.loads(Path(args.train_config).read_text())
    # A config's own validation folders (families held out whole) count too.
    unrelaxed, relaxed = pairs_by_id(config)
    groups = defaultdict(list)
    for ident in sorted(model_rows):
        groups[str(unrelaxed[ident].info.get(args.group_by, ""))].append(ident)
    rng = random.Random(args.seed)
    chosen = [i for ids in groups.values()
              for i in sorted(rng.sample(ids, min(args.per_group, len(ids))))]
    print(f"relaxing {len(chosen)} validation inputs with BFGS", flush=True)
    with multiprocessing.Pool(args.workers, initializer=init_worker) as pool:
        results = pool.map(relax_bfgs, [unrelaxed[i] for i in chosen])

    rows = []
    for ident, (lattice, positions, converged) in zip(chosen, results):
        label = relaxed[ident]
        reference = unrelaxed[ident].positions
        target = unwrapped_next_to(label.positions, np.array(label.cell[:]), reference)
        row = {"id": ident, "group": str(unrelaxed[ident].info.get(args.group_by, "")),
               "converged": converged}
        # The second answer is unwrapped next to the input as well, so that
        # an atom that crossed a face is not counted as a cell length off.
        mine = unwrapped_next_to(positions, lattice, reference)
        row["bfgs"] = metrics(lattice, mine, np.array(label.cell[:]), target)
        m = model_rows[ident]
        row["model"] = {k: float(m[k]) for k in METRICS}
        row["dummy"] = {k: float(m["dummy_" + k]) for k in METRICS}
        rows.append(row)

    print(f"{'group':<12} {'n':>3}   {'coord MAE (Å): dummy / model / BFGS':<38}"
          f"{'shape (Å^2)':<26}{'volume (Å^3)'}")
    for name in sorted({r["group"] for r in rows}) + ["all"]:
        part = [r for r in rows if name in ("all", r["group"])]
        cells = []
        for key in METRICS:
            mean = {who: np.mean([r[who][key] for r in part]) for who in ("dummy", "model", "bfgs")}
            cells.append(f"{mean['dummy']:.3f} / {mean['model']:.3f} / {mean['bfgs']:.3f}")
        print(f"{name:<12} {len(part):>3}   {cells[0]:<38}{cells[1]:<26}{cells[2]}")
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
