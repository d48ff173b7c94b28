#!/usr/bin/env python3
"""Is each made prototype a minimum of the labeller, or a saddle its
children fall off? Reads the packed prototype folders (their
prototypes.extxyz.gz and pairs) and, per family, compares the relaxed
structures of its *perturbed* children (the prototype itself rattled and
strained, same composition) with the prototype: their energy per atom and
volume per atom. A family is unstable when a perturbed child ends more
than --drop eV/atom below its prototype or more than --volume away from
its volume per atom: the child found another, lower structure, so its
label is not decided by the structure type. Substituted children are not
compared (another composition); a family without perturbed children is
`untested`.

Writes a CSV, one row per family (folder, prototype, pairs, perturbed
children, lowest energy change, largest volume change, stable), and with
--exclude-config a training-config fragment listing the unstable
families as exclude_from_training values of `prototype`.

  /opt/chgnet-venv/bin/python tools/measure/prototype_stability.py \\
      data/bulk-prototypes* --csv data/prototype-stability.csv
"""

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
from prototype_pairs import (  # noqa: E402
    MAX_CHILD_DROP, MAX_CHILD_VOLUME, child_change, child_fell, read_frames)


def read_any(folder, name):
    """A run folder's `name.extxyz` or a packed folder's `name.extxyz.gz`;
    [] when it has neither."""
    for suffix in (".extxyz.gz", ".extxyz"):
        path = Path(folder) / f"{name}{suffix}"
        if path.exists():
            return read_frames(path)
    return []


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--drop", type=float, default=MAX_CHILD_DROP, help="eV/atom")
    parser.add_argument("--volume", type=float, default=MAX_CHILD_VOLUME,
                        help="relative, per atom")
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--exclude-config", type=Path)
    args = parser.parse_args()

    prototypes = {}
    for folder in args.folders:
        for p in read_any(folder, "prototypes"):
            prototypes[p.info["prototype"]] = p
    families = defaultdict(lambda: {"pairs": 0, "perturbed": 0, "drop": 0.0, "volume": 0.0})
    for folder in args.folders:
        for r in read_any(folder, "relaxed"):
            name = r.info["prototype"]
            if name not in prototypes:
                raise SystemExit(f"{folder}: no prototype {name} in the folders given")
            family = families[(folder.name, name)]
            family["pairs"] += 1
            if r.info["source"] != "prototype-perturb":
                continue
            p = prototypes[name]
            drop, volume = child_change(p, p.get_potential_energy() / len(p),
                                        r, r.info["e_per_atom"])
            family["perturbed"] += 1
            family["drop"] = min(family["drop"], drop)
            family["volume"] = max(family["volume"], abs(volume), key=abs)
    rows = []
    for (folder, name), f in sorted(families.items()):
        stable = not child_fell(f["drop"], f["volume"], args.drop, args.volume)
        rows.append({"folder": folder, "prototype": name, "pairs": f["pairs"],
                     "perturbed_children": f["perturbed"],
                     "lowest_energy_change_ev_per_atom": f"{f['drop']:.4f}",
                     "largest_volume_change": f"{f['volume']:.4f}",
                     "stable": ("untested" if f["perturbed"] == 0
                                else "yes" if stable else "no")})
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    unstable = [r for r in rows if r["stable"] == "no"]
    for folder in sorted({r["folder"] for r in rows}):
        mine = [r for r in rows if r["folder"] == folder]
        bad = [r for r in mine if r["stable"] == "no"]
        untested = sum(r["stable"] == "untested" for r in mine)
        print(f"{folder}: {len(mine)} families, {len(bad)} unstable "
              f"({sum(r['pairs'] for r in bad)} of {sum(r['pairs'] for r in mine)} pairs), "
              f"{untested} untested")
    print(f"{len(rows)} families, {len(unstable)} unstable; {args.csv}")
    if args.exclude_config:
        fragment = {"exclude_from_training": {"prototype": [r["prototype"] for r in unstable]}}
        args.exclude_config.write_text(json.dumps(fragment, indent=2) + "\n")


if __name__ == "__main__":
    main()
