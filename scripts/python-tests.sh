#!/usr/bin/env bash
# The Python package as a user installs it (pip install ./python) in a
# virtual environment, then its pytest suite. The environment's torch is
# the repository's .libtorch (the torch 2.11.0 wheel, put on PYTHONPATH),
# so nothing big is downloaded twice.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/python-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
"${pip[@]}" numpy ase pymatgen pytest
"${pip[@]}" --no-deps --force-reinstall ./python
PYTHONPATH="$PWD/.libtorch" "$venv/bin/python" -m pytest -q python/tests
