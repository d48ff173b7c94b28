#!/usr/bin/env bash
# The binary wheel as a user without Rust or this repository installs it:
# `pip wheel ./python` here, then, in a new virtual environment, the wheel
# (no source tree on any path, no cargo on PATH, run from an empty folder)
# with torch==2.11.0 taken from a hard-linked copy of .libtorch (the torch
# wheel and the two small NVIDIA wheels its CPU libraries load), so that the library provably loads libtorch from the installed
# torch and not from the build's .libtorch.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel --quiet --disable-pip-version-check --no-deps ./python -w "$work/dist"
wheel=$(ls "$work"/dist/e3relax-*.whl)
case "$wheel" in
    *-linux_x86_64.whl | *-linux_aarch64.whl) ;;
    *) echo "wheel-test: $wheel is not tagged for this platform" >&2; exit 1 ;;
esac
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check numpy ase
"$work/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$wheel"
mkdir -p "$work/empty"
cp -al "$repo/.libtorch" "$work/site"
cd "$work/empty"
env -i HOME="$work" PATH=/usr/bin:/bin PYTHONPATH="$work/site" "$work/venv/bin/python" - "$work" "$repo" <<'PY'
import importlib.metadata, pathlib, shutil, sys
work, repo = sys.argv[1], sys.argv[2]
assert shutil.which("cargo") is None, "cargo is on PATH"
import ase.build, numpy as np, e3relax
package = pathlib.Path(e3relax.__file__).parent
assert not str(package).startswith(repo), package
for name in ["libe3relax.so", "LICENSE", "models/default/config.json", "models/default/model.safetensors", "models/default/surface_trust.json", "models/default/surface-reader/model.safetensors", "models/default/surface-reader-2/model.safetensors", "models/default/surface-reader-3/model.safetensors"]:
    assert (package / name).is_file(), f"{name} is not in the wheel"
requires = importlib.metadata.requires("e3relax")
assert any(r.replace(" ", "") == "torch==2.11.0" for r in requires), requires
relaxed = e3relax.Model().relax(ase.build.bulk("NaCl", "rocksalt", a=5.9))
assert abs(relaxed.get_volume() - 5.9**3 / 4) > 1e-3 and np.isfinite(relaxed.positions).all()
maps = pathlib.Path("/proc/self/maps").read_text()
torch_libs = {line.split()[-1] for line in maps.splitlines() if "libtorch_cpu.so" in line}
assert torch_libs == {f"{work}/site/torch/lib/libtorch_cpu.so"}, torch_libs
print(f"wheel-test: ok ({len(requires)} requirements; libtorch loaded from the installed torch)")
PY
echo "wheel-test: 1 passed, 0 failed"
