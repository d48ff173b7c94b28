"""Builds libe3relax with cargo (from the repository this folder is part
of) and puts it, with the shipped default model, inside the package.

libtorch for the build comes from ``$LIBTORCH`` or the repository's
``.libtorch`` (``scripts/get-libtorch.sh`` installs it, and is run here when
it is missing); at run time the package uses the installed ``torch``
package's libtorch (same version), see ``e3relax/_capi.py``.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent


def cargo_metadata():
    """The versions in Cargo.toml: the crate's, and [package.metadata.e3relax]'s."""
    manifest = (REPOSITORY / "Cargo.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', manifest, re.M).group(1)
    section = manifest.split("[package.metadata.e3relax]", 1)[1].split("\n[", 1)[0]
    abi = int(re.search(r"^abi-version = (\d+)", section, re.M).group(1))
    torch = re.search(r'^libtorch-version = "([^"]+)"', section, re.M).group(1)
    return version, abi, torch


VERSION, ABI_VERSION, TORCH_VERSION = cargo_metadata()


class BuildWithCargo(build_py):
    def run(self):
        super().run()
        if not (REPOSITORY / "Cargo.toml").is_file():
            raise RuntimeError(f"the e3relax repository (Cargo.toml) is not at {REPOSITORY}")
        env = dict(os.environ)
        if "LIBTORCH" not in env and not (REPOSITORY / ".libtorch/torch/lib/libtorch_cpu.so").is_file():
            subprocess.run(["bash", str(REPOSITORY / "scripts/get-libtorch.sh")], check=True)
        target = Path(env.get("CARGO_TARGET_DIR", REPOSITORY / "target"))
        subprocess.run(
            ["cargo", "build", "--release", "--lib"], cwd=REPOSITORY, env=env, check=True
        )
        package = Path(self.build_lib) / "e3relax"
        package.mkdir(parents=True, exist_ok=True)
        (package / "_build_info.py").write_text(
            "# Written by setup.py from Cargo.toml.\n"
            f"VERSION = {VERSION!r}\nABI_VERSION = {ABI_VERSION}\nTORCH_VERSION = {TORCH_VERSION!r}\n"
        )
        shutil.copy2(target / "release/libe3relax.so", package / "libe3relax.so")
        models = package / "models"
        if models.exists():
            shutil.rmtree(models)
        shutil.copytree(REPOSITORY / "models/default", models / "default")
        # The licence travels with the library and the model it covers.
        shutil.copy2(REPOSITORY / "LICENSE", package / "LICENSE")


class BinaryDistribution(Distribution):
    """The wheel holds a shared library: platform-specific."""

    def has_ext_modules(self):
        return True


setup(
    version=VERSION,
    install_requires=["numpy", f"torch=={TORCH_VERSION}"],
    cmdclass={"build_py": BuildWithCargo},
    distclass=BinaryDistribution,
)
