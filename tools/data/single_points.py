#!/usr/bin/env python3
"""Single-point labels (energy, forces, stress) of the potential that made
the relaxation pairs: the data factory for learning its energy surface.

A relaxation pair costs ~5-8 CPU-s of the labeller; one energy, force and
stress evaluation ~0.05-0.1 s, and forces are defined for any structure,
also for crystals whose relaxed end point their input does not decide.
The structures, all on the training side of a training config's split
(validation prototypes are never used, not even as parents):

* `inputs`: the training pairs' unrelaxed inputs and relaxation frames
  (what the network sees in training, now with the forces on it);
* `near`: training pairs' relaxed structures rattled by 0.01-0.15 Å and
  strained by up to 3 % (near equilibrium: small forces, a clear sign);
  `--parents FOLDER` (repeatable) draws the parents only from the
  training pairs of those folders, e.g. the new structure types of
  `data/bulk-prototypes*`, which are a few percent of all pairs;
* `random`: random symmetric crystals (PyXtal, space group 2-230) of the
  training pairs' compositions, PyXtal's volume estimate scaled by
  0.8-1.3: new structure types with the chemistry the model knows;
* `decorated`: simple lattices (fcc, bcc, hcp, rock salt, CsCl,
  perovskite, fluorite, zinc blende) in 1-4 cell supercells with 2-3 species
  of a training composition on their sites (substitutional orderings),
  the volume from atomic radii, lightly rattled and strained;
* `relaxed`: the training pairs' relaxed structures themselves (forces
  and stress below the relaxation's threshold: what a crystal already at
  its minimum looks like to the energy-surface heads).

Each structure is written to OUT/KIND.extxyz with info `energy` (eV),
`stress` (eV/Å^3, 3x3 row-major, ASE's sign: positive when the cell wants
to shrink), `id`, `kind`, `prototype`, `formula`, and a per-atom `forces`
column (eV/Å). Jobs are numbered from --seed, so a run that is stopped
(--minutes, a kill) and started again with the same arguments skips what
is there and appends the rest; each structure is one write, and a partial
last frame left by a kill is cut off on start.

  /opt/chgnet-venv/bin/python tools/data/single_points.py --kind near \\
      --train-config models/default/train.json --count 2000 --out runs/single-points

`--pack WORK --into data/single-points` moves what a generator made into
the repository's data: the frames of WORK/KIND.extxyz that no
data/single-points/KIND-*.extxyz.gz holds yet go, gzip-compressed, into the
next KIND-N.extxyz.gz, so a packed part never changes once a training
config names it.
"""

import argparse
import os
import sys
import time
import warnings
from io import StringIO
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "measure"))
from make_pairs import MAX_ATOMS, atomic_volume, min_distance, random_crystal, random_strain  # noqa: E402
from residual_steps import label_calculator, load_by_id, validation_ids  # noqa: E402

# Appended only: a kind's index seeds its random draws.
KINDS = ["inputs", "near", "random", "decorated", "relaxed"]
MAX_ENERGY_PER_ATOM = 5.0  # eV/atom, as the pairs' rejection
MIN_DISTANCE = 0.6  # Å
# Denser than any solid (diamond: 5.7 Å^3 per atom): a cell compressed
# below this gives the labeller tens of thousands of neighbour triplets per
# atom and ran it out of 24 GB (a decorated C9H15 at 0.7 Å^3 per atom).
MIN_VOLUME_PER_ATOM = 4.0

# Simple lattices: fractional sites of the conventional cell, the number of
# distinct site groups (species slots) and the nearest-neighbour distance
# in units of the cubic (or a) lattice parameter.
LATTICES = {
    "fcc": ([(0, 0, 0), (0, .5, .5), (.5, 0, .5), (.5, .5, 0)], [0, 0, 0, 0]),
    "bcc": ([(0, 0, 0), (.5, .5, .5)], [0, 0]),
    "cscl": ([(0, 0, 0), (.5, .5, .5)], [0, 1]),
    "rocksalt": ([(0, 0, 0), (0, .5, .5), (.5, 0, .5), (.5, .5, 0),
                  (.5, .5, .5), (.5, 0, 0), (0, .5, 0), (0, 0, .5)], [0] * 4 + [1] * 4),
    "zincblende": ([(0, 0, 0), (0, .5, .5), (.5, 0, .5), (.5, .5, 0),
                    (.25, .25, .25), (.25, .75, .75), (.75, .25, .75), (.75, .75, .25)],
                   [0] * 4 + [1] * 4),
    "perovskite": ([(0, 0, 0), (.5, .5, .5), (.5, .5, 0), (.5, 0, .5), (0, .5, .5)],
                   [0, 1, 2, 2, 2]),
    "fluorite": ([(0, 0, 0), (0, .5, .5), (.5, 0, .5), (.5, .5, 0)]
                 + [(x, y, z) for x in (.25, .75) for y in (.25, .75) for z in (.25, .75)],
                 [0] * 4 + [1] * 8),
    "hcp": ([(1 / 3, 2 / 3, .25), (2 / 3, 1 / 3, .75)], [0, 0]),
}
SUPERCELLS = [(1, 1, 1), (2, 1, 1), (1, 2, 1), (2, 2, 1), (1, 1, 2), (2, 2, 2)]


def training_side(args, tmp):
    """Training pairs (unrelaxed, relaxed by id), frames, and the
    validation prototypes, as `e3relax eval --validation-of` splits."""
    import json

    held_out = set(validation_ids(args, tmp))
    config = json.loads(Path(args.train_config).read_text())
    unrelaxed, relaxed, frames = {}, {}, []
    folders = config["data"] + config.get("train_only_data", [])
    for folder in folders:
        unrelaxed.update(load_by_id(folder, "unrelaxed"))
        relaxed.update(load_by_id(folder, "relaxed"))
        for name in ("trajectory.extxyz", "trajectory.extxyz.gz"):
            if (Path(folder) / name).exists():
                frames += read_frames(Path(folder) / name)
    held_prototypes = {relaxed[i].info.get("prototype") for i in held_out if i in relaxed}
    keep = {i for i, a in relaxed.items()
            if i not in held_out and a.info.get("prototype") not in held_prototypes}
    frames = [f for f in frames if f.info.get("id") in keep]
    return ({i: unrelaxed[i] for i in sorted(keep)}, {i: relaxed[i] for i in sorted(keep)},
            frames, held_prototypes)


def read_frames(path):
    """All frames of an extxyz file, gzip or not (ASE seeks in a gzip
    stream frame by frame, which takes minutes for a few thousand)."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return read(StringIO(f.read()), ":", format="extxyz")


def composition_of(atoms):
    """Reduced composition as {symbol: count}."""
    from pymatgen.core import Composition

    return Composition(atoms.get_chemical_formula()).reduced_composition.get_el_amt_dict()


def random_structure(rng, compositions, held_prototypes):
    for _ in range(50):
        counts = compositions[int(rng.integers(len(compositions)))]
        made = random_crystal(rng, counts, (0.8, 1.3))
        if made is not None and made[1] not in held_prototypes:
            return made
    return None


def decorated_structure(rng, compositions):
    """A simple lattice with the species of a training composition on its
    sites (each site group drawn from the composition's elements)."""
    name = list(LATTICES)[int(rng.integers(len(LATTICES)))]
    sites, groups = LATTICES[name]
    repeat = SUPERCELLS[int(rng.integers(len(SUPERCELLS)))]
    elements = list(compositions[int(rng.integers(len(compositions)))])
    if len(elements) < 2:
        return None
    # Each site group draws its species from 1-2 of the elements; over the
    # supercell the sites of a group are shared out at random.
    cell = np.eye(3)
    if name == "hcp":
        cell = np.array([[1, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [0, 0, np.sqrt(8 / 3)]])
    frac, numbers = [], []
    from ase.data import atomic_numbers

    pools = [list(rng.choice(elements, size=min(len(elements), int(rng.integers(1, 3))),
                             replace=False)) for _ in range(max(groups) + 1)]
    for i in range(repeat[0]):
        for j in range(repeat[1]):
            for k in range(repeat[2]):
                for site, group in zip(sites, groups):
                    frac.append(((site[0] + i) / repeat[0], (site[1] + j) / repeat[1],
                                 (site[2] + k) / repeat[2]))
                    numbers.append(atomic_numbers[str(rng.choice(pools[group]))])
    if len(numbers) > MAX_ATOMS or len(set(numbers)) < 2:
        return None
    lattice = cell * np.array(repeat)[:, None]
    atoms = Atoms(numbers=numbers, scaled_positions=frac, cell=lattice, pbc=True)
    volume = sum(4.2 * atomic_volume(z) for z in numbers) * rng.uniform(0.85, 1.2)
    atoms.set_cell(atoms.cell * (volume / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
    atoms.set_cell(atoms.cell[:] @ random_strain(rng, 0.03), scale_atoms=True)
    atoms.positions += rng.normal(0.0, 0.05, size=atoms.positions.shape)
    formula = atoms.get_chemical_formula()
    return atoms, f"decorated:{name}:{repeat[0]}x{repeat[1]}x{repeat[2]}:{formula}"


def make_structure(kind, k, rng, side):
    """Job k of a kind: (atoms, prototype) or None."""
    unrelaxed, relaxed, frames, held_prototypes, compositions = side
    ids = list(relaxed)
    if kind == "inputs":
        total = len(ids) + len(frames)
        if k >= total:
            return None
        if k < len(ids):
            atoms = unrelaxed[ids[k]]
        else:
            atoms = frames[k - len(ids)]
        pair = relaxed[atoms.info["id"]]
        return atoms.copy(), pair.info["prototype"]
    if kind == "relaxed":
        if k >= len(ids):
            return None
        return relaxed[ids[k]].copy(), relaxed[ids[k]].info["prototype"]
    if kind == "near":
        parent = relaxed[ids[int(rng.integers(len(ids)))]]
        atoms = parent.copy()
        atoms.set_cell(atoms.cell[:] @ random_strain(rng, 0.03), scale_atoms=True)
        atoms.positions += rng.normal(0.0, rng.uniform(0.01, 0.15), size=atoms.positions.shape)
        return atoms, parent.info["prototype"]
    if kind == "random":
        return random_structure(rng, compositions, held_prototypes)
    return decorated_structure(rng, compositions)


def label(atoms, calculator):
    atoms = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    atoms.calc = calculator
    energy = float(atoms.get_potential_energy())
    forces = np.array(atoms.get_forces())
    stress = np.array(atoms.get_stress(voigt=False))
    atoms.calc = None
    return atoms, energy, forces, stress


def frame_text(atoms):
    buffer = StringIO()
    write(buffer, atoms, format="extxyz")
    return buffer.getvalue()


def complete_frames(path):
    """The whole frames of an extxyz file; a partial last frame (a killed
    write) is cut off the file."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    frames, keep, at = [], 0, 0
    while at < len(lines):
        try:
            n = int(lines[at])
        except ValueError:
            break
        if at + 2 + n > len(lines):
            break
        frames.append(read(StringIO("".join(lines[at:at + 2 + n])), format="extxyz"))
        at += 2 + n
        keep = at
    if keep < len(lines):
        print(f"{path}: cutting {len(lines) - keep} lines of a partial frame", flush=True)
        path.write_text("".join(lines[:keep]))
    return frames


def clean_tail(path):
    """Cuts a partial last frame (a killed write) and returns the ids there."""
    return {frame.info["id"] for frame in complete_frames(path)}


def frame_blocks(text):
    """The frames of an extxyz text as (id, text) without parsing them (a
    parse would move energy, forces and stress into a calculator)."""
    import re

    lines = text.splitlines(keepends=True)
    at = 0
    while at < len(lines):
        n = int(lines[at])
        ident = re.search(r"\bid=(\S+)", lines[at + 1]).group(1)
        yield ident, "".join(lines[at:at + 2 + n])
        at += 2 + n


def pack(work, into):
    """New frames of work/KIND.extxyz into into/KIND-N.extxyz.gz."""
    import gzip

    into.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        source = work / f"{kind}.extxyz"
        if not source.exists():
            continue
        clean_tail(source)
        packed = sorted(into.glob(f"{kind}-*.extxyz.gz"))
        known = set()
        for part in packed:
            with gzip.open(part, "rt") as f:
                known |= {ident for ident, _ in frame_blocks(f.read())}
        new = [block for ident, block in frame_blocks(source.read_text()) if ident not in known]
        if not new:
            continue
        number = 1 + max([int(p.name[len(kind) + 1:].split(".")[0]) for p in packed], default=0)
        target = into / f"{kind}-{number}.extxyz.gz"
        partial = target.with_name(target.name + ".partial")
        with gzip.open(partial, "wt") as f:
            f.writelines(new)
        partial.rename(target)
        print(f"{target}: {len(new)} structures")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if "--pack" in sys.argv:
        parser.add_argument("--pack", type=Path, required=True)
        parser.add_argument("--into", type=Path, required=True)
        args = parser.parse_args()
        pack(args.pack, args.into)
        return
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--train-config", required=True)
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--e3relax", default="target/release/e3relax")
    parser.add_argument("--fixed-cell", action="store_true")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--parents", action="append", default=[],
                        help="near: draw parents only from this folder's training pairs")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.parents and args.kind != "near":
        parser.error("--parents is for --kind near")

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        unrelaxed, relaxed, frames, held = training_side(args, Path(tmp))
    if args.parents:
        # Only training pairs of the named folders (a validation pair or
        # one of a validation prototype is not in `relaxed`, so never kept).
        named = set()
        for folder in args.parents:
            named |= set(load_by_id(folder, "relaxed"))
        relaxed = {i: a for i, a in relaxed.items() if i in named}
        if not relaxed:
            sys.exit(f"no training pairs in {args.parents}: is each folder in the config?")
    compositions = sorted({tuple(sorted(composition_of(a).items())) for a in relaxed.values()})
    compositions = [dict(c) for c in compositions]
    side = (unrelaxed, relaxed, frames, held, compositions)
    print(f"{len(relaxed)} training pairs, {len(frames)} frames, {len(compositions)} "
          f"compositions; {len(held)} validation prototypes left out", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.kind}.extxyz"
    done = clean_tail(path)
    calculator = label_calculator(args.threads)
    made = rejected = 0
    begun = time.time()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for k in range(args.count):
            if args.minutes and time.time() - begun > 60 * args.minutes:
                break
            ident = f"sp-{args.kind}-{args.seed}-{k}"
            if ident in done:
                continue
            rng = np.random.default_rng([args.seed, k, KINDS.index(args.kind)])
            made_structure = make_structure(args.kind, k, rng, side)
            if made_structure is None:
                if (args.kind == "inputs" and k >= len(relaxed) + len(frames)) or (
                        args.kind == "relaxed" and k >= len(relaxed)):
                    break
                rejected += 1
                continue
            atoms, prototype = made_structure
            if (atoms.get_volume() / len(atoms) < MIN_VOLUME_PER_ATOM
                    or min_distance(atoms) < MIN_DISTANCE):
                rejected += 1
                continue
            atoms, energy, forces, stress = label(atoms, calculator)
            if energy / len(atoms) > MAX_ENERGY_PER_ATOM or not np.isfinite(forces).all():
                rejected += 1
                continue
            atoms.info = {
                "id": ident, "kind": args.kind, "prototype": prototype,
                "formula": atoms.get_chemical_formula(), "energy": energy,
                "stress": stress.reshape(-1), "model": "chgnet",
            }
            atoms.arrays["forces"] = forces
            os.write(fd, frame_text(atoms).encode())
            made += 1
            if made % 200 == 0:
                print(f"{made} labelled, {rejected} rejected, {time.time() - begun:.0f} s",
                      flush=True)
    finally:
        os.close(fd)
    print(f"{args.kind}: {made} labelled, {rejected} rejected, {time.time() - begun:.0f} s")


if __name__ == "__main__":
    main()
