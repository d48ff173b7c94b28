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

import ctypes
import json
import threading

import numpy as np

from . import _capi
from ._capi import (
    DeviceError,
    E3RelaxError,
    InvalidArgumentError,
    InvalidStructureError,
    ModelError,
)

__all__ = [
    "Model",
    "E3RelaxError",
    "InvalidArgumentError",
    "InvalidStructureError",
    "ModelError",
    "DeviceError",
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


def train(config, resume=False, progress=None):
    """Trains or fine-tunes a model as ``e3relax train`` does. ``config`` is
    the training configuration (a dict, or its JSON); ``progress(event)``
    receives each event as a dict (``{"event": "round", ...}``) and returns
    True to stop the run after that round (its checkpoint is kept;
    ``resume=True`` continues). An exception raised by ``progress`` stops
    the run and is raised here. Returns the final ``"done"`` event."""
    text = config if isinstance(config, str) else json.dumps(config)
    errors, done = [], {}

    def forward(message, _user_data):
        if errors:
            return 1
        event = json.loads(message.decode())
        if event.get("event") == "done":
            done.update(event)
        if progress is None:
            return 0
        try:
            return 1 if progress(event) else 0
        except BaseException as error:  # noqa: BLE001 - raised after the run
            errors.append(error)
            return 1

    callback = _capi._PROGRESS(forward)
    status = _capi.train(text.encode(), int(bool(resume)), callback, None)
    if errors:
        raise errors[0]
    _capi.check(status)
    return done


def _is_ase(item):
    return hasattr(item, "get_cell") and hasattr(item, "get_atomic_numbers")


def _is_pymatgen(item):
    return hasattr(item, "lattice") and hasattr(item, "sites") and hasattr(item, "cart_coords")


def _arrays_of(item):
    """(numbers, positions, lattice) of an ASE Atoms or pymatgen Structure."""
    if _is_ase(item):
        if not np.any(item.get_pbc()):
            raise InvalidStructureError(
                "the Atoms object is not periodic (pbc all False); e3relax relaxes crystals"
            )
        return item.get_atomic_numbers(), item.get_positions(), np.asarray(item.get_cell())
    if _is_pymatgen(item):
        if not item.is_ordered:
            raise InvalidStructureError("disordered (partially occupied) structures are not supported")
        numbers = [site.specie.Z for site in item.sites]
        return numbers, item.cart_coords, item.lattice.matrix
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
    from pymatgen.core import Lattice, Structure

    out = Structure(
        Lattice(lattice),
        item.species,
        positions,
        coords_are_cartesian=True,
        site_properties=item.site_properties or None,
        properties=dict(getattr(item, "properties", {}) or {}),
    )
    if layer is not None:
        out.properties["e3relax_layer"] = layer
    return out


def _c_array(values, ctype, shape):
    array = np.ascontiguousarray(values, dtype=np.float64 if ctype is ctypes.c_double else np.int32)
    if array.shape != shape:
        raise InvalidArgumentError(f"expected an array of shape {shape}, got {array.shape}")
    return array, array.ctypes.data_as(ctypes.POINTER(ctype))


class Model:
    """An E3Relax model loaded through the C ABI.

    ``path``: a model directory (``config.json`` + ``model.safetensors``), or
    None for the shipped default model. ``device``: ``"cpu"``, ``"cuda"``,
    ``"cuda:K"`` or ``"auto"``. ``symmetry_tolerance`` (Å): the prediction
    keeps the input's space group found at this tolerance (None: the
    network's raw output).
    """

    def __init__(self, path=None, device="cpu", symmetry_tolerance=1e-3, batch_size=16):
        self.path = None if path is None else str(path)
        self.device = device
        self._options = {"device": device, "batch_size": int(batch_size), "symmetry_tolerance": symmetry_tolerance}
        self._handles = {}
        self._progress_lock = threading.Lock()
        self._handle(False)

    def _handle(self, fixed_cell):
        fixed_cell = bool(fixed_cell)
        if fixed_cell not in self._handles:
            options = json.dumps(dict(self._options, fixed_cell=fixed_cell)).encode()
            handle = ctypes.c_void_p()
            path = None if self.path is None else self.path.encode()
            _capi.check(_capi.load(path, options, ctypes.byref(handle)))
            self._handles[fixed_cell] = handle
        return self._handles[fixed_cell]

    def close(self):
        """Frees the model now (also done when it is garbage-collected)."""
        for handle in self._handles.values():
            _capi.free(handle)
        self._handles = {}

    def __del__(self):
        if getattr(self, "_handles", None) and _capi is not None:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def num_layers(self):
        """Layers of the network (structures ``layers=True`` returns)."""
        count = ctypes.c_int32(0)
        _capi.check(_capi.num_layers(self._handle(False), ctypes.byref(count)))
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
        numbers = np.asarray(numbers)
        n = numbers.shape[0] if numbers.ndim == 1 else -1
        if n <= 0:
            raise InvalidArgumentError(f"numbers must be a non-empty 1-D array, got shape {numbers.shape}")
        numbers, numbers_p = _c_array(numbers, ctypes.c_int32, (n,))
        positions, positions_p = _c_array(positions, ctypes.c_double, (n, 3))
        lattice, lattice_p = _c_array(lattice, ctypes.c_double, (3, 3))
        handle = self._handle(fixed_cell)
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
            _capi.check(
                _capi.predict_layers(
                    handle, n, numbers_p, positions_p, lattice_p,
                    out_positions.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                    out_lattices.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                )
            )
            return out_positions, out_lattices
        axes = _capi.AXES_LATTICE if lattice_axes else _capi.AXES_CARTESIAN
        out = self._predict_batch(handle, [(numbers, positions, lattice)], [(mask, axes)])
        return out[0]

    def _predict_batch(self, handle, arrays, masks=None):
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
                part = self._predict_batch_with(handle, [arrays[k] for k in chosen], flags, axes)
                for k, r in zip(chosen, part):
                    results[k] = r
            return results
        return self._predict_batch_with(handle, arrays, None, _capi.AXES_CARTESIAN)

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

    def _predict_batch_with(self, handle, arrays, flags, axes):
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
            _capi.predict_batch_frozen(
                handle,
                len(arrays),
                counts.ctypes.data_as(int_p),
                numbers.ctypes.data_as(int_p),
                positions.ctypes.data_as(double_p),
                lattices.ctypes.data_as(double_p),
                None if mask is None else mask.ctypes.data_as(int_p),
                axes,
                out_positions.ctypes.data_as(double_p),
                out_lattices.ctypes.data_as(double_p),
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
        single = not isinstance(structures, (list, tuple))
        items = [structures] if single else list(structures)
        if not items:
            return []
        arrays = []
        for item in items:
            numbers, positions, lattice = _arrays_of(item)
            arrays.append((np.asarray(numbers, dtype=np.int32), np.asarray(positions, dtype=np.float64),
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
                all_positions, all_lattices = self.relax_arrays(numbers, positions, lattice, fixed_cell, layers=True)
                results.append(
                    [_rebuilt(item, p, l, layer=t + 1) for t, (p, l) in enumerate(zip(all_positions, all_lattices))]
                )
        else:
            handle = self._handle(fixed_cell)
            predicted = self._with_progress(
                handle, progress, len(arrays), lambda: self._predict_batch(handle, arrays, masks)
            )
            results = [_rebuilt(item, p, l) for item, (p, l) in zip(items, predicted)]
        return results[0] if single else results
