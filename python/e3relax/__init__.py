"""e3relax: relaxed crystal structures in one forward pass of E3Relax.

    >>> import ase.build, e3relax
    >>> model = e3relax.Model()                 # the shipped default model
    >>> relaxed = model.relax(ase.build.bulk("Si", cubic=True))

``Model.relax`` takes an ``ase.Atoms``, a pymatgen ``Structure`` or a list of
them (relaxed as a batch) and returns the same type(s), metadata kept; plain
NumPy arrays go through ``Model.relax_arrays``. Lengths are in Å, lattice
rows are lattice vectors, positions Cartesian. Everything goes through the
library's C ABI; errors raise ``E3RelaxError`` subclasses carrying the
library's message.
"""

import contextlib
import ctypes
import json
import math
import numbers as _numbers
import operator
import os
import signal
import threading

import numpy as np

from . import _capi
from ._capi import (
    DeviceError,
    E3RelaxError,
    FileError,
    FormatError,
    InternalError,
    InvalidArgumentError,
    InvalidStructureError,
    ModelError,
    TorchError,
)

__all__ = [
    "Model",
    "E3RelaxError",
    "InvalidArgumentError",
    "InvalidStructureError",
    "ModelError",
    "FileError",
    "FormatError",
    "DeviceError",
    "TorchError",
    "InternalError",
    "set_num_threads",
    "cuda_device_count",
    "train",
    "version",
    "torch_version",
]

__version__ = _capi.version().decode()


def version():
    """The version of the loaded libe3relax."""
    return _capi.version().decode()


def torch_version():
    """The libtorch version libe3relax was built against."""
    return _capi.torch_version().decode()


def set_num_threads(threads, interop_threads=0):
    """libtorch's intra-op threads for this process (1 to 1024; the
    default is ``E3RELAX_NUM_THREADS``, else ``OMP_NUM_THREADS``, else 1)."""
    _capi.check(_capi.set_num_threads(int(threads), int(interop_threads)))


def cuda_device_count():
    """Usable CUDA devices (0 without CUDA)."""
    count = ctypes.c_int32(0)
    _capi.check(_capi.cuda_device_count(ctypes.byref(count)))
    return count.value


def train(config, resume=False, progress=None, overwrite=False):
    """Trains or fine-tunes a model as ``e3relax train`` does. ``config`` is
    the training configuration (a dict, or its JSON); ``progress(event)``
    receives each event as a dict (``{"event": "round", ...}``) and returns
    True to stop the run after that round (its checkpoint is kept;
    ``resume=True`` continues). An exception raised by ``progress`` stops
    the run and is raised here. Ctrl-C (SIGINT, in the main thread) stops
    the run at the end of the current round, once its checkpoint is
    written, and then raises ``KeyboardInterrupt`` here (``resume=True``
    continues the run). An output folder that holds a run already is
    refused unless ``resume=True`` continues it or ``overwrite=True``
    replaces it. Returns the final ``"done"`` event."""
    text = config if isinstance(config, str) else json.dumps(config)
    if overwrite:
        try:
            settings = json.loads(text)
        except ValueError as error:
            raise InvalidArgumentError(f"config is not valid JSON: {error}") from None
        if not isinstance(settings, dict):
            raise InvalidArgumentError(f"config must be a JSON object, got {type(settings).__name__}")
        text = json.dumps(dict(settings, overwrite=True))
    errors, done, interrupted = [], {}, []

    def forward(message, _user_data):
        # Everything inside the try: an exception must never escape into
        # ctypes, which would print and drop it.
        try:
            if errors:
                return 1
            event = json.loads(message.decode())
            if event.get("event") == "done":
                done.update(event)
            stop = progress is not None and progress(event)
            return 1 if stop or interrupted else 0
        except BaseException as error:  # noqa: BLE001 - raised after the run
            errors.append(error)
            return 1

    def on_sigint(_signum, _frame):
        if not interrupted:
            import sys

            print("e3relax: interrupted; the run stops once this round's checkpoint is written", file=sys.stderr)
        interrupted.append(True)

    # Python runs signal handlers only between bytecodes, i.e. inside the
    # callback while the library trains: the default handler's
    # KeyboardInterrupt would be raised where nothing can catch it. So
    # SIGINT only asks the run to stop; KeyboardInterrupt comes after.
    previous = None
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        callback = _capi._PROGRESS(forward)
        status = _capi.train(text.encode(), int(bool(resume)), callback, None)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if errors:
        raise errors[0]
    if interrupted:
        _capi.check(status)
        raise KeyboardInterrupt
    _capi.check(status)
    return done


#: The heaviest element (oganesson).
MAX_ATOMIC_NUMBER = 118


def _atomic_numbers(values, label=""):
    """``values`` as int32 atomic numbers, checked before any conversion: a
    number that is not an integer (14.7), or not an element (0, 2**32 + 14,
    which int32 would wrap to 14) is an error naming the atom, never
    rounded or wrapped into another element."""
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] == 0:
        raise InvalidArgumentError(f"{label}numbers must be a non-empty 1-D array, got shape {array.shape}")
    if array.dtype.kind in "iu" and array.min() >= 1 and array.max() <= MAX_ATOMIC_NUMBER:
        return array.astype(np.int32)
    for i, z in enumerate(array.tolist()):
        atom = f"{label}atom {i + 1} (index {i})"
        if isinstance(z, bool) or not isinstance(z, (_numbers.Integral, float)):
            raise InvalidStructureError(f"{atom}: the atomic number {z!r} is not an integer")
        if isinstance(z, float) and not (math.isfinite(z) and z == int(z)):
            raise InvalidStructureError(f"{atom}: the atomic number {z!r} is not an integer")
        if not 1 <= z <= MAX_ATOMIC_NUMBER:
            raise InvalidStructureError(
                f"{atom}: the atomic number {int(z)} is not an element (1 to {MAX_ATOMIC_NUMBER})"
            )
    return array.astype(np.int32)


def _is_ase(item):
    return hasattr(item, "get_cell") and hasattr(item, "get_atomic_numbers")


def _is_pymatgen(item):
    return hasattr(item, "lattice") and hasattr(item, "sites") and hasattr(item, "cart_coords")


def _check_periodicity(pbc, what, fixed_cell):
    """Refuses a cell that is not periodic along every axis, unless
    ``fixed_cell`` relaxes a slab in its own cell."""
    pbc = [bool(p) for p in np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))]
    if not any(pbc):
        raise InvalidStructureError(f"the {what} is not periodic (pbc all False); e3relax relaxes crystals")
    if not all(pbc) and not fixed_cell:
        raise InvalidStructureError(
            f"the {what} is periodic along some axes only (pbc={pbc}): e3relax sees every cell as a 3-D "
            "crystal and would change the vacuum like a lattice vector; relax a slab with fixed_cell=True "
            "(with more vacuum than the model's graph_radius along the non-periodic axes), or set pbc=True "
            "for a bulk crystal"
        )


def _arrays_of(item, fixed_cell=False, label=""):
    """(numbers, positions, lattice) of an ASE Atoms or pymatgen Structure."""
    if _is_ase(item):
        _check_periodicity(item.get_pbc(), "Atoms object", fixed_cell)
        numbers = _atomic_numbers(item.get_atomic_numbers(), label)
        return numbers, item.get_positions(), np.asarray(item.get_cell())
    if _is_pymatgen(item):
        if not item.is_ordered:
            raise InvalidStructureError("disordered (partially occupied) structures are not supported")
        _check_periodicity(getattr(item.lattice, "pbc", (True, True, True)), "Structure", fixed_cell)
        numbers = []
        for i, site in enumerate(item.sites):
            specie = site.specie
            z = getattr(specie, "Z", None) if type(specie).__name__ != "DummySpecies" else None
            if z is None:
                raise InvalidStructureError(
                    f"{label}site {i + 1} (index {i}) is {specie} ({type(specie).__name__}), not an element; "
                    "e3relax needs every site to be a real element"
                )
            numbers.append(z)
        return _atomic_numbers(numbers, label), item.cart_coords, item.lattice.matrix
    raise InvalidArgumentError(
        f"expected an ase.Atoms or a pymatgen Structure, got {type(item).__name__}; "
        "use Model.relax_arrays for plain arrays"
    )


def _move_mask_of(item):
    """The frozen coordinates of an ASE Atoms (``FixAtoms``,
    ``FixCartesian``: Cartesian axes; ``FixScaled``: lattice vectors) or a
    pymatgen Structure (``selective_dynamics`` site property, as VASP: lattice
    vectors), as ``(mask[n, 3] int32 with 1 = may move, axes)``, or
    ``(None, AXES_CARTESIAN)`` when nothing is frozen. A constraint e3relax
    cannot honour is an error naming it, never silently dropped."""
    n = len(item)
    if _is_ase(item):
        from ase.constraints import FixAtoms, FixCartesian, FixScaled

        cartesian = np.ones((n, 3), dtype=np.int32)
        lattice = np.ones((n, 3), dtype=np.int32)
        for constraint in item.constraints:
            if isinstance(constraint, FixAtoms):
                cartesian[constraint.get_indices()] = 0
            elif isinstance(constraint, (FixCartesian, FixScaled)):
                target = lattice if isinstance(constraint, FixScaled) else cartesian
                index = np.atleast_1d(np.asarray(getattr(constraint, "index", getattr(constraint, "a", []))))
                fixed = np.asarray(constraint.mask, dtype=bool)
                if fixed.ndim == 1:
                    fixed = np.broadcast_to(fixed, (len(index), 3))
                for atom, axes in zip(index, fixed):
                    target[atom][axes] = 0
            else:
                raise InvalidArgumentError(
                    f"the ASE constraint {type(constraint).__name__} cannot be honoured by e3relax "
                    "(FixAtoms, FixCartesian and FixScaled can); remove it before relaxing"
                )
        if (lattice == 0).any() and (cartesian == 0).any():
            # Fully frozen atoms mean the same in both frames.
            partly_cartesian = (cartesian == 0).any(axis=1) & ~(cartesian == 0).all(axis=1)
            if partly_cartesian.any():
                raise InvalidArgumentError(
                    "FixScaled together with a per-axis FixCartesian: e3relax takes one kind of axes per structure"
                )
            lattice[(cartesian == 0).all(axis=1)] = 0
            return lattice, _capi.AXES_LATTICE
        if (lattice == 0).any():
            return lattice, _capi.AXES_LATTICE
        if (cartesian == 0).any():
            return cartesian, _capi.AXES_CARTESIAN
        return None, _capi.AXES_CARTESIAN
    flags = (item.site_properties or {}).get("selective_dynamics")
    if flags is None:
        return None, _capi.AXES_CARTESIAN
    mask = np.ones((n, 3), dtype=np.int32)
    for i, f in enumerate(flags):
        if f is None:
            continue
        values = np.asarray(f, dtype=bool).reshape(-1)
        if values.shape != (3,):
            raise InvalidArgumentError(f"selective_dynamics of site {i} is {f!r}, expected three booleans")
        mask[i] = values.astype(np.int32)
    if mask.all():
        return None, _capi.AXES_CARTESIAN
    return mask, _capi.AXES_LATTICE


def _rebuilt(item, positions, lattice, layer=None):
    """A copy of `item` (same type, metadata kept) with a new geometry."""
    if _is_ase(item):
        out = item.copy()
        out.set_cell(lattice, scale_atoms=False)
        # The prediction already honours the constraints (frozen atoms in
        # place, or following the cell): ASE must not re-apply them against
        # the old cell.
        out.set_positions(positions, apply_constraint=False)
        if layer is not None:
            out.info["e3relax_layer"] = layer
        return out
    from pymatgen.core import Lattice

    properties = dict(getattr(item, "properties", {}) or {})
    if layer is not None:
        properties["e3relax_layer"] = layer
    # The same class (Structure, IStructure, ...), with the site labels, the
    # charge as set (None: pymatgen's sum of oxidation states), the
    # periodicity, the site properties and the properties kept.
    return type(item)(
        Lattice(lattice, pbc=getattr(item.lattice, "pbc", (True, True, True))),
        item.species,
        positions,
        charge=getattr(item, "_charge", None),
        coords_are_cartesian=True,
        site_properties=item.site_properties or None,
        labels=list(item.labels),
        properties=properties,
    )


def _with_uncertainty(item, positions, lattice, atoms, cell, volume):
    """The rebuilt item carrying an ensemble's spread."""
    out = _rebuilt(item, positions, lattice)
    # The crystal's coordinate uncertainty (Å), as the library's
    # Uncertainty::coordinates: the atoms' mean spread and the displacement
    # the cell's strain spread makes across the cell, in quadrature.
    mean_atom = float(np.mean(atoms)) if len(atoms) else 0.0
    length = abs(float(np.linalg.det(np.asarray(lattice, dtype=np.float64)))) ** (1.0 / 3.0)
    coordinates = float(np.hypot(mean_atom, cell * length))
    if _is_ase(out):
        out.arrays["uncertainty"] = np.asarray(atoms, dtype=np.float64)
        out.info["cell_uncertainty"] = cell
        out.info["volume_uncertainty"] = volume
        out.info["coordinate_uncertainty"] = coordinates
    else:
        out.add_site_property("uncertainty", [float(a) for a in atoms])
        out.properties["cell_uncertainty"] = cell
        out.properties["volume_uncertainty"] = volume
        out.properties["coordinate_uncertainty"] = coordinates
    return out


def _c_array(values, ctype, shape):
    array = np.ascontiguousarray(values, dtype=np.float64 if ctype is ctypes.c_double else np.int32)
    if array.shape != shape:
        raise InvalidArgumentError(f"expected an array of shape {shape}, got {array.shape}")
    return array, array.ctypes.data_as(ctypes.POINTER(ctype))


def _path_argument(path):
    """A model path as text: ``str``, ``bytes`` (decoded as the file system
    does, ``os.fsdecode``) or any path-like object; None stays None. A path
    with a NUL character is refused (C would read only the part before it)."""
    if path is None:
        return None
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        raise InvalidArgumentError(
            f"path must be a str, bytes or os.PathLike, got {type(path).__name__}"
        ) from None
    if "\0" in text:
        raise InvalidArgumentError(f"path {text!r} contains a NUL character")
    return text


def _integer_option(name, value):
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}") from None


def _tolerance_option(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, _numbers.Real) or not math.isfinite(value):
        raise InvalidArgumentError(f"symmetry_tolerance must be a number of Å or None, got {value!r}")
    return float(value)


def _call_options(fixed_cell, layers=False):
    """The per-call settings of ``e3relax_predict_with`` (JSON bytes)."""
    options = {"fixed_cell": bool(fixed_cell)}
    if layers:
        options["layers"] = True
    return json.dumps(options).encode()


class Model:
    """An E3Relax model loaded through the C ABI.

    ``path``: a model directory (``config.json`` + ``model.safetensors``), or
    None for the shipped default model. ``device``: ``"cpu"``, ``"cuda"``,
    ``"cuda:K"`` or ``"auto"``. ``symmetry_tolerance`` (Å): the prediction
    keeps the input's space group found at this tolerance (None: the
    network's raw output). ``uncertainty=True`` loads the directory's
    ensemble (``ensemble.json``): predictions are its members' mean, and
    ``relax`` adds their spread (ASE: ``atoms.arrays["uncertainty"]`` in Å,
    ``atoms.info["cell_uncertainty"]``, ``["volume_uncertainty"]`` in
    Å^3 and ``["coordinate_uncertainty"]`` in Å, the crystal's spread on
    the scale of its coordinate error; pymatgen: the ``uncertainty`` site property and the same keys in
    ``properties``). ``trust=(strain, displacement)``: the trust policy
    (see the README). ``surface_trust=K``: shrink each prediction where the
    model's surface readers (the ``reader`` its ``surface_trust.json``
    names, one folder or several averaged, else its own energy-surface
    heads) find the input at rest (forces and virial no larger than K
    times that file's scales);
    ``None`` (default): the model's own default (``surface_trust.json``'s
    ``default``, else the raw prediction); ``False``: the raw prediction.
    ``line_search=True``: go along each predicted move only as far as the
    readers find the energy falling (see the README).
    """

    def __init__(self, path=None, device="cpu", symmetry_tolerance=1e-3, batch_size=16, uncertainty=False,
                 trust=None, surface_trust=None, line_search=False):
        self.path = _path_argument(path)
        self.device = device
        self.uncertainty = bool(uncertainty)
        self._options = {
            "device": device,
            "batch_size": _integer_option("batch_size", batch_size),
            "symmetry_tolerance": _tolerance_option(symmetry_tolerance),
            "uncertainty": self.uncertainty,
        }
        if trust is not None:
            try:
                strain, displacement = (float(v) for v in trust)
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    f"trust must be (strain, displacement), two non-negative numbers; got {trust!r}"
                ) from None
            self._options["trust"] = [strain, displacement]
        if surface_trust is False:
            self._options["surface_trust"] = None
        elif surface_trust is not None:
            try:
                self._options["surface_trust"] = float(surface_trust)
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    f"surface_trust must be a number above 0; got {surface_trust!r}"
                ) from None
        if not isinstance(line_search, bool):
            raise InvalidArgumentError(f"line_search must be True or False; got {line_search!r}")
        self._options["line_search"] = line_search
        self._c_model = None
        self._progress_lock = threading.Lock()
        self._load_lock = threading.Lock()
        # Calls in flight, so that close() (from any thread) waits for them
        # instead of freeing a handle under a running prediction.
        self._calls = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self._local = threading.local()
        with self._using():
            self._handle()

    @contextlib.contextmanager
    def _using(self):
        """Marks a call in flight: close() waits until it is over."""
        with self._calls:
            if self._closed:
                raise InvalidArgumentError("this e3relax.Model is closed")
            self._in_flight += 1
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1
            with self._calls:
                self._in_flight -= 1
                self._calls.notify_all()

    def _handle(self):
        """The C handle, loaded once: fixed-cell and variable-cell calls
        share it (and its one copy of the weights), each passing its own
        settings to ``e3relax_predict_with``."""
        with self._load_lock:
            if self._c_model is None:
                options = json.dumps(self._options).encode()
                handle = ctypes.c_void_p()
                path = None if self.path is None else os.fsencode(self.path)
                _capi.check(_capi.load(path, options, ctypes.byref(handle)))
                self._c_model = handle
            return self._c_model

    def close(self):
        """Frees the model now (also done when it is garbage-collected).
        Safe from any thread: it waits for the calls in flight on other
        threads to finish; later calls raise ``InvalidArgumentError``."""
        if getattr(self._local, "depth", 0) > 0:
            raise InvalidArgumentError(
                "Model.close() was called from inside a call on the same model (a progress callback)"
            )
        with self._calls:
            self._closed = True
            self._calls.wait_for(lambda: self._in_flight == 0)
            handle, self._c_model = self._c_model, None
        if handle is not None:
            _capi.free(handle)

    def __del__(self):
        if getattr(self, "_c_model", None) is not None and _capi is not None:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def num_layers(self):
        """Layers of the network (structures ``layers=True`` returns)."""
        count = ctypes.c_int32(0)
        with self._using():
            _capi.check(_capi.num_layers(self._handle(), ctypes.byref(count)))
        return count.value

    def relax_arrays(self, numbers, positions, lattice, fixed_cell=False, layers=False, move_mask=None,
                     lattice_axes=False):
        """Relaxes one crystal given as arrays: ``numbers[n]`` atomic numbers,
        ``positions[n, 3]`` Cartesian Å, ``lattice[3, 3]`` rows = lattice
        vectors. Returns ``(positions, lattice)``, or with ``layers=True``
        arrays ``[layers, n, 3]`` and ``[layers, 3, 3]``. ``move_mask[n, 3]``
        (True = may move) freezes coordinates along Cartesian axes, or along
        the lattice vectors with ``lattice_axes=True``: frozen coordinates
        come back as given with ``fixed_cell``, else the frozen atoms keep
        their fractional coordinates."""
        with self._using():
            return self._relax_arrays(numbers, positions, lattice, fixed_cell, layers, move_mask, lattice_axes)

    def _relax_arrays(self, numbers, positions, lattice, fixed_cell, layers, move_mask, lattice_axes):
        numbers = _atomic_numbers(numbers)
        n = numbers.shape[0]
        numbers, numbers_p = _c_array(numbers, ctypes.c_int32, (n,))
        positions, positions_p = _c_array(positions, ctypes.c_double, (n, 3))
        lattice, lattice_p = _c_array(lattice, ctypes.c_double, (3, 3))
        mask = None
        if move_mask is not None:
            mask = np.asarray(move_mask)
            if mask.shape != (n, 3):
                raise InvalidArgumentError(f"move_mask must have shape {(n, 3)}, got {mask.shape}")
            mask = mask.astype(bool).astype(np.int32)
            if layers:
                raise InvalidArgumentError("layers=True does not take a move_mask (the raw layers ignore it)")
        if layers:
            t = self.num_layers
            out_positions = np.empty((t, n, 3))
            out_lattices = np.empty((t, 3, 3))
            count = ctypes.c_int32(n)
            _capi.check(
                _capi.predict_with(
                    self._handle(), _call_options(fixed_cell, layers=True), 1, ctypes.byref(count),
                    numbers_p, positions_p, lattice_p, None, _capi.AXES_CARTESIAN,
                    out_positions.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                    out_lattices.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                    None, None, None,
                )
            )
            return out_positions, out_lattices
        axes = _capi.AXES_LATTICE if lattice_axes else _capi.AXES_CARTESIAN
        out = self._predict_batch(fixed_cell, [(numbers, positions, lattice)], [(mask, axes)])
        return out[0]

    def _predict_batch(self, fixed_cell, arrays, masks=None):
        """One batched call; ``masks``: per structure ``(mask or None, axes)``.
        Structures whose masks use different axes go in separate calls."""
        if masks is not None and any(m is not None for m, _ in masks):
            first = next(axes for m, axes in masks if m is not None)
            groups = {}
            for k, (m, axes) in enumerate(masks):
                groups.setdefault(axes if m is not None else first, []).append(k)
            results = [None] * len(arrays)
            for axes, chosen in groups.items():
                flags = [
                    masks[k][0] if masks[k][0] is not None else np.ones((len(arrays[k][0]), 3), np.int32)
                    for k in chosen
                ]
                part = self._predict_batch_with(fixed_cell, [arrays[k] for k in chosen], flags, axes)
                for k, r in zip(chosen, part):
                    results[k] = r
            return results
        return self._predict_batch_with(fixed_cell, arrays, None, _capi.AXES_CARTESIAN)

    def _with_progress(self, handle, progress, total, call):
        """Runs ``call()`` with ``progress`` reporting its batches: a callable
        ``progress(done, total)``, or True for a tqdm bar (plain lines on
        stderr when tqdm is not installed). An exception raised by the
        callable (KeyboardInterrupt included) is raised once the call
        returns, never swallowed."""
        if not progress:
            return call()
        bar = None
        if progress is True:
            try:
                from tqdm import tqdm

                bar = tqdm(total=total, unit="structure", desc="e3relax")
                report = lambda done, _total: bar.update(done - bar.n)  # noqa: E731
            except ImportError:
                import sys

                report = lambda done, total_: print(  # noqa: E731
                    f"e3relax: {done}/{total_} structures", file=sys.stderr
                )
        elif callable(progress):
            report = progress
        else:
            raise InvalidArgumentError(f"progress must be True, False or a callable, got {progress!r}")
        raised = []

        def forward(done, total_, _user_data):
            if raised:
                return
            try:
                report(int(done), int(total_))
            except BaseException as error:  # noqa: B036 - re-raised below
                raised.append(error)

        callback = _capi.PREDICT_PROGRESS(forward)
        with self._progress_lock:
            _capi.check(_capi.set_predict_progress(handle, callback, None))
            try:
                result = call()
            finally:
                _capi.set_predict_progress(handle, _capi.PREDICT_PROGRESS(), None)
                if bar is not None:
                    bar.close()
        if raised:
            raise raised[0]
        return result

    def _predict_batch_with(self, fixed_cell, arrays, flags, axes):
        counts = np.array([len(a[0]) for a in arrays], dtype=np.int32)
        numbers = np.ascontiguousarray(np.concatenate([a[0] for a in arrays]), dtype=np.int32)
        positions = np.ascontiguousarray(np.concatenate([a[1] for a in arrays]), dtype=np.float64)
        lattices = np.ascontiguousarray(np.stack([a[2] for a in arrays]), dtype=np.float64)
        out_positions = np.empty_like(positions)
        out_lattices = np.empty_like(lattices)
        double_p = ctypes.POINTER(ctypes.c_double)
        int_p = ctypes.POINTER(ctypes.c_int32)
        mask = None if flags is None else np.ascontiguousarray(np.concatenate(flags), dtype=np.int32)
        _capi.check(
            _capi.predict_with(
                self._handle(),
                _call_options(fixed_cell),
                len(arrays),
                counts.ctypes.data_as(int_p),
                numbers.ctypes.data_as(int_p),
                positions.ctypes.data_as(double_p),
                lattices.ctypes.data_as(double_p),
                None if mask is None else mask.ctypes.data_as(int_p),
                axes,
                out_positions.ctypes.data_as(double_p),
                out_lattices.ctypes.data_as(double_p),
                None,
                None,
                None,
            )
        )
        results, start = [], 0
        for k, count in enumerate(counts):
            results.append((out_positions[start : start + count], out_lattices[k]))
            start += count
        return results

    def relax(self, structures, fixed_cell=False, layers=False, progress=None):
        """Relaxes an ``ase.Atoms`` or pymatgen ``Structure``, or a list of
        them (one batched call), and returns the same type(s) with info and
        metadata kept. ``fixed_cell=True`` keeps each cell and moves atoms
        only (defects, slabs). ``layers=True`` returns, per structure, the
        list of every layer's structure (the last is the answer).
        ``progress``: True for a progress bar (tqdm, when installed), or a
        callable ``progress(done, total)`` called after each batch."""
        with self._using():
            return self._relax(structures, fixed_cell, layers, progress)

    def _relax(self, structures, fixed_cell, layers, progress):
        single = not isinstance(structures, (list, tuple))
        items = [structures] if single else list(structures)
        if not items:
            return []
        arrays = []
        for k, item in enumerate(items):
            numbers, positions, lattice = _arrays_of(item, fixed_cell, "" if single else f"structure {k}: ")
            arrays.append((numbers, np.asarray(positions, dtype=np.float64),
                           np.asarray(lattice, dtype=np.float64)))
        masks = [_move_mask_of(item) for item in items]
        if layers:
            if any(m is not None for m, _ in masks):
                raise InvalidArgumentError(
                    "layers=True returns the network's raw layers, which do not honour frozen atoms; "
                    "relax without layers=True, or remove the constraints"
                )
            results = []
            for item, (numbers, positions, lattice) in zip(items, arrays):
                all_positions, all_lattices = self._relax_arrays(
                    numbers, positions, lattice, fixed_cell, True, None, False
                )
                results.append(
                    [_rebuilt(item, p, l, layer=t + 1) for t, (p, l) in enumerate(zip(all_positions, all_lattices))]
                )
        elif self.uncertainty:
            results = []
            for k, (item, (numbers, positions, lattice), mask) in enumerate(zip(items, arrays, masks)):
                results.append(
                    _with_uncertainty(item, *self._predict_uncertainty(fixed_cell, numbers, positions, lattice, mask))
                )
                if callable(progress):
                    progress(k + 1, len(items))
        else:
            predicted = self._with_progress(
                self._handle(), progress, len(arrays), lambda: self._predict_batch(fixed_cell, arrays, masks)
            )
            results = [_rebuilt(item, p, l) for item, (p, l) in zip(items, predicted)]
        return results[0] if single else results

    def _predict_uncertainty(self, fixed_cell, numbers, positions, lattice, mask=(None, 0)):
        n = len(numbers)
        flags, axes = mask
        flags = None if flags is None else np.ascontiguousarray(flags, dtype=np.int32)
        numbers, numbers_p = _c_array(numbers, ctypes.c_int32, (n,))
        positions, positions_p = _c_array(positions, ctypes.c_double, (n, 3))
        lattice, lattice_p = _c_array(lattice, ctypes.c_double, (3, 3))
        out_positions, out_lattice, atoms = np.empty((n, 3)), np.empty((3, 3)), np.empty(n)
        cell, volume = ctypes.c_double(), ctypes.c_double()
        double_p = ctypes.POINTER(ctypes.c_double)
        _capi.check(
            _capi.predict_with(
                self._handle(), _call_options(fixed_cell), 1, ctypes.byref(ctypes.c_int32(n)),
                numbers_p, positions_p, lattice_p,
                None if flags is None else flags.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), axes,
                out_positions.ctypes.data_as(double_p), out_lattice.ctypes.data_as(double_p),
                atoms.ctypes.data_as(double_p), ctypes.byref(cell), ctypes.byref(volume),
            )
        )
        return out_positions, out_lattice, atoms, cell.value, volume.value
