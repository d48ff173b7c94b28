#!/usr/bin/env python3
"""Compare starts of residual-step measurements crystal by crystal.

Reads result files of `residual_steps.py` (the same pairs in each), and
for every start (`OPTIMIZER from NAME`, the input's runs taken from any
file) prints: mean and median steps; the mean difference to a reference
start (`--reference`, default the raw prediction `e3relax`) with a 90 %
paired bootstrap interval (the same crystals resampled for both starts),
which says whether a difference of a few steps on 40 crystals is more than
the optimizer's chaos on a few long runs; the crystals that needed more
steps than from the input; and which non-random crystals ended above the
label's minimum (by more than 5 meV/atom).

  python3 tools/measure/residual_compare.py \\
      models/default-training/residual/stable-FIRE.json \\
      models/default-training/residual/readers2-ls-FIRE.json \\
      --name ls=readers2-ls-FIRE.json:ls
A start appears under its name; `--name NEW=FILE:START` renames the start
START of the file whose name ends in FILE (two files may name different
starts alike). Files written before residual_steps.py kept the labels'
energies and sources need `--data DIR` (folders with relaxed.extxyz[.gz]
holding the pairs; needs ase).

`--pool` takes files of different draws (other pairs) and pools them by
crystal: a start's run of a crystal comes from the first file that has
one, so a crystal drawn twice counts once, and every start is judged on
the crystals that all of them ran (the count is printed). Shares are then
printed in per cent too.
"""

import argparse
import json
import random
import statistics
from pathlib import Path

SAME_MINIMUM_EV = 0.005  # eV/atom, as residual_steps.py


def bootstrap_interval(differences, draws=10000, seed=1):
    """90 % interval of the mean of `differences`, resampled with replacement."""
    rng = random.Random(seed)
    n = len(differences)
    means = sorted(
        statistics.fmean(differences[rng.randrange(n)] for _ in range(n)) for _ in range(draws)
    )
    return means[int(0.05 * draws)], means[int(0.95 * draws) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--reference", default="e3relax", help="start the others are compared with")
    parser.add_argument("--name", action="append", default=[], help="NEW=FILE:START")
    parser.add_argument("--only", default=None,
                        help="comma-separated starts to compare (the input is always kept)")
    parser.add_argument("--pool", action="store_true",
                        help="files of different draws: pool them by crystal")
    parser.add_argument("--data", action="append", default=[], type=Path,
                        help="folders of the pairs, for files without label energies")
    args = parser.parse_args()

    only = set(args.only.split(",")) if args.only else None
    renames = {}
    for item in args.name:
        new, _, where = item.partition("=")
        file, _, start = where.rpartition(":")
        if not (new and file and start):
            parser.error(f"--name {item}: expected NEW=FILE:START")
        renames[(file, start)] = new

    optimizer = None
    starts = {}
    sources = {}
    labels = {}
    pairs = None
    for path in args.files:
        data = json.loads(path.read_text())
        if pairs is None:
            pairs = list(data["pairs"])
        elif args.pool:
            pairs += [i for i in data["pairs"] if i not in pairs]
        elif data["pairs"] != pairs:
            parser.error(f"{path}: other pairs than {args.files[0]} (pool draws with --pool)")
        for key, runs in data["runs"].items():
            opt, _, start = key.partition(" from ")
            if optimizer is None:
                optimizer = opt
            elif opt != optimizer:
                parser.error(f"{path}: {opt} runs beside {optimizer} runs")
            for (file, old), new in renames.items():
                if path.name.endswith(file) and start == old:
                    start = new
            if only is not None and start != "unrelaxed" and start not in only:
                continue
            if start in starts and start != "unrelaxed" and not args.pool:
                parser.error(f"{path}: a second start named {start!r} (use --name)")
            by_crystal = starts.setdefault(start, {})
            for r in runs:
                by_crystal.setdefault(r["id"], r)
        sources.update(data.get("sources", {}))
        labels.update(data.get("label_energies", {}))
    for folder in args.data:
        from ase.io import read

        path = next((folder / n for n in ("relaxed.extxyz", "relaxed.extxyz.gz")
                     if (folder / n).exists()), None)
        if path is None:
            parser.error(f"--data {folder}: no relaxed.extxyz[.gz]")
        for atoms in read(str(path), ":"):
            pair = atoms.info.get("id")
            if pair in pairs and pair not in labels:
                labels[pair] = (float(atoms.info["e_per_atom"]) if "e_per_atom" in atoms.info
                                else atoms.get_potential_energy() / len(atoms))
                sources[pair] = atoms.info.get("source", "")
    if "unrelaxed" not in starts:
        parser.error("no runs from the unrelaxed input in these files")
    missing = [i for i in pairs if i not in labels]
    if missing:
        parser.error(f"no label energy for {len(missing)} pairs ({missing[0]}, ...): give --data")

    if args.pool:
        drawn = len(pairs)
        pairs = [i for i in pairs if all(i in runs for runs in starts.values())]
        print(f"pooled: {len(pairs)} of {drawn} crystals have runs from every start")
    reference = starts.get(args.reference)
    inputs = starts["unrelaxed"]
    print(f"{optimizer}, {len(pairs)} pairs; differences are start minus {args.reference}")
    for name, runs in starts.items():
        steps = [runs[i]["steps"] for i in pairs]
        line = f"{name:>14s}: mean {statistics.fmean(steps):6.1f}  median {statistics.median(steps):5.1f}"
        if reference is not None and name != args.reference:
            differences = [runs[i]["steps"] - reference[i]["steps"] for i in pairs]
            low, high = bootstrap_interval(differences)
            line += f"  vs {args.reference} {statistics.fmean(differences):+6.1f} [{low:+.1f}, {high:+.1f}]"
        if name != "unrelaxed":
            more = [i for i in pairs if runs[i]["steps"] > inputs[i]["steps"]]
            line += f"  more than input {len(more)}"
            if args.pool:
                line += f" ({100 * len(more) / len(pairs):.1f} %)"
        above = [
            i
            for i in pairs
            if sources.get(i) != "random" and runs[i]["energy_per_atom"] - labels[i] > SAME_MINIMUM_EV
        ]
        kept = sum(sources.get(i) != "random" for i in pairs)
        if args.pool:
            line += (f"  same or lower {100 * (1 - len(above) / max(1, kept)):.1f} %"
                     f"  above the label {len(above)}/{kept}")
        else:
            line += f"  above the label {len(above)}/{kept} {' '.join(above)}"
        print(line)


if __name__ == "__main__":
    main()
