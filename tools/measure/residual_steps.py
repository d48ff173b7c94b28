#!/usr/bin/env python3
"""Residual optimizer steps: what a user saves by starting from e3relax.

Relaxes N validation pairs of a training run with the potential that made
the labels (CHGNet 0.3.0 weights from the chgnet 0.4.2 wheel, through ASE,
fmax 0.05 eV/Å, at most 500 steps; FrechetCellFilter unless the cell is
fixed), once from the unrelaxed input and once from e3relax's prediction
(and, with --baseline, from the volume baseline), with FIRE (the label
settings) and BFGS (closer to what DFT codes use). Reports mean and median
steps, the share of runs that end within 5 meV/atom of the label's
energy (the same minimum) and the share that end more than that below it
(another minimum, but a lower one).

A measurement, not a test. Needs `pip install torch==2.11.0 chgnet==0.4.2
ase` (a machine with the full PyTorch wheel; the libtorch copy in .libtorch
lacks the CUDA libraries python's torch loads). `--relax-start` adds starts
made with other `e3relax relax` options (the ensemble mean, a trust
policy); every start other than the input also reports the share of
crystals that needed more steps than from the input, and how many of
those ended in a lower minimum than the label's. `--jitter A` adds the
input moved by A Å at random: a start no better than the input, whose
step counts show the optimizer's own noise. `--input-runs EARLIER.json`
reuses an earlier result's runs from the input (same pairs), which do
not depend on the model. `--rest-of A.json --rest-of B.json` relaxes every
validation pair those earlier draws did not, so that the draws pooled
count every crystal once.

  python3 tools/measure/residual_steps.py --model models/default \\
      --train-config models/default-training/train.json --pairs 40 \\
      --out runs/residual-steps.json
"""

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from ase.io import read, write

SAME_MINIMUM_EV = 0.005  # eV/atom


def eval_rows(e3relax, model, train_config, tmp, fixed_cell=False):
    """`e3relax eval --validation-of`: its printed table and its per-pair
    CSV rows (dicts keyed by the header), for the run's validation split."""
    import csv

    table_csv = Path(tmp) / "eval.csv"
    cmd = [e3relax, "eval", "--model", model, "--validation-of", train_config,
           "--csv", str(table_csv)]
    if fixed_cell:
        cmd.append("--fixed-cell")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"e3relax eval of {model} failed:\n{done.stderr}")
    return done.stdout, list(csv.DictReader(table_csv.open()))


def validation_folders(config):
    """A training config's validation folders: none, one, or a list."""
    folders = config.get("validation") or []
    return [folders] if isinstance(folders, str) else list(folders)


def pairs_by_id(config):
    """Unrelaxed and relaxed structures by id of a training config's data
    and validation folders."""
    unrelaxed, relaxed = {}, {}
    for folder in config["data"] + validation_folders(config):
        unrelaxed.update(load_by_id(folder, "unrelaxed"))
        relaxed.update(load_by_id(folder, "relaxed"))
    return unrelaxed, relaxed


def validation_ids(args, tmp):
    """The validation split of the training config, as `e3relax eval` makes it."""
    table, rows = eval_rows(args.e3relax, args.model, args.train_config, tmp, args.fixed_cell)
    print(table)
    return [row["id"] for row in rows]


def label_calculator(threads):
    """The potential that made the labels (CHGNet 0.3.0 weights of the
    chgnet wheel) as an ASE calculator on the CPU."""
    warnings.filterwarnings("ignore")
    import torch
    from chgnet.model.dynamics import CHGNetCalculator
    from chgnet.model.model import CHGNet

    torch.set_num_threads(threads)
    return CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu")


def load_by_id(folder, stem):
    for name in (f"{stem}.extxyz", f"{stem}.extxyz.gz"):
        path = Path(folder) / name
        if path.exists():
            return {a.info["id"]: a for a in read(str(path), ":")}
    sys.exit(f"{folder}: no {stem}.extxyz")


def label_energy(atoms):
    info = atoms.info
    if "e_per_atom" in info:
        return float(info["e_per_atom"])
    return atoms.get_potential_energy() / len(atoms)


def relax(atoms, calculator, optimizer, fixed_cell):
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE

    atoms = atoms.copy()
    atoms.calc = calculator
    target = atoms if fixed_cell else FrechetCellFilter(atoms)
    opt = {"FIRE": FIRE, "BFGS": BFGS}[optimizer](target, logfile=None)
    start = time.perf_counter()
    converged = opt.run(fmax=0.05, steps=500)
    return {
        "steps": int(opt.nsteps),
        "converged": bool(converged),
        "energy_per_atom": float(atoms.get_potential_energy() / len(atoms)),
        "seconds": time.perf_counter() - start,
    }


def volume_baseline(inputs, train_pairs):
    """The volume baseline of e3relax eval: per-element volumes by least
    squares on the training pairs, geometric mean with the input volume."""
    elements = sorted({z for a in train_pairs for z in a.numbers})
    index = {z: k for k, z in enumerate(elements)}
    a = np.zeros((len(train_pairs), len(elements)))
    b = np.array([p.get_volume() for p in train_pairs])
    for row, p in enumerate(train_pairs):
        for z in p.numbers:
            a[row, index[z]] += 1
    mean = b.sum() / a.sum()
    ridge = 1e-3 * max(1.0, (a * a).sum(0).max())
    volumes = np.linalg.solve(a.T @ a + ridge * np.eye(len(elements)), a.T @ b + ridge * mean)
    out = []
    for atoms in inputs:
        ref = sum(volumes[index[z]] if z in index else mean for z in atoms.numbers)
        scale = (np.sqrt(atoms.get_volume() * ref) / atoms.get_volume()) ** (1 / 3)
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell * scale, scale_atoms=True)
        out.append(scaled)
    return out


def summary(runs, labels):
    steps = [r["steps"] for r in runs]
    offsets = [r["energy_per_atom"] - labels[r["id"]] for r in runs]
    same = [abs(d) <= SAME_MINIMUM_EV for d in offsets]
    # Another minimum is not always a worse one: say which way it went.
    lower = [d < -SAME_MINIMUM_EV for d in offsets]
    return {
        "runs": len(runs),
        "mean_steps": statistics.mean(steps),
        "median_steps": statistics.median(steps),
        "same_minimum": sum(same) / len(same),
        "lower_minimum": sum(lower) / len(lower),
        "converged": sum(r["converged"] for r in runs) / len(runs),
        "seconds": sum(r["seconds"] for r in runs),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--train-config", required=True)
    parser.add_argument("--e3relax", default="target/release/e3relax")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fixed-cell", action="store_true")
    parser.add_argument("--optimizers", default="FIRE,BFGS")
    parser.add_argument("--baseline", action="store_true",
                        help="also start from the volume baseline")
    parser.add_argument("--starts", default="unrelaxed,e3relax",
                        help="which starts to relax from (comma-separated: unrelaxed, e3relax); "
                             "the pairs are the same for the same seed, so one model's run can "
                             "be compared with another's unrelaxed numbers")
    parser.add_argument("--relax-start", action="append", default=[], metavar="NAME=ARGS",
                        help="one more start: e3relax relax with these extra arguments, e.g. "
                             "'ensemble=--uncertainty' or 'trust=--trust 0.087,0.167' "
                             "(repeatable)")
    parser.add_argument("--jitter", type=float, default=None, metavar="Å",
                        help="one more start: the input with every atom moved by a Gaussian of "
                             "this width (seeded), a start no better than the input; how many "
                             "more steps it needs is the optimizer's own noise on step counts")
    parser.add_argument("--input-runs", type=Path, default=None, metavar="JSON",
                        help="take the runs from the unrelaxed input from this earlier result "
                             "(same pairs, model-independent) instead of relaxing them again")
    parser.add_argument("--rest-of", type=Path, action="append", default=[], metavar="JSON",
                        help="instead of drawing --pairs: every validation pair that none of "
                             "these earlier results relaxed (repeatable), so that draws pooled "
                             "with this one count each crystal once")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    calculator = label_calculator(args.threads)
    config = json.loads(Path(args.train_config).read_text())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ids = validation_ids(args, tmp)
        # A config's own validation folders (families held out whole) too.
        unrelaxed, relaxed = pairs_by_id(config)
        if args.rest_of:
            done = {i for f in args.rest_of for i in json.loads(f.read_text())["pairs"]}
            unknown = done - set(ids)
            if unknown:
                sys.exit(f"--rest-of: {len(unknown)} of their pairs are not validation pairs "
                         "of this config (other split?)")
            chosen = sorted(set(ids) - done)
        else:
            chosen = sorted(random.Random(args.seed).sample(ids, min(args.pairs, len(ids))))
        inputs = [unrelaxed[i] for i in chosen]
        write(str(tmp / "in.extxyz"), inputs)
        cmd = [args.e3relax, "relax", str(tmp / "in.extxyz"), "-o", str(tmp / "pred.extxyz"),
               "--model", args.model]
        if args.fixed_cell:
            cmd.append("--fixed-cell")
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        e3relax_seconds = time.perf_counter() - start
        predictions = read(str(tmp / "pred.extxyz"), ":")
        starts = {"unrelaxed": inputs, "e3relax": predictions}
        starts = {k: v for k, v in starts.items() if k in args.starts.split(",")}
        for extra in args.relax_start:
            name, _, extra_args = extra.partition("=")
            out = tmp / f"pred-{len(starts)}.extxyz"
            subprocess.run(cmd[:3] + ["-o", str(out)] + cmd[5:] + extra_args.split(),
                           check=True)
            starts[name] = read(str(out), ":")
    if args.jitter is not None:
        rng = np.random.default_rng(args.seed)
        jittered = []
        for atoms in inputs:
            atoms = atoms.copy()
            atoms.positions += rng.normal(0.0, args.jitter, size=atoms.positions.shape)
            jittered.append(atoms)
        starts[f"input jittered {args.jitter:g} A"] = jittered
    if args.baseline:
        train_ids = set(relaxed) - set(ids)
        starts["volume baseline"] = volume_baseline(inputs, [relaxed[i] for i in train_ids])
    labels = {i: label_energy(relaxed[i]) for i in chosen}
    sources = {i: relaxed[i].info.get("source", "") for i in chosen}
    # The labels' energies and sources travel with the runs, so that
    # residual_compare.py can judge every crystal without the data.
    results = {"pairs": chosen, "e3relax_seconds": e3relax_seconds,
               "label_energies": labels, "sources": sources, "runs": {}, "summary": {}}
    earlier = json.loads(args.input_runs.read_text()) if args.input_runs else None
    if earlier is not None and earlier["pairs"] != chosen:
        sys.exit(f"{args.input_runs}: its pairs are not this run's (other seed or split?)")
    if earlier is not None:
        starts.pop("unrelaxed", None)
    for optimizer in args.optimizers.split(","):
        if earlier is not None:
            key = f"{optimizer} from unrelaxed"
            if key not in earlier["runs"]:
                sys.exit(f"{args.input_runs}: no '{key}' runs")
            results["runs"][key] = earlier["runs"][key]
            results["summary"][key] = earlier["summary"][key]
        for name, structures in starts.items():
            runs = []
            for pair_id, atoms in zip(chosen, structures):
                r = relax(atoms, calculator, optimizer, args.fixed_cell)
                r["id"] = pair_id
                runs.append(r)
            key = f"{optimizer} from {name}"
            results["runs"][key] = runs
            s = summary(runs, labels)
            # Same-or-lower minimum without the random crystals, whose
            # labels their inputs do not decide (the issues' target).
            kept = [r for r in runs if sources[r["id"]] != "random"]
            s["same_or_lower_non_random"] = sum(
                r["energy_per_atom"] - labels[r["id"]] <= SAME_MINIMUM_EV for r in kept
            ) / max(1, len(kept))
            baseline = results["runs"].get(f"{optimizer} from unrelaxed")
            if baseline is not None and name != "unrelaxed":
                more = [r["steps"] > b["steps"] for r, b in zip(runs, baseline)]
                s["more_steps_than_input"] = sum(more) / len(more)
                # More steps, but to a minimum below the label's: not a worse start
                # for a user who wants the lowest minimum.
                s["more_steps_to_lower_minimum"] = sum(
                    m and r["energy_per_atom"] - labels[r["id"]] < -SAME_MINIMUM_EV
                    for m, r in zip(more, runs)) / len(more)
            results["summary"][key] = s
            extra = (f"  more steps than input {100 * s['more_steps_than_input']:5.1f} %"
                     if "more_steps_than_input" in s else "")
            print(f"{key:<28} mean {s['mean_steps']:6.1f}  median {s['median_steps']:5.1f}  "
                  f"same minimum {100 * s['same_minimum']:5.1f} %  lower "
                  f"{100 * s['lower_minimum']:5.1f} %  same-or-lower (non-random) "
                  f"{100 * s['same_or_lower_non_random']:5.1f} %  converged "
                  f"{100 * s['converged']:5.1f} %  ({s['seconds']:.0f} s){extra}", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
