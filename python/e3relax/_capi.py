"""The C ABI of libe3relax through ctypes: loading the library (and the
libtorch it links, preferably the one of an installed ``torch`` package),
declaring the functions, and turning status codes into exceptions.

Nothing here knows about ASE or pymatgen; ``e3relax.model`` builds on it.
"""

import ctypes
import importlib.util
import os
import re
from pathlib import Path

# Written by setup.py from Cargo.toml ([package.metadata.e3relax]): the
# versions are never typed twice.
from ._build_info import ABI_VERSION, TORCH_VERSION, VERSION  # noqa: E402

_HERE = Path(__file__).resolve().parent


class E3RelaxError(RuntimeError):
    """A failed e3relax call; the message is the library's. ``status`` is
    the C status code of the failure (``E3RELAX_INVALID_STRUCTURE`` = 2,
    ...), set on every instance; each code has its own subclass."""

    #: The C status code of this class's failures.
    status = 0

    def __init__(self, message="", status=None):
        super().__init__(message)
        self.status = type(self).status if status is None else int(status)


class InvalidArgumentError(E3RelaxError, ValueError):
    """A bad argument or option (status 1)."""

    status = 1


class InvalidStructureError(E3RelaxError, ValueError):
    """A structure the model cannot take (status 2)."""

    status = 2


class ModelError(E3RelaxError):
    """A model directory that is missing, truncated or does not match (status 3)."""

    status = 3


class FileError(E3RelaxError, OSError):
    """A file that cannot be read or written (status 4)."""

    status = 4


class FormatError(E3RelaxError, ValueError):
    """A file whose content does not follow its format (status 5)."""

    status = 5


class DeviceError(E3RelaxError):
    """A device (CUDA) that was asked for but is not available (status 6)."""

    status = 6


class TorchError(E3RelaxError):
    """An error inside libtorch (status 7)."""

    status = 7


class InternalError(E3RelaxError):
    """A bug in e3relax (status 8); please report it."""

    status = 8


_ERRORS = {
    cls.status: cls
    for cls in (
        InvalidArgumentError, InvalidStructureError, ModelError, FileError, FormatError, DeviceError, TorchError,
        InternalError,
    )
}


def _installed_torch_lib():
    """The ``lib`` folder of an installed ``torch`` package, found without
    importing torch (which needs its Python dependencies), if its version is
    the one libe3relax was built against."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    version_file = root / "version.py"
    try:
        match = re.search(r"__version__\s*=\s*['\"]([^'\"+]+)", version_file.read_text())
    except OSError:
        return None
    if match is None or match.group(1) != TORCH_VERSION:
        found = match.group(1) if match else "unknown"
        raise ImportError(
            f"e3relax needs torch=={TORCH_VERSION}, but the installed torch is {found} ({root})"
        )
    lib = root / "lib"
    return lib if (lib / "libtorch_cpu.so").is_file() else None


def _load_library():
    torch_lib = _installed_torch_lib()
    if torch_lib is not None:
        # Loaded first and globally, the installed torch's libraries are the
        # ones libe3relax's NEEDED entries resolve to: one libtorch in the
        # process, shared with PyTorch.
        for name in ("libc10.so", "libtorch_cpu.so"):
            ctypes.CDLL(str(torch_lib / name), mode=ctypes.RTLD_GLOBAL)
    candidates = [os.environ.get("E3RELAX_LIBRARY"), _HERE / "libe3relax.so"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return ctypes.CDLL(str(candidate))
    raise ImportError(
        f"libe3relax.so not found (looked in {_HERE}; set E3RELAX_LIBRARY to use another build)"
    )


lib = _load_library()

_c_int_p = ctypes.POINTER(ctypes.c_int32)
_c_double_p = ctypes.POINTER(ctypes.c_double)
# Returns non-zero to stop a training run after a round.
_PROGRESS = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_char_p, ctypes.c_void_p)


def _declare(name, args, restype=ctypes.c_int):
    function = getattr(lib, name)
    function.argtypes = args
    function.restype = restype
    return function


last_error = _declare("e3relax_last_error", [], ctypes.c_char_p)
version = _declare("e3relax_version", [], ctypes.c_char_p)
abi_version = _declare("e3relax_abi_version", [], ctypes.c_int32)
torch_version = _declare("e3relax_torch_version", [], ctypes.c_char_p)
set_num_threads = _declare("e3relax_set_num_threads", [ctypes.c_int32, ctypes.c_int32])
cuda_device_count = _declare("e3relax_cuda_device_count", [_c_int_p])
load = _declare("e3relax_load", [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)])
free = _declare("e3relax_free", [ctypes.c_void_p])
num_layers = _declare("e3relax_num_layers", [ctypes.c_void_p, _c_int_p])
predict_layers = _declare(
    "e3relax_predict_layers",
    [ctypes.c_void_p, ctypes.c_int32, _c_int_p, _c_double_p, _c_double_p, _c_double_p, _c_double_p],
)
predict_batch = _declare(
    "e3relax_predict_batch",
    [ctypes.c_void_p, ctypes.c_int32, _c_int_p, _c_int_p, _c_double_p, _c_double_p, _c_double_p, _c_double_p],
)
predict_batch_frozen = _declare(
    "e3relax_predict_batch_frozen",
    [
        ctypes.c_void_p, ctypes.c_int32, _c_int_p, _c_int_p, _c_double_p, _c_double_p, _c_int_p, ctypes.c_int32,
        _c_double_p, _c_double_p,
    ],
)
predict_with = _declare(
    "e3relax_predict_with",
    [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, _c_int_p, _c_int_p, _c_double_p, _c_double_p, _c_int_p,
        ctypes.c_int32, _c_double_p, _c_double_p, _c_double_p, _c_double_p, _c_double_p,
    ],
)
PREDICT_PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p)
set_predict_progress = _declare("e3relax_set_predict_progress", [ctypes.c_void_p, PREDICT_PROGRESS, ctypes.c_void_p])
predict_uncertainty = _declare(
    "e3relax_predict_uncertainty",
    [
        ctypes.c_void_p, ctypes.c_int32, _c_int_p, _c_double_p, _c_double_p, _c_int_p, ctypes.c_int32,
        _c_double_p, _c_double_p, _c_double_p, _c_double_p, _c_double_p,
    ],
)
AXES_CARTESIAN = 0
AXES_LATTICE = 1
train = _declare("e3relax_train", [ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p])

if abi_version() != ABI_VERSION or version().decode() != VERSION:
    raise ImportError(
        f"libe3relax {version().decode()} (ABI {abi_version()}) is not the {VERSION} (ABI {ABI_VERSION}) "
        "this package was built with"
    )


def check(status):
    """Raises the exception of a non-zero status, with the library's message."""
    if status != 0:
        message = (last_error() or b"").decode("utf-8", "replace")
        raise _ERRORS.get(status, E3RelaxError)(message, status=status)
