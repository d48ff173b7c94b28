#!/usr/bin/env python3
"""More relaxation pairs, made the way ../shared/data/bulk was made.

Starts from the *training* pairs of a training config (never a validation
pair: the split is read from `e3relax eval --validation-of`), makes new
unrelaxed inputs from their relaxed structures and relaxes them with the
potential that made the labels (CHGNet 0.3.0 weights of the chgnet 0.4.2
wheel, ASE FIRE with FrechetCellFilter, fmax 0.05 eV/Å, at most 500 steps):

* `perturb`: atoms rattled by a Gaussian of 0.05-0.3 Å, cell strained by a
  random symmetric strain of up to 10 % per component;
* `substitute`: one species replaced by an element of the same group one row
  up or down (Na <-> K, S <-> Se, Ti <-> Zr, ...), the cell scaled by the
  ratio of atomic volumes, then a lighter rattle (0.05-0.15 Å) and strain
  (up to 5 %).

With `--kind random` it makes new structure types instead, the way the
shared data's `random` source was made: a random symmetric crystal (PyXtal,
space group 2-230, 1-4 formula units, at most 24 atoms in the conventional
cell, PyXtal's volume estimate scaled by 0.9-1.3) of one of the
charge-balanced formulas that source uses. Its prototype is
`pyxtal:spgN:FORMULA` as there, so a pair whose label a validation pair
also has is left out by `train_only_data`.

Rejected as in the shared data: not converged, atoms closer than 0.6 Å,
volume change over 60 %, energy above 5 eV/atom. Each new pair keeps its
parent's `prototype`, so it falls on the parent's side of any split by
prototype; `parent` names the pair it came from. Every 5th optimizer step
(first and last excluded) is written to trajectory.extxyz as a relaxation
frame. Output is appended pair by pair, so an interrupted run keeps what
it made; run again with another --seed to add more.

  /opt/chgnet-venv/bin/python tools/data/make_pairs.py --data ../shared/data/bulk \\
      --train-config models/default/train.json --count 400 --workers 2 \\
      --seed 1 --out data/bulk-extra
  /opt/chgnet-venv/bin/python tools/data/make_pairs.py --kind random ...  # needs pyxtal
"""

import argparse
import multiprocessing
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from ase.io import write

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "measure"))
from residual_steps import label_calculator, load_by_id, validation_ids  # noqa: E402

FRAME_EVERY = 5
# The reduced formulas of the shared bulk data's `random` source (its
# meta.csv): charge-balanced compounds with 2-3 elements.
RANDOM_FORMULAS = [
    "CaF2", "Al2O3", "Li2O", "LiCoO2", "KBr", "TiN", "CuAu", "SiO2", "MgO", "SnO2",
    "MgAl2O4", "GaN", "NaCl", "SrTiO3", "ZrO2", "BaMnO3", "ZnS", "MgMn2O4", "AlNi3",
    "CaMn2O4", "BaTiO3", "Sr2MnO4", "TiO2",
]
MAX_ATOMS = 24
NOBLE_OR_UNSTABLE = {2, 10, 18, 36, 54, 86} | set(range(84, 119))


def similar_elements():
    """Z -> elements of the same group one row up or down (main group and
    transition metals; no noble gases, lanthanides or radioactive ones)."""
    from pymatgen.core.periodic_table import Element

    by_place = {}
    for z in range(1, 84):
        e = Element.from_Z(z)
        if z in NOBLE_OR_UNSTABLE or e.is_lanthanoid or e.is_actinoid:
            continue
        by_place[(e.group, e.row)] = z
    table = {}
    for (group, row), z in by_place.items():
        near = [by_place[(group, r)] for r in (row - 1, row + 1) if (group, r) in by_place]
        if near:
            table[z] = near
    return table


def atomic_volume(z):
    from pymatgen.core.periodic_table import Element

    r = Element.from_Z(z).atomic_radius or 1.5
    return float(r) ** 3


def random_strain(rng, limit):
    e = rng.uniform(-limit, limit, size=(3, 3))
    return np.eye(3) + 0.5 * (e + e.T)


def make_input(parent, rng, similar):
    atoms = parent.copy()
    atoms.calc = None
    kind = "perturb"
    if rng.random() < 0.5:
        present = [z for z in set(atoms.numbers) if z in similar]
        if present:
            kind = "substitute"
            old = int(rng.choice(present))
            new = int(rng.choice(similar[old]))
            numbers = atoms.numbers.copy()
            ratio = sum(atomic_volume(new if z == old else z) for z in numbers) / sum(
                atomic_volume(z) for z in numbers
            )
            numbers[numbers == old] = new
            atoms.set_atomic_numbers(numbers)
            atoms.set_cell(atoms.cell * ratio ** (1 / 3), scale_atoms=True)
    sigma, strain = (0.05, 0.3), 0.10
    if kind == "substitute":
        sigma, strain = (0.05, 0.15), 0.05
    atoms.set_cell(atoms.cell[:] @ random_strain(rng, strain), scale_atoms=True)
    atoms.positions += rng.normal(0.0, rng.uniform(*sigma), size=atoms.positions.shape)
    return atoms, kind


def random_crystal(rng, counts, factor_range):
    """A random symmetric crystal (PyXtal) of 1-4 formula units of `counts`
    (element -> atoms per unit), its volume factor drawn from
    `factor_range`, with its prototype label; None when PyXtal finds no
    arrangement or the cell would exceed MAX_ATOMS."""
    from pyxtal import pyxtal

    per_unit = int(sum(counts.values()))
    if per_unit > MAX_ATOMS:
        return None
    units = int(rng.integers(1, min(4, MAX_ATOMS // per_unit) + 1))
    group = int(rng.integers(2, 231))
    species = list(counts)
    crystal = pyxtal()
    try:
        crystal.from_random(
            3, group, species, [int(counts[e] * units) for e in species],
            factor=float(rng.uniform(*factor_range)), random_state=int(rng.integers(2**31)),
        )
    except Exception:  # an incompatible composition or no placement found
        return None
    if not crystal.valid:
        return None
    atoms = crystal.to_ase()
    if len(atoms) > MAX_ATOMS:
        return None
    counted = sorted(atoms.symbols.formula.count().items())
    label = "".join(f"{e}{n if n > 1 else ''}" for e, n in counted)
    return atoms, f"pyxtal:spg{group}:{label}"


def make_random_input(rng, attempts=50):
    from pymatgen.core import Composition

    for _ in range(attempts):
        formula = RANDOM_FORMULAS[int(rng.integers(len(RANDOM_FORMULAS)))]
        made = random_crystal(rng, Composition(formula).get_el_amt_dict(), (0.9, 1.3))
        if made is not None:
            return made
    raise RuntimeError("PyXtal made no crystal in 50 attempts")


def min_distance(atoms):
    if len(atoms) < 2:
        return np.inf
    d = atoms.get_all_distances(mic=True)
    return d[np.triu_indices(len(atoms), 1)].min()


def relax_one(job):
    """One new pair from one parent, or a reason for rejecting it."""
    parent, seed, similar = job
    warnings.filterwarnings("ignore")
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    rng = np.random.default_rng(seed)
    if parent is None:
        start, prototype = make_random_input(rng)
        kind, parent_id = "random", ""
    else:
        start, kind = make_input(parent, rng, similar)
        prototype, parent_id = parent.info["prototype"], parent.info["id"]
    if min_distance(start) < 0.6:
        return None, "start: atoms closer than 0.6 Å"
    atoms = start.copy()
    atoms.calc = CALCULATOR
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    frames = []

    def keep_frame():
        if opt.nsteps > 0 and opt.nsteps % FRAME_EVERY == 0:
            f = atoms.copy()
            f.calc = None
            f.info = {"step": int(opt.nsteps), "energy": float(atoms.get_potential_energy())}
            frames.append(f)

    opt.attach(keep_frame, interval=1)
    begun = time.perf_counter()
    converged = bool(opt.run(fmax=0.05, steps=500))
    energy = float(atoms.get_potential_energy())
    if frames and frames[-1].info["step"] == opt.nsteps:
        frames.pop()
    relaxed = atoms.copy()
    relaxed.calc = None
    if not converged:
        return None, "not converged in 500 steps"
    if min_distance(relaxed) < 0.6:
        return None, "relaxed: atoms closer than 0.6 Å"
    if abs(relaxed.get_volume() / start.get_volume() - 1) > 0.6:
        return None, "volume changed by more than 60 %"
    if energy / len(relaxed) > 5:
        return None, "energy above 5 eV/atom"
    ident = f"extra-{seed}-{parent_id or kind}"
    info = {
        "id": ident,
        "parent": parent_id,
        "source": f"extra-{kind}",
        "prototype": prototype,
        "formula": relaxed.get_chemical_formula(),
        "natoms": len(relaxed),
        "model": "chgnet",
        "steps": int(opt.nsteps),
        "converged": converged,
        "energy": energy,
        "e_per_atom": energy / len(relaxed),
        "seconds": round(time.perf_counter() - begun, 2),
    }
    start.info = dict(info)
    relaxed.info = dict(info)
    for f in frames:
        f.info.update({"id": ident, "prototype": prototype})
    return (start, relaxed, frames), None


def init_worker():
    global CALCULATOR
    CALCULATOR = label_calculator(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--train-config", required=True)
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--e3relax", default="target/release/e3relax")
    parser.add_argument("--fixed-cell", action="store_true")
    parser.add_argument("--kind", choices=["variations", "random"], default="variations",
                        help="rattled/strained/substituted training pairs, or new random crystals")
    parser.add_argument("--count", type=int, default=100, help="new pairs to attempt")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        held_out = set(validation_ids(args, Path(tmp)))
    relaxed = load_by_id(args.data, "relaxed")
    parents = [a for k, a in sorted(relaxed.items()) if k not in held_out]
    print(f"{len(parents)} training pairs to start from ({len(held_out)} held out)", flush=True)
    rng = random.Random(args.seed)
    similar = similar_elements()
    jobs = [
        (None if args.kind == "random" else rng.choice(parents), args.seed * 1_000_000 + k, similar)
        for k in range(args.count)
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    made = rejected = 0
    begun = time.time()
    with multiprocessing.Pool(args.workers, initializer=init_worker) as pool:
        for result, why in pool.imap_unordered(relax_one, jobs):
            if result is None:
                rejected += 1
                print(f"rejected: {why}", flush=True)
            else:
                start, final, frames = result
                write(out / "unrelaxed.extxyz", start, append=True)
                write(out / "relaxed.extxyz", final, append=True)
                if frames:
                    write(out / "trajectory.extxyz", frames, append=True)
                made += 1
                print(f"{made} made: {start.info['id']} {start.info['source']} "
                      f"{final.get_chemical_formula()} {start.info['steps']} steps", flush=True)
            if args.minutes and time.time() - begun > 60 * args.minutes:
                pool.terminate()
                break
    print(f"{made} pairs made, {rejected} rejected, {time.time() - begun:.0f} s")


if __name__ == "__main__":
    main()
