"""Pre-relax crystals with e3relax, then finish with an ASE optimizer.

    python examples/python/ase_prerelax.py [--model DIR]

For each crystal, the same optimizer (BFGS and FIRE, cell and positions
through FrechetCellFilter, fmax 0.05 eV/Å) runs twice: from the input as
given, and from e3relax's prediction. It prints the optimizer steps and the
wall time of both starts (the e3relax time included in the second).

The calculator here is ASE's EMT (Cu, Ag, Au, Ni, Pd, Pt, Al), so that the
example runs anywhere in seconds. For a real study use any ASE calculator:
replace `make_calculator` (e.g. `from ase.calculators.espresso import
Espresso`, `from ase.calculators.vasp import Vasp`, or a machine-learned
potential's ASE calculator).
"""

import argparse
import time

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS, FIRE

import e3relax


def make_calculator():
    return EMT()


def test_crystals(seed=0):
    """fcc metals and ordered alloys, strained and rattled as an unrelaxed
    input typically is."""
    rng = np.random.default_rng(seed)
    crystals = []
    for symbols, a in [("Cu", 3.61), ("Ni", 3.52), ("Pd", 3.89), ("Al", 4.05), ("Ag", 4.09), ("Pt", 3.92)]:
        atoms = bulk(symbols, "fcc", a=a, cubic=True)
        crystals.append(atoms)
    cu3au = bulk("Cu", "fcc", a=3.75, cubic=True)
    cu3au.symbols[0] = "Au"
    crystals.append(cu3au)
    nial = bulk("Ni", "fcc", a=3.7, cubic=True)
    nial.symbols[[0, 1]] = "Al"
    crystals.append(nial)
    out = []
    for atoms in crystals:
        atoms = atoms.repeat((2, 1, 1))
        strain = np.eye(3) + rng.uniform(-0.06, 0.06, (3, 3)) * (np.eye(3) + 0.3)
        atoms.set_cell(atoms.cell[:] @ strain, scale_atoms=True)
        atoms.rattle(0.1, seed=int(rng.integers(1 << 30)))
        out.append(atoms)
    return out


def optimise(atoms, optimizer):
    atoms = atoms.copy()
    atoms.calc = make_calculator()
    start = time.perf_counter()
    opt = optimizer(FrechetCellFilter(atoms), logfile=None)
    opt.run(fmax=0.05, steps=500)
    return opt.get_number_of_steps(), time.perf_counter() - start, atoms.get_potential_energy() / len(atoms)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    args = parser.parse_args()
    model = e3relax.Model(args.model)
    crystals = test_crystals()
    start = time.perf_counter()
    predictions = model.relax(crystals)
    e3relax_seconds = time.perf_counter() - start
    print(f"e3relax {e3relax.version()}: {len(crystals)} crystals predicted in {e3relax_seconds * 1e3:.1f} ms")
    for name, optimizer in [("BFGS", BFGS), ("FIRE", FIRE)]:
        print(f"\n{name} (FrechetCellFilter, fmax 0.05 eV/Å)")
        print(f"{'crystal':<12} {'steps from input':>17} {'steps from e3relax':>19} {'same minimum':>13}")
        totals = np.zeros(4)
        for atoms, predicted in zip(crystals, predictions):
            steps_in, seconds_in, energy_in = optimise(atoms, optimizer)
            steps_e3, seconds_e3, energy_e3 = optimise(predicted, optimizer)
            same = abs(energy_in - energy_e3) < 0.005
            print(f"{atoms.get_chemical_formula():<12} {steps_in:>17} {steps_e3:>19} {'yes' if same else 'no':>13}")
            totals += [steps_in, steps_e3, seconds_in, seconds_e3]
        n = len(crystals)
        print(
            f"{'mean':<12} {totals[0] / n:>17.1f} {totals[1] / n:>19.1f}"
            f"   time {totals[2]:.2f} s from input, {totals[3] + e3relax_seconds:.2f} s from e3relax"
        )


if __name__ == "__main__":
    main()
