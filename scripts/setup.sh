#!/usr/bin/env bash
# Installs what e3relax needs to build and test, idempotently, on a machine
# that has only the Rust toolchain, python3/pip and apt:
#  * libtorch 2.11.0 (the build tch 0.24.0 pins) from PyPI into .libtorch/
#    (no CPU-only libtorch exists on PyPI; the two small NVIDIA wheels are
#    what the CPU libraries need to start);
#  * the Debian packages the tests use, when missing.
# Re-running it does nothing when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/get-libtorch.sh

# Debian packages used by the test suite (C/C++/Fortran consumers, CMake,
# valgrind for the C bad-input catalogue, LAMMPS and Quantum ESPRESSO for
# the examples that start the real codes from e3relax's prediction).
need=()
for tool in cmake:cmake gfortran:gfortran g++:g++ pkg-config:pkg-config make:make valgrind:valgrind \
    pw.x:quantum-espresso; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
# Open MPI and libclang (the mpi crate's bindings are generated at build
# time) for the tests of the optional `mpi` feature; the default build
# needs neither.
command -v mpicc >/dev/null 2>&1 || need+=(libopenmpi-dev)
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || need+=(libclang-dev)
[ -f /usr/include/lammps/library.h ] || need+=(liblammps-dev)
[ -f /usr/share/lammps/potentials/Si.tersoff ] || need+=(lammps-data)
[ -d /usr/share/espresso/pseudo ] || need+=(quantum-espresso-data)
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]} with apt-get" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
