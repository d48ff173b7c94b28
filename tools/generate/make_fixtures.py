"""Writes the reference files under tests/fixtures with ASE and pymatgen.

Run once (python3 -m pip install ase pymatgen) and commit the output; the
Rust tests compare e3relax's readers and neighbour search with what these
libraries wrote and computed. Re-running rewrites the same files.
"""
import json
import os

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.constraints import FixAtoms
from ase.io import write
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.vasp import Poscar

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
rng = np.random.default_rng(20261128)


def describe(atoms):
    return {
        "numbers": atoms.numbers.tolist(),
        "cellpar": atoms.cell.cellpar().tolist(),
        "lattice": atoms.cell[:].tolist(),
        "positions": atoms.positions.tolist(),
        "scaled_positions": atoms.get_scaled_positions(wrap=True).tolist(),
    }


def triclinic():
    cell = [[5.1, 0.0, 0.0], [1.3, 4.7, 0.0], [-0.8, 0.9, 6.2]]
    frac = rng.random((7, 3))
    return Atoms("Mg2Al2O3", scaled_positions=frac, cell=cell, pbc=True)


expected = {}

# POSCAR written by ASE: direct coordinates, VASP 5.
t = triclinic()
write(os.path.join(OUT, "ase_direct.vasp"), t, format="vasp", direct=True)
expected["ase_direct.vasp"] = [describe(t)]

# POSCAR with selective dynamics from ASE constraints.
s = bulk("Si", "diamond", a=5.43, cubic=True)
s.set_constraint(FixAtoms(indices=[0, 1]))
write(os.path.join(OUT, "ase_selective.vasp"), s, format="vasp", direct=False)
expected["ase_selective.vasp"] = [describe(s)]
expected["ase_selective.vasp"][0]["move"] = [[False] * 3, [False] * 3] + [[True] * 3] * 6

# POSCAR written by pymatgen.
p = Structure(Lattice.from_parameters(4.2, 5.5, 6.1, 80, 95, 105),
              ["Fe", "O", "O", "Fe"], rng.random((4, 3)))
Poscar(p).write_file(os.path.join(OUT, "pymatgen_POSCAR"))
expected["pymatgen_POSCAR"] = [describe(AseAtomsAdaptor.get_atoms(p))]

# Multi-frame extended XYZ with info keys and per-atom arrays.
frames = []
for k in range(3):
    a = triclinic()
    a.info["id"] = f"frame-{k}"
    a.info["energy_ref"] = -1.5 * k
    a.info["note"] = "two words"
    a.new_array("charge", rng.normal(size=len(a)))
    frames.append(a)
write(os.path.join(OUT, "ase_multi.extxyz"), frames, format="extxyz")
expected["ase_multi.extxyz"] = [describe(a) for a in frames]

# CIF with symmetry operations written by pymatgen (symmetrized), and P1 by ASE.
rutile = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.594, 2.959),
                                   ["Ti", "O"], [[0, 0, 0], [0.3048, 0.3048, 0]])
CifWriter(rutile, symprec=1e-3).write_file(os.path.join(OUT, "pymatgen_rutile_symmetrized.cif"))
expected["pymatgen_rutile_symmetrized.cif"] = [describe(AseAtomsAdaptor.get_atoms(rutile))]
hexa = Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(3.16, 12.29),
                                 ["Mo", "S"], [[1 / 3, 2 / 3, 0.25], [1 / 3, 2 / 3, 0.621]])
CifWriter(hexa, symprec=1e-3).write_file(os.path.join(OUT, "pymatgen_mos2_symmetrized.cif"))
expected["pymatgen_mos2_symmetrized.cif"] = [describe(AseAtomsAdaptor.get_atoms(hexa))]
t2 = triclinic()
write(os.path.join(OUT, "ase_p1.cif"), t2, format="cif")
expected["ase_p1.cif"] = [describe(t2)]

with open(os.path.join(OUT, "expected_structures.json"), "w") as f:
    json.dump(expected, f, indent=1)

# Neighbour lists from pymatgen for cells of several shapes (radius 6 A).
cases = []
shapes = {
    "triclinic": ([[5.1, 0.0, 0.0], [1.3, 4.7, 0.0], [-0.8, 0.9, 6.2]], 7),
    "skewed": ([[2.6, 0.0, 0.0], [2.4, 1.1, 0.0], [0.5, 0.4, 3.0]], 2),
    "one_atom": ([[2.5, 0.0, 0.0], [0.3, 2.7, 0.0], [0.2, -0.4, 2.9]], 1),
    "large": ([[11.0, 0.0, 0.0], [2.0, 10.5, 0.0], [-1.0, 1.5, 12.0]], 80),
}
for name, (cell, n) in shapes.items():
    frac = rng.random((n, 3))
    st = Structure(Lattice(cell), ["O"] * n, frac)
    centers, neighbors, images, distances = st.get_neighbor_list(6.0)
    cases.append({
        "name": name, "lattice": cell, "positions": st.cart_coords.tolist(), "radius": 6.0,
        "edges": [[int(c), int(j), [int(v) for v in im], float(d)]
                  for c, j, im, d in zip(centers, neighbors, images, distances)],
    })
with open(os.path.join(OUT, "pymatgen_neighbors.json"), "w") as f:
    json.dump(cases, f)
print("fixtures written to", os.path.abspath(OUT))
