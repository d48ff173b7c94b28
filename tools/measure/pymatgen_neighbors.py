"""Times pymatgen's Structure.get_neighbor_list on the frames of an extxyz file.

Called by `e3relax bench graph --pymatgen` so both libraries see the same
cells in one run. Prints one JSON object: {"seconds": [...], "pairs": [...],
"version": "..."} with the best time of `repeat` runs per frame.
"""
import json
import sys
import time


def main():
    path, radius, repeat = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    from ase.io import read
    import pymatgen.core
    from pymatgen.core import Lattice, Structure

    seconds, pairs = [], []
    for atoms in read(path, index=":"):
        s = Structure(Lattice(atoms.cell[:]), atoms.get_chemical_symbols(),
                      atoms.positions, coords_are_cartesian=True)
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            centers, _, _, _ = s.get_neighbor_list(radius)
            best = min(best, time.perf_counter() - t0)
        seconds.append(best)
        pairs.append(int(len(centers)))
    print(json.dumps({"seconds": seconds, "pairs": pairs,
                      "version": pymatgen.core.__version__}))


if __name__ == "__main__":
    main()
