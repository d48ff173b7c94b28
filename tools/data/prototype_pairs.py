#!/usr/bin/env python3
"""New structure types with well-defined labels: relaxed random crystals as
prototypes, and near-equilibrium relaxation pairs made from them.

A random symmetric crystal (PyXtal, space group 2-230, 1-4 formula units,
at most 24 atoms) of one of the training pairs' reduced compositions is
relaxed first with the labels' potential (CHGNet 0.3.0 weights of the
chgnet 0.4.2 wheel, ASE FIRE with FrechetCellFilter, fmax 0.05 eV/Å, at
most 500 steps; rejected when it does not converge, comes closer than 0.6 Å,
more than doubles its volume or ends above 5 eV/atom). A symmetric
crystal relaxes within its own symmetry and can stop where its children
fall to a lower structure, so a family is kept only when none of its
perturbed children ends more than 20 meV/atom below the prototype or 10 %
away in volume per atom (`--max-child-drop`, `--max-child-volume`;
checked before any of its pairs is written). `--shakes N` adds a weaker,
earlier test (rattle 0.05 Å, strain up to 2 %, relax again; replaced by a
result more than 5 meV/atom lower; rejected when still falling after N
shakes); it did not catch any of the 4 unstable families of the run that
used it. Its relaxed structure is a new prototype when it is

* distinct: no prototype made before has the same composition and
  structure (pymatgen's StructureMatcher, which compares up to the
  crystal's symmetry operations, lattice choice and origin), and
* not a validation structure type: no relaxed structure of a validation
  pair matches it with the species ignored (StructureMatcher's anonymous
  fit), so nothing the held-out prototypes measure leaks into training.

From each new prototype CHILDREN pairs are made the way the AFLOW pairs of
the shared data were made from their prototypes (`make_pairs.py`'s
`make_input`: half substituted by an element of the same group with the
volume rescaled and then lightly rattled and strained, half rattled by
0.05-0.3 Å and strained up to 10 %) and relaxed with the same settings and
rejections (not converged, atoms closer than 0.6 Å, volume change over
60 %, energy above 5 eV/atom). Every pair of a family carries the family's
`prototype` (`relaxed-pyxtal:spgN:FORMULA:SEED-K`, N the relaxed crystal's
space group at 0.1 Å), so a split by prototype keeps a family together.
Every 5th optimizer step of a pair's relaxation (first and last excluded)
goes to trajectory.extxyz.

The random start of the prototype itself is not a pair: a far-from-
equilibrium random crystal's end point is not decided by its input (see
`tools/measure/label_noise.py`). The relaxed prototypes are kept in
prototypes.extxyz.

Every fifth family (job K with K % 5 == 4) is held out: `--pack RUN
--into data/bulk-prototypes` writes the other families' pairs into
data/bulk-prototypes/ (for `train_only_data`) and the held-out families'
into data/bulk-prototypes-held-out/ (never trained on: the family's own
test of structure types a model has not seen), merging with what is there
by id, and all prototypes into data/bulk-prototypes/prototypes.extxyz.gz;
`--known data/bulk-prototypes` makes a later run skip the prototypes
packed before, and `--packed data/bulk-prototypes --into
data/bulk-prototypes-2` packs only what is not there yet (a folder a
training config names does not change).

Resumable: job K of a seed always draws the same crystal; jobs.csv records
every finished job (made, duplicate, rejected and why), output files are
appended frame by frame with single writes, and a killed run's partial
last frame and a pair written only in part are removed when it starts
again.

  /opt/chgnet-venv/bin/python tools/data/prototype_pairs.py \\
      --train-config models/default/train.json --minutes 60 --seed 1 \\
      --out runs/prototype-pairs
"""

import argparse
import csv
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "measure"))
from make_pairs import (  # noqa: E402
    FRAME_EVERY, make_input, min_distance, random_crystal, random_strain, similar_elements)
from residual_steps import label_calculator  # noqa: E402
from single_points import (  # noqa: E402
    complete_frames, composition_of, frame_text, read_frames, training_side)

CHILDREN = 3
# The optional shake test (`settle`): rattle (Å), strain, and the energy
# drop (eV/atom) that makes a shaken crystal the new prototype.
SHAKE_RATTLE = 0.05
SHAKE_STRAIN = 0.02
SHAKE_DROP = 0.005
SYMPREC = 0.1  # Å, for the prototype's space group label
# A family's stability test (`fallen_child` here, and
# tools/measure/prototype_stability.py on packed folders): how far below
# its prototype (eV/atom) and how far from its volume per atom (relative)
# a perturbed child may end.
MAX_CHILD_DROP = 0.02
MAX_CHILD_VOLUME = 0.10


def relax(start, calculator, keep_frames):
    """FIRE + FrechetCellFilter to fmax 0.05 eV/Å in 500 steps: (relaxed,
    energy, steps, converged, frames)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    atoms = start.copy()
    atoms.calc = calculator
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    frames = []

    def keep_frame():
        if keep_frames and opt.nsteps > 0 and opt.nsteps % FRAME_EVERY == 0:
            f = atoms.copy()
            f.calc = None
            f.info = {"step": int(opt.nsteps), "energy": float(atoms.get_potential_energy())}
            frames.append(f)

    opt.attach(keep_frame, interval=1)
    converged = bool(opt.run(fmax=0.05, steps=500))
    energy = float(atoms.get_potential_energy())
    if frames and frames[-1].info["step"] == opt.nsteps:
        frames.pop()
    relaxed = atoms.copy()
    relaxed.calc = None
    return relaxed, energy, int(opt.nsteps), converged, frames


def rejection(start, relaxed, energy, converged, volume_limit=0.6):
    """Why a relaxation is rejected (the shared data's rules), or None.
    A pair's volume may change by at most 60 %; a random prototype start
    is far from its minimum, so only one that more than doubles its volume
    (coming apart into vacuum) is rejected."""
    if not converged:
        return "not converged in 500 steps"
    if min_distance(relaxed) < 0.6:
        return "relaxed: atoms closer than 0.6 Å"
    change = relaxed.get_volume() / start.get_volume() - 1
    if abs(change) > volume_limit:
        return f"volume changed by {100 * change:+.0f} %"
    if energy / len(relaxed) > 5:
        return "energy above 5 eV/atom"
    return None


def settle(relaxed, energy, calculator, rng, shakes):
    """The prototype at a minimum of the labeller, not at a saddle: a
    symmetric random crystal relaxes within its symmetry (its forces keep
    it) and can stop where only a symmetry-breaking move goes down. Up to
    `shakes` times the relaxed crystal is rattled (SHAKE_RATTLE Å) and
    strained (up to SHAKE_STRAIN) and relaxed again; when that ends more
    than SHAKE_DROP eV/atom lower, the lower structure replaces it and is
    shaken in turn. Returns (relaxed, energy, None), or (None, None, why)
    when a shaken relaxation is rejected or the crystal still falls after
    the last shake. Measured on the first 137 families (made without it):
    in 69 a rattled and strained child ended more than 20 meV/atom below
    its prototype or 10 % away in volume (data/README.md)."""
    if shakes == 0:
        return relaxed, energy, None
    for _ in range(shakes):
        shaken = relaxed.copy()
        shaken.calc = None
        shaken.set_cell(shaken.cell[:] @ random_strain(rng, SHAKE_STRAIN), scale_atoms=True)
        shaken.positions += rng.normal(0.0, SHAKE_RATTLE, size=shaken.positions.shape)
        again, lower, _, converged, _ = relax(shaken, calculator, keep_frames=False)
        why = rejection(shaken, again, lower, converged)
        if why:
            return None, None, f"shaken: {why}"
        if lower / len(again) > energy / len(relaxed) - SHAKE_DROP:
            return relaxed, energy, None
        relaxed, energy = again, lower
    return None, None, f"still falling after {shakes} shakes (a saddle, not a minimum)"


def structure(atoms):
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_structure(atoms)


def space_group(atoms):
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        return SpacegroupAnalyzer(structure(atoms), symprec=SYMPREC).get_space_group_number()
    except Exception:  # spglib finds no cell: call it P1
        return 1


class Prototypes:
    """The prototypes made so far and the validation structure types."""

    def __init__(self, made, validation):
        from pymatgen.analysis.structure_matcher import StructureMatcher

        self.matcher = StructureMatcher()
        self.made = [structure(a) for a in made]
        self.validation = [structure(a) for a in validation]

    def duplicate_of(self, atoms):
        s = structure(atoms)
        for other in self.made:
            if (other.composition.reduced_composition == s.composition.reduced_composition
                    and self.matcher.fit(s, other)):
                return "a prototype made before"
        for other in self.validation:
            if (other.composition.anonymized_formula == s.composition.anonymized_formula
                    and self.matcher.fit_anonymous(s, other)):
                return "a validation structure type"
        return None

    def add(self, atoms):
        self.made.append(structure(atoms))


HELD_OUT_EVERY = 5


def held_out(ident):
    """Whether pair `proto-SEED-JOB-CHILD` belongs to a held-out family."""
    return int(ident.split("-")[2]) % HELD_OUT_EVERY == HELD_OUT_EVERY - 1


def read_any(path):
    """Frames of a packed file; [] when it is missing."""
    return read_frames(path) if path.exists() else []


def write_gz(path, frames):
    """All of `frames` into path (gzip), replacing it whole or not at all."""
    import gzip

    partial = path.with_name(path.name + ".partial")
    with gzip.open(partial, "wt") as f:
        f.write("".join(frame_text(a) for a in frames))
    partial.rename(path)


def pack(work, into, packed=()):
    """The run's pairs into `into` (training families) and
    `into`-held-out (held-out families), merged by id with what is there;
    prototypes into `into`/prototypes.extxyz.gz, merged by label. Pairs
    and prototypes already in the `packed` folders (or their -held-out
    twins) are left out: a folder a config names never changes, so later
    pairs go to a new one."""
    held = into.with_name(into.name + "-held-out")
    repair(work)
    done_ids, done_prototypes = set(), set()
    for folder in packed:
        for part in (folder, folder.with_name(folder.name + "-held-out")):
            done_ids |= {a.info["id"] for a in read_any(part / "unrelaxed.extxyz.gz")}
        done_prototypes |= {a.info["prototype"]
                            for a in read_any(folder / "prototypes.extxyz.gz")}
    for folder in (into, held):
        folder.mkdir(parents=True, exist_ok=True)
    for stem in ("unrelaxed", "relaxed", "trajectory"):
        new = complete_frames(work / f"{stem}.extxyz")
        for folder, keep in ((into, False), (held, True)):
            target = folder / f"{stem}.extxyz.gz"
            frames = read_any(target)
            seen = {(a.info["id"], a.info.get("step")) for a in frames}
            added = [a for a in new if held_out(a.info["id"]) == keep
                     and a.info["id"] not in done_ids
                     and (a.info["id"], a.info.get("step")) not in seen]
            if added or not target.exists():
                write_gz(target, frames + added)
            print(f"{target}: {len(frames) + len(added)} frames ({len(added)} new)")
    target = into / "prototypes.extxyz.gz"
    frames = read_any(target)
    seen = {a.info["prototype"] for a in frames} | done_prototypes
    added = [a for a in complete_frames(work / "prototypes.extxyz")
             if a.info["prototype"] not in seen]
    write_gz(target, frames + added)
    print(f"{target}: {len(frames) + len(added)} prototypes ({len(added)} new)")


def repair(out):
    """Makes the files agree after a kill: a pair is whole only when its
    trajectory, relaxed and unrelaxed frames are all written (in that
    order), so relaxed frames and trajectory frames of a pair without an
    unrelaxed frame go. Returns (prototypes, pair ids, finished jobs)."""
    unrelaxed = complete_frames(out / "unrelaxed.extxyz")
    whole = {a.info["id"] for a in unrelaxed}
    for name in ("relaxed.extxyz", "trajectory.extxyz"):
        frames = complete_frames(out / name)
        kept = [f for f in frames if f.info["id"] in whole]
        if len(kept) < len(frames):
            (out / name).write_text("".join(frame_text(f) for f in kept))
    prototypes = complete_frames(out / "prototypes.extxyz")
    jobs = set()
    if (out / "jobs.csv").exists():
        with (out / "jobs.csv").open() as f:
            jobs = {int(row["job"]) for row in csv.DictReader(f) if row.get("outcome")}
    return prototypes, whole, jobs


def append(path, text):
    """One write: a kill leaves a whole frame or a partial last one, which
    `complete_frames` removes."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def log_job(out, job, outcome, detail):
    path = out / "jobs.csv"
    header = "" if path.exists() else "job,outcome,detail\n"
    append(path, f"{header}{job},{outcome},\"{detail}\"\n")


def make_family(job, args, compositions, prototypes, calculator, similar, out, written):
    """Job `job`: a prototype and its children pairs; returns (outcome, detail)."""
    rng = np.random.default_rng([args.seed, job])
    made = None
    for _ in range(50):
        made = random_crystal(rng, compositions[int(rng.integers(len(compositions)))], (0.9, 1.3))
        if made is not None:
            break
    if made is None:
        return "rejected", "PyXtal made no crystal in 50 attempts"
    start, _ = made
    if min_distance(start) < 0.6:
        return "rejected", "start: atoms closer than 0.6 Å"
    relaxed, energy, steps, converged, _ = relax(start, calculator, keep_frames=False)
    why = rejection(start, relaxed, energy, converged, volume_limit=1.0)
    if why:
        return "rejected", f"prototype: {why}"
    relaxed, energy, why = settle(relaxed, energy, calculator, rng, args.shakes)
    if why:
        return "rejected", f"prototype: {why}"
    duplicate = prototypes.duplicate_of(relaxed)
    if duplicate:
        return "duplicate", duplicate
    group = space_group(relaxed)
    formula = "".join(f"{e}{n if n > 1 else ''}"
                      for e, n in sorted(relaxed.symbols.formula.count().items()))
    prototype = f"relaxed-pyxtal:spg{group}:{formula}:{args.seed}-{job}"
    relaxed.info = {"prototype": prototype, "space_group": group, "steps": steps,
                    "energy": energy, "job": job, "shakes": args.shakes}
    prototypes.add(relaxed)
    append(out / "prototypes.extxyz", frame_text(relaxed))
    prototype_energy = energy  # the children's relaxations below reuse `energy`
    children = []
    for child in range(CHILDREN):
        ident = f"proto-{args.seed}-{job}-{child}"
        child_rng = np.random.default_rng([args.seed, job, child + 1])
        parent = relaxed.copy()
        start, kind = make_input(parent, child_rng, similar)
        if min_distance(start) < 0.6:
            continue
        if ident in written:  # a killed run wrote it already (same draws)
            children.append(None)
            continue
        begun = time.perf_counter()
        final, energy, steps, converged, frames = relax(start, calculator, keep_frames=True)
        if rejection(start, final, energy, converged):
            continue
        info = {
            "id": ident, "parent": prototype, "source": f"prototype-{kind}",
            "prototype": prototype, "formula": final.get_chemical_formula(),
            "natoms": len(final), "model": "chgnet", "steps": steps,
            "converged": converged, "energy": energy, "e_per_atom": energy / len(final),
            "seconds": round(time.perf_counter() - begun, 2),
        }
        start.info, final.info = dict(info), dict(info)
        for f in frames:
            f.info.update({"id": ident, "prototype": prototype})
        children.append((ident, kind, start, final, energy, frames))
    fell = fallen_child(relaxed, prototype_energy, [c for c in children if c], args)
    if fell:
        return "rejected", f"{prototype}: {fell}"
    for c in children:
        if c is None:
            continue
        ident, _, start, final, _, frames = c
        if frames:
            append(out / "trajectory.extxyz", "".join(frame_text(f) for f in frames))
        append(out / "relaxed.extxyz", frame_text(final))
        append(out / "unrelaxed.extxyz", frame_text(start))
        written.add(ident)
    return "made", f"{prototype} with {len(children)} pairs"


def child_change(prototype, prototype_e_per_atom, child, child_e_per_atom):
    """A relaxed child's energy per atom minus its prototype's (eV/atom),
    and its volume per atom relative to the prototype's, minus 1."""
    drop = child_e_per_atom - prototype_e_per_atom
    change = (child.get_volume() / len(child)) / (prototype.get_volume() / len(prototype)) - 1
    return drop, change


def child_fell(drop, change, max_drop, max_volume):
    """Whether a perturbed child with this `child_change` found another,
    lower structure than its prototype."""
    return drop < -max_drop or abs(change) > max_volume


def fallen_child(prototype, energy, children, args):
    """Why the family is not kept, or None: a perturbed child (the
    prototype itself rattled and strained) that relaxed to more than
    --max-child-drop eV/atom below the prototype or more than
    --max-child-volume away from its volume per atom found another, lower
    structure, so the prototype is not a minimum its children come back
    to (the test of tools/measure/prototype_stability.py, made before any
    pair is written)."""
    for _, kind, _, final, final_energy, _ in children:
        if kind != "perturb":
            continue
        drop, change = child_change(prototype, energy / len(prototype),
                                    final, final_energy / len(final))
        if child_fell(drop, change, args.max_child_drop, args.max_child_volume):
            return (f"a perturbed child ended {1000 * drop:+.0f} meV/atom and "
                    f"{100 * change:+.0f} % in volume from it (not a minimum)")
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if "--pack" in sys.argv:
        parser.add_argument("--pack", type=Path, required=True)
        parser.add_argument("--into", type=Path, required=True)
        parser.add_argument("--packed", type=Path, action="append", default=[],
                            help="a folder packed before: its pairs and prototypes are left out")
        args = parser.parse_args()
        pack(args.pack, args.into, args.packed)
        return
    parser.add_argument("--known", type=Path, action="append", default=[],
                        help="a packed folder whose prototypes.extxyz.gz counts as made")
    parser.add_argument("--train-config", required=True)
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--e3relax", default="target/release/e3relax")
    parser.add_argument("--fixed-cell", action="store_true")
    parser.add_argument("--count", type=int, default=100000, help="jobs to run")
    parser.add_argument("--shakes", type=int, default=0,
                        help="shake test of each prototype before its children (the seed-4 "
                             "run used 3; measured too weak: its families' children still fell)")
    parser.add_argument("--max-child-drop", type=float, default=MAX_CHILD_DROP,
                        help="eV/atom a perturbed child may end below its prototype; a family "
                             "with one lower is rejected (inf: keep all, as before 2026-12-07)")
    parser.add_argument("--max-child-volume", type=float, default=MAX_CHILD_VOLUME,
                        help="relative change of volume per atom allowed to a perturbed child")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory() as tmp:
        _, relaxed, _, _ = training_side(args, Path(tmp))
        from residual_steps import load_by_id, validation_ids

        held_ids = set(validation_ids(args, Path(tmp)))
    import json

    validation = []
    for folder in json.loads(Path(args.train_config).read_text())["data"]:
        validation += [a for i, a in load_by_id(folder, "relaxed").items() if i in held_ids]
    compositions = sorted({tuple(sorted(composition_of(a).items())) for a in relaxed.values()})
    compositions = [dict(c) for c in compositions]
    args.out.mkdir(parents=True, exist_ok=True)
    made_before, written, finished = repair(args.out)
    for folder in args.known:
        made_before += read_any(folder / "prototypes.extxyz.gz")
    prototypes = Prototypes(made_before, validation)
    print(f"{len(compositions)} training compositions, {len(validation)} validation structures "
          f"left out; {len(made_before)} prototypes, {len(written)} pairs, {len(finished)} jobs "
          "done before", flush=True)
    calculator = label_calculator(args.threads)
    similar = similar_elements()
    begun = time.time()
    for job in range(args.count):
        if args.minutes and time.time() - begun > 60 * args.minutes:
            break
        if job in finished:
            continue
        t = time.perf_counter()
        outcome, detail = make_family(job, args, compositions, prototypes, calculator, similar,
                                      args.out, written)
        log_job(args.out, job, outcome, detail)
        print(f"job {job}: {outcome}: {detail} ({time.perf_counter() - t:.0f} s); "
              f"{len(written)} pairs", flush=True)
    print(f"{len(prototypes.made)} prototypes, {len(written)} pairs, "
          f"{time.time() - begun:.0f} s")


if __name__ == "__main__":
    main()
