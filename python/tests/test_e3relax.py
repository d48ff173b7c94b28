"""The Python package against the CLI, with ASE and pymatgen inputs, bad
inputs and batches (run by scripts/test.sh)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import e3relax

ase = pytest.importorskip("ase")
import ase.build  # noqa: E402
import ase.io  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("E3RELAX_CLI", REPOSITORY / "target/release/e3relax"))


@pytest.fixture(scope="module")
def model():
    with e3relax.Model() as m:
        yield m


def rattled(atoms, seed, amount=0.05):
    out = atoms.copy()
    out.rattle(amount, seed=seed)
    return out


def crystals():
    return [
        rattled(ase.build.bulk("NaCl", "rocksalt", a=5.7), 1),
        rattled(ase.build.bulk("Si", "diamond", a=5.5, cubic=True), 2),
        rattled(ase.build.bulk("ZnO", "wurtzite", a=3.3, c=5.2), 3),
        rattled(ase.build.bulk("Cu", "fcc", a=3.7).repeat((2, 1, 1)), 4),
    ]


def test_matches_the_command_line_tool(model, tmp_path):
    if not CLI.is_file():
        pytest.skip(f"{CLI} not built")
    inputs = crystals()
    source, target = tmp_path / "in.extxyz", tmp_path / "out.extxyz"
    ase.io.write(source, inputs)
    subprocess.run([str(CLI), "relax", str(source), "-o", str(target)], check=True, capture_output=True)
    from_cli = ase.io.read(target, ":")
    from_python = model.relax(inputs)
    for a, b in zip(from_python, from_cli):
        assert np.abs(a.positions - b.positions).max() < 1e-6
        assert np.abs(a.cell[:] - b.cell[:]).max() < 1e-6


def test_ase_in_ase_out_with_info_kept_and_batch_equal_to_single(model):
    inputs = crystals()
    inputs[0].info["id"] = "salt-1"
    inputs[0].info["energy_note"] = "unrelaxed"
    batch = model.relax(inputs)
    assert all(isinstance(b, ase.Atoms) for b in batch)
    assert batch[0].info["id"] == "salt-1" and batch[0].info["energy_note"] == "unrelaxed"
    for item, together in zip(inputs, batch):
        alone = model.relax(item)
        assert list(alone.numbers) == list(item.numbers)
        assert np.abs(alone.positions - together.positions).max() < 1e-5
        assert np.abs(alone.cell[:] - together.cell[:]).max() < 1e-5
    # The input is untouched.
    assert inputs[1] is not batch[1]
    assert not np.allclose(inputs[1].cell[:], batch[1].cell[:])
    assert model.relax([]) == []


def test_pymatgen_structures(model):
    pymatgen = pytest.importorskip("pymatgen.io.ase")
    adaptor = pymatgen.AseAtomsAdaptor()
    atoms = crystals()[2]
    structure = adaptor.get_structure(atoms)
    structure.properties["source"] = "test"
    relaxed = model.relax(structure)
    assert type(relaxed) is type(structure)
    assert relaxed.properties["source"] == "test"
    expected = model.relax(atoms)
    assert np.abs(relaxed.cart_coords - expected.positions).max() < 1e-6
    assert np.abs(relaxed.lattice.matrix - expected.cell[:]).max() < 1e-6
    mixed = model.relax([structure, atoms])
    assert type(mixed[0]) is type(structure) and isinstance(mixed[1], ase.Atoms)


def test_arrays_layers_and_fixed_cell(model):
    atoms = crystals()[1]
    positions, lattice = model.relax_arrays(atoms.numbers, atoms.positions, atoms.cell[:])
    assert positions.shape == (len(atoms), 3) and lattice.shape == (3, 3)
    all_positions, all_lattices = model.relax_arrays(atoms.numbers, atoms.positions, atoms.cell[:], layers=True)
    assert all_positions.shape == (model.num_layers, len(atoms), 3)
    assert np.abs(all_positions[-1] - positions).max() < 1e-9
    steps = model.relax(atoms, layers=True)
    assert len(steps) == model.num_layers
    assert [s.info["e3relax_layer"] for s in steps] == list(range(1, model.num_layers + 1))
    handle = model._c_model.value
    fixed = model.relax(atoms, fixed_cell=True)
    assert np.array_equal(fixed.cell[:], atoms.cell[:])
    assert not np.allclose(fixed.positions, atoms.positions)
    fixed_layers, fixed_cells = model.relax_arrays(
        atoms.numbers, atoms.positions, atoms.cell[:], fixed_cell=True, layers=True
    )
    assert np.abs(fixed_layers[-1] - fixed.positions).max() < 1e-9
    assert all(np.array_equal(cell, atoms.cell[:]) for cell in fixed_cells)
    # Fixed-cell and variable-cell calls share one handle: one copy of the
    # weights; the variable-cell answer is unchanged by the fixed-cell call.
    assert model._c_model.value == handle
    again, _ = model.relax_arrays(atoms.numbers, atoms.positions, atoms.cell[:])
    assert np.array_equal(again, positions)


def test_bad_inputs_raise_with_the_library_message(model):
    molecule = ase.Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    with pytest.raises(e3relax.InvalidStructureError, match="not periodic"):
        model.relax(molecule)
    crowded = ase.build.bulk("Cu", "fcc", a=3.6)
    crowded.positions[0] = crowded.positions[0] + 0.0
    crowded = crowded.repeat((2, 1, 1))
    crowded.positions[1] = crowded.positions[0] + [0.1, 0, 0]
    with pytest.raises(e3relax.InvalidStructureError, match="apart"):
        model.relax(crowded)
    with pytest.raises(e3relax.InvalidArgumentError, match="ase.Atoms or a pymatgen Structure"):
        model.relax("Si")
    with pytest.raises(e3relax.InvalidArgumentError, match="shape"):
        model.relax_arrays([14, 14], np.zeros((3, 3)), np.eye(3) * 5)
    with pytest.raises(e3relax.ModelError, match="not a model directory"):
        e3relax.Model("/nonexistent/model")
    with pytest.raises(e3relax.InvalidArgumentError, match="threads must be in 1..=1024"):
        e3relax.set_num_threads(100000)
    e3relax.set_num_threads(1)
    assert e3relax.cuda_device_count() >= 0
    assert e3relax.version() == e3relax.__version__
    assert e3relax.torch_version() == "2.11.0"


def test_training_reports_rounds_and_stops_when_asked(tmp_path):
    data = REPOSITORY / "tests/fixtures/pairs/bulk-small"
    config = {
        "data": [str(data)],
        "output": str(tmp_path / "run"),
        "max_epochs": 3,
        "batch_size": 8,
        "validation_fraction": 0.25,
        "model": {"hidden_channels": 8, "num_layers": 1, "num_rbf": 4, "rbf_cutoff": 30.0,
                  "envelope_exponent": 5, "num_elements": 118, "graph_radius": 5.0, "max_neighbors": 16},
    }
    rounds = []

    def stop_after_first(event):
        if event["event"] == "round":
            rounds.append(event)
        return len(rounds) >= 1

    done = e3relax.train(config, progress=stop_after_first)
    assert len(rounds) == 1 and done["stopped_by_caller"] and done["epochs"] == 1
    done = e3relax.train(config, resume=True)
    assert done["epochs"] == 3 and not done["stopped_by_caller"]
    trained = e3relax.Model(tmp_path / "run/best")
    assert trained.num_layers == 1

    def fail(event):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        e3relax.train(dict(config, output=str(tmp_path / "failed")), progress=fail)
    with pytest.raises(e3relax.InvalidArgumentError):
        e3relax.train("{")


def test_frozen_atoms_ase_constraints(model):
    from ase.constraints import FixAtoms, FixCartesian, FixBondLength

    atoms = crystals()[1]
    atoms.set_constraint([FixAtoms(indices=[0, 2]), FixCartesian(4, mask=(False, False, True))])
    # Fixed cell: frozen coordinates come back bit for bit.
    fixed = model.relax(atoms, fixed_cell=True)
    assert np.array_equal(fixed.positions[[0, 2]], atoms.positions[[0, 2]])
    assert fixed.positions[4, 2] == atoms.positions[4, 2]
    assert np.abs(fixed.positions[1] - atoms.positions[1]).max() > 1e-4
    assert len(fixed.constraints) == 2
    free = model.relax(crystals()[1], fixed_cell=True)
    assert np.abs(free.positions[0] - atoms.positions[0]).max() > 1e-4, "the model moves atom 0 when free"
    # Variable cell: frozen atoms keep their fractional coordinates, and the
    # returned Atoms is consistent (ASE did not re-apply FixAtoms against
    # the old cell).
    relaxed = model.relax(atoms)
    assert not np.allclose(relaxed.cell[:], atoms.cell[:])
    before = atoms.get_scaled_positions(wrap=False)
    after = relaxed.get_scaled_positions(wrap=False)
    assert np.abs(after[[0, 2]] - before[[0, 2]]).max() < 1e-12
    # Same through the arrays API.
    mask = np.ones((len(atoms), 3), bool)
    mask[[0, 2]] = False
    mask[4, 2] = False
    positions, _ = model.relax_arrays(atoms.numbers, atoms.positions, atoms.cell[:], fixed_cell=True,
                                      move_mask=mask)
    assert np.array_equal(positions, fixed.positions)
    # A constraint e3relax cannot honour is refused, never dropped.
    other = crystals()[1]
    other.set_constraint(FixBondLength(0, 1))
    with pytest.raises(e3relax.InvalidArgumentError, match="FixBondLength"):
        model.relax(other)
    with pytest.raises(e3relax.InvalidArgumentError, match="layers"):
        model.relax(atoms, layers=True)


def test_frozen_atoms_pymatgen_selective_dynamics(model):
    pymatgen = pytest.importorskip("pymatgen.io.ase")
    atoms = crystals()[2]
    structure = pymatgen.AseAtomsAdaptor().get_structure(atoms)
    flags = [[True] * 3 for _ in range(len(structure))]
    flags[0] = [False] * 3
    structure.add_site_property("selective_dynamics", flags)
    relaxed = model.relax(structure, fixed_cell=True)
    assert np.array_equal(relaxed.cart_coords[0], structure.cart_coords[0])
    assert relaxed.site_properties["selective_dynamics"][0] == [False] * 3
    moved = model.relax(structure)
    assert np.abs(moved.frac_coords[0] - structure.frac_coords[0]).max() < 1e-12


def test_progress_of_a_batch():
    inputs = crystals() * 3
    with e3relax.Model(batch_size=4) as small_batches:
        calls = []
        small_batches.relax(inputs, progress=lambda done, total: calls.append((done, total)))
        assert calls == [(4, 12), (8, 12), (12, 12)]

        def interrupt(done, total):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            small_batches.relax(inputs, progress=interrupt)
        # The callback is gone afterwards, and the model still works.
        assert len(small_batches.relax(inputs)) == 12
        small_batches.relax(inputs, progress=True)
        with pytest.raises(e3relax.InvalidArgumentError, match="progress"):
            small_batches.relax(inputs, progress="yes")


# Issue 23 (reliability, second round).


def run_python(code, timeout=300):
    """Runs ``code`` in a new interpreter with this package (a process of
    its own: forks, signals and crashes stay there)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


def test_atomic_numbers_are_never_coerced(model):
    atoms = crystals()[1]
    for bad, needle in [(14.7, "14.7 is not an integer"), (14.5, "14.5 is not an integer"),
                        (2**32 + 14, "4294967310 is not an element"), (0, "0 is not an element"),
                        (119, "119 is not an element"), (float("nan"), "nan is not an integer")]:
        numbers = np.array(atoms.numbers, dtype=object)
        numbers[3] = bad
        with pytest.raises(e3relax.InvalidStructureError, match=f"atom 4 \\(index 3\\): the atomic number {needle}"):
            model.relax_arrays(numbers, atoms.positions, atoms.cell[:])
        with pytest.raises(e3relax.InvalidStructureError, match="atom 4 \\(index 3\\)"):
            model.relax_arrays(numbers.astype(float), atoms.positions, atoms.cell[:])
    # Integral floats are the same numbers.
    positions, _ = model.relax_arrays(atoms.numbers.astype(float), atoms.positions, atoms.cell[:])
    assert np.array_equal(positions, model.relax_arrays(atoms.numbers, atoms.positions, atoms.cell[:])[0])
    # In a batch, the structure is named too.
    wrapped = atoms.copy()
    wrapped.numbers[2] = 2**32 + 14 if wrapped.numbers.dtype == np.int64 else 200
    with pytest.raises(e3relax.InvalidStructureError, match="structure 1: atom 3 \\(index 2\\)"):
        model.relax([crystals()[0], wrapped])


def test_pymatgen_dummy_species_is_an_e3relax_error(model):
    from pymatgen.core import DummySpecies, Lattice, Structure

    structure = Structure(Lattice.cubic(5.4), ["Si", DummySpecies("X")], [[0, 0, 0], [0.25, 0.25, 0.25]])
    with pytest.raises(e3relax.InvalidStructureError, match="site 2 \\(index 1\\) is X0\\+ \\(DummySpecies\\)"):
        model.relax(structure)


def test_partial_periodicity_needs_a_fixed_cell(model):
    slab = ase.build.fcc111("Cu", size=(2, 2, 3), vacuum=7.0, a=3.7)
    assert list(slab.pbc) == [True, True, False]
    with pytest.raises(e3relax.InvalidStructureError, match="periodic along some axes only.*fixed_cell=True"):
        model.relax(slab)
    relaxed = model.relax(slab, fixed_cell=True)
    assert np.abs(relaxed.cell[:] - slab.cell[:]).max() < 1e-9 and list(relaxed.pbc) == [True, True, False]
    pymatgen = pytest.importorskip("pymatgen.io.ase")
    structure = pymatgen.AseAtomsAdaptor().get_structure(slab)
    if tuple(structure.lattice.pbc) == (True, True, False):
        with pytest.raises(e3relax.InvalidStructureError, match="periodic along some axes only"):
            model.relax(structure)
        assert tuple(model.relax(structure, fixed_cell=True).lattice.pbc) == (True, True, False)


def test_pymatgen_labels_charge_and_immutable_type_kept(model):
    from pymatgen.core import IStructure, Structure

    pymatgen = pytest.importorskip("pymatgen.io.ase")
    structure = pymatgen.AseAtomsAdaptor().get_structure(crystals()[0])
    labeled = Structure(structure.lattice, structure.species, structure.frac_coords,
                        labels=[f"site-{i}" for i in range(len(structure))], charge=1.0)
    relaxed = model.relax(labeled)
    assert relaxed.labels == labeled.labels
    assert relaxed.charge == 1.0
    frozen = IStructure.from_sites(labeled)
    out = model.relax(frozen)
    assert type(out) is IStructure and out.labels == labeled.labels
    layers = model.relax(frozen, layers=True)
    assert type(layers[-1]) is IStructure and layers[-1].properties["e3relax_layer"] == model.num_layers


def test_every_status_has_its_class_and_options_are_named():
    from e3relax import _capi

    for status in range(1, 9):
        with pytest.raises(e3relax.E3RelaxError) as caught:
            _capi.check(status)
        assert caught.value.status == status
        assert type(caught.value) is not e3relax.E3RelaxError and type(caught.value).status == status
    assert issubclass(e3relax.FileError, OSError)
    with pytest.raises(e3relax.InvalidArgumentError, match="batch_size") as caught:
        e3relax.Model(batch_size=-1)
    assert caught.value.status == 1
    with pytest.raises(e3relax.InvalidArgumentError, match="batch_size"):
        e3relax.Model(batch_size=2.5)
    with pytest.raises(e3relax.InvalidArgumentError, match="symmetry_tolerance"):
        e3relax.Model(symmetry_tolerance="tight")
    with pytest.raises(e3relax.InvalidArgumentError, match="symmetry_tolerance"):
        e3relax.Model(symmetry_tolerance=float("nan"))


def test_model_paths_nul_and_bytes(tmp_path):
    default = Path(e3relax.__file__).parent / "models/default"
    # A NUL would make C read only the part before it: here, the real model.
    with pytest.raises(e3relax.InvalidArgumentError, match="NUL"):
        e3relax.Model(str(default) + "\0/nonexistent")
    with pytest.raises(e3relax.InvalidArgumentError, match="NUL"):
        e3relax.Model(os.fsencode(default) + b"\0x")
    # bytes are a file name, not the text "b'...'".
    with e3relax.Model(os.fsencode(default)) as loaded:
        assert loaded.path == str(default)
        assert loaded.num_layers >= 1
    with pytest.raises(e3relax.ModelError, match="not a model directory") as caught:
        e3relax.Model(os.fsencode(tmp_path / "missing"))
    assert str(tmp_path / "missing") in str(caught.value) and "b'" not in str(caught.value)
    with pytest.raises(e3relax.InvalidArgumentError, match="path must be"):
        e3relax.Model(42)


def test_close_while_another_thread_relaxes():
    result = run_python(
        """
import threading, ase.build, e3relax, numpy as np
model = e3relax.Model(batch_size=1)
inputs = [ase.build.bulk("Si", "diamond", a=5.5, cubic=True).repeat((2, 1, 1)) for _ in range(12)]
for k, a in enumerate(inputs):
    a.rattle(0.05, seed=k)
expected = [r.positions for r in model.relax(inputs)]
started, outcome = threading.Event(), []
def relax():
    def progress(done, total):
        started.set()
    try:
        outcome.append(model.relax(inputs, progress=progress))
    except BaseException as error:
        outcome.append(error)
worker = threading.Thread(target=relax)
worker.start()
started.wait()
model.close()  # must wait for the call in flight
worker.join()
assert all(np.array_equal(r.positions, e) for r, e in zip(outcome[0], expected)), outcome
try:
    model.relax(inputs[0])
except e3relax.InvalidArgumentError as error:
    assert "closed" in str(error)
    print("OK")
"""
    )
    assert result.returncode == 0 and "OK" in result.stdout, (result.returncode, result.stderr[-2000:])


def test_fork_after_a_prediction():
    result = run_python(
        """
import os, time, ase.build, e3relax, numpy as np
e3relax.set_num_threads(1)
model = e3relax.Model()
atoms = ase.build.bulk("Si", "diamond", a=5.5, cubic=True)
atoms.rattle(0.05, seed=1)
expected = model.relax(atoms).positions
pid = os.fork()
if pid == 0:
    ok = np.abs(model.relax(atoms).positions - expected).max() < 1e-9
    os._exit(0 if ok else 3)
deadline = time.time() + 120
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child exit", os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.1)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("child hung")
# The parent still works.
assert np.abs(model.relax(atoms).positions - expected).max() < 1e-9
""",
    )
    assert result.returncode == 0 and "child exit 0" in result.stdout, (result.stdout, result.stderr[-2000:])


def test_second_interop_thread_change_is_a_clear_error():
    result = run_python(
        """
import e3relax
# Counts no machine has as its default: the first one is a real change.
e3relax.set_num_threads(1, 37)
try:
    e3relax.set_num_threads(1, 41)
except e3relax.InvalidArgumentError as error:
    print("refused:", error)
e3relax.set_num_threads(1)  # the intra-op count can still change
"""
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: libtorch's inter-op threads can be set only once per process" in result.stdout, result.stdout
    assert "panicked" not in result.stderr and "internal error" not in result.stdout, result.stderr[-2000:]


def small_training_config(data, output, **changes):
    config = {
        "data": [str(data)],
        "output": str(output),
        "max_epochs": 3,
        "batch_size": 8,
        "validation_fraction": 0.25,
        "model": {"hidden_channels": 8, "num_layers": 1, "num_rbf": 4, "rbf_cutoff": 30.0,
                  "envelope_exponent": 5, "num_elements": 118, "graph_radius": 5.0, "max_neighbors": 16},
    }
    config.update(changes)
    return config


def test_ctrl_c_during_training_stops_at_a_checkpoint_and_raises(tmp_path):
    data = REPOSITORY / "tests/fixtures/pairs/bulk-small"
    # Only Ctrl-C (or the minute) may end this run: no early stop, which
    # on the tiny fixture can end it before the signal arrives.
    config = small_training_config(data, tmp_path / "run", max_epochs=100000, max_minutes=1.0,
                                   early_stop_patience=100000)
    result = run_python(
        f"""
import json, os, signal, threading, e3relax
# As in an interactive Python, whatever the test runner inherited (a
# shell's background job starts with SIGINT ignored, and Python then
# leaves it ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
rounds = []
sent = []
def interrupt():
    sent.append(len(rounds))
    os.kill(os.getpid(), signal.SIGINT)
def progress(event):
    if event["event"] == "round":
        rounds.append(event["epoch"])
        if len(rounds) == 1:
            # Ctrl-C arrives while the library trains (not inside this function).
            threading.Timer(0.05, interrupt).start()
try:
    e3relax.train({json.dumps(config)!r}, progress=progress)
    print("returned normally")
except KeyboardInterrupt:
    print("sent after", sent[0], "rounds")
    print("KeyboardInterrupt after", rounds)
"""
    )
    assert "KeyboardInterrupt after" in result.stdout, (result.stdout, result.stderr[-2000:])
    assert "Exception ignored" not in result.stderr, result.stderr[-2000:]
    # Stopped at the first round after Ctrl-C, whose checkpoint is the one
    # on disk (the run resumes from it).
    epochs = eval(result.stdout.split("KeyboardInterrupt after", 1)[1])
    sent_after = int(result.stdout.split("sent after", 1)[1].split()[0])
    # The round in progress when the signal came is finished, and no more
    # (one more at most, when the signal fell between two rounds).
    assert 1 <= len(epochs) - sent_after <= 2, (sent_after, epochs)
    state = json.loads((tmp_path / "run/checkpoint/state.json").read_text())
    assert [r["epoch"] for r in state["rounds"]][-1] == epochs[-1], (state["rounds"], epochs)
    done = e3relax.train(dict(config, max_epochs=state["epoch"] + 1, max_minutes=None), resume=True)
    assert done["epochs"] == state["epoch"] + 1


def test_training_with_missing_data_leaves_no_run_folder(tmp_path):
    config = small_training_config(tmp_path / "no-such-data", tmp_path / "run")
    with pytest.raises(e3relax.E3RelaxError, match="no-such-data"):
        e3relax.train(config)
    assert not (tmp_path / "run").exists()


def test_training_never_replaces_an_existing_run_silently(tmp_path):
    config = small_training_config(REPOSITORY / "tests/fixtures/pairs/bulk-small", tmp_path / "run", max_epochs=1)
    e3relax.train(config)
    metrics = (tmp_path / "run/metrics.csv").read_bytes()
    with pytest.raises(e3relax.InvalidArgumentError, match="holds a training run already"):
        e3relax.train(dict(config, seed=5))
    assert (tmp_path / "run/metrics.csv").read_bytes() == metrics
    done = e3relax.train(dict(config, seed=5), overwrite=True)
    assert done["epochs"] == 1
    assert (tmp_path / "run/metrics.csv").read_bytes() != metrics


def test_a_failed_checkpoint_write_is_a_file_error(tmp_path):
    # A file size limit stands in for a full disk: the checkpoint's tensor
    # files (34 kB) cannot be written, the run's config (2 kB) can.
    config = small_training_config(REPOSITORY / "tests/fixtures/pairs/bulk-small", tmp_path / "run", max_epochs=1)
    result = run_python(
        f"""
import resource, signal, e3relax
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
try:
    e3relax.train({json.dumps(config)!r})
except e3relax.E3RelaxError as error:
    print(type(error).__name__, error.status, error)
"""
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("FileError 4 "), result.stdout
    assert "File too large" in result.stdout and "model.safetensors: " in result.stdout, result.stdout
    assert ".tmp" not in result.stdout, result.stdout
    assert "IoError" not in result.stdout and "libtorch" not in result.stdout, result.stdout
    leftovers = [p.name for p in (tmp_path / "run").rglob("*.tmp")]
    assert leftovers == [], leftovers


def test_ensemble_uncertainty(tmp_path):
    import shutil

    ensemble = tmp_path / "ensemble"
    shutil.copytree(REPOSITORY / "models/default", ensemble, ignore=shutil.ignore_patterns("ensemble.json", "members"))
    # A second member: the same weights, so the spread must be zero; a
    # third one trained differently is not needed to test the plumbing.
    shutil.copytree(REPOSITORY / "models/default", ensemble / "members/copy", ignore=shutil.ignore_patterns("ensemble.json", "members"))
    (ensemble / "ensemble.json").write_text('{"members": ["members/copy"]}')
    atoms = crystals()[0]
    with e3relax.Model(ensemble, uncertainty=True) as model, e3relax.Model() as single:
        relaxed = model.relax(atoms)
        assert relaxed.arrays["uncertainty"].shape == (len(atoms),)
        assert np.abs(relaxed.arrays["uncertainty"]).max() < 1e-5
        assert relaxed.info["cell_uncertainty"] < 1e-6 and relaxed.info["volume_uncertainty"] < 1e-3
        assert np.abs(relaxed.positions - single.relax(atoms).positions).max() < 1e-5
        pymatgen = pytest.importorskip("pymatgen.io.ase")
        structure = pymatgen.AseAtomsAdaptor().get_structure(atoms)
        out = model.relax(structure)
        assert len(out.site_properties["uncertainty"]) == len(structure)
        assert "cell_uncertainty" in out.properties
    single = tmp_path / "single"
    shutil.copytree(REPOSITORY / "models/default", single, ignore=shutil.ignore_patterns("ensemble.json", "members"))
    with pytest.raises(e3relax.ModelError, match="ensemble.json"):
        e3relax.Model(single, uncertainty=True)
    # The shipped model is an ensemble of four; frozen atoms stay frozen.
    with e3relax.Model(uncertainty=True) as shipped:
        out = shipped.relax(atoms)
        spread = out.arrays["uncertainty"]
        assert spread.shape == (len(atoms),) and (spread > 0).all()
        # The crystal's coordinate uncertainty: atoms and cell in quadrature.
        expected = np.hypot(spread.mean(), out.info["cell_uncertainty"] * out.get_volume() ** (1 / 3))
        assert abs(out.info["coordinate_uncertainty"] - expected) < 1e-12
        from ase.constraints import FixAtoms

        held = atoms.copy()
        held.set_constraint(FixAtoms(indices=[0]))
        kept = shipped.relax(held, fixed_cell=True)
        assert np.array_equal(kept.positions[0], held.positions[0])
    with pytest.raises(e3relax.InvalidArgumentError, match="trust"):
        e3relax.Model(trust=(0.1,))
    with pytest.raises(e3relax.InvalidArgumentError, match="surface_trust"):
        e3relax.Model(surface_trust="much")
    with pytest.raises(e3relax.InvalidArgumentError, match="surface_trust"):
        e3relax.Model(surface_trust=-1)
    # The line search puts the prediction on the straight path from the
    # input to the raw prediction: the cell's strain is a fraction of the
    # raw strain.
    with pytest.raises(e3relax.InvalidArgumentError, match="line_search"):
        e3relax.Model(line_search="yes")
    with e3relax.Model(line_search=True) as searched, e3relax.Model() as raw:
        a, b = searched.relax(atoms), raw.relax(atoms)
        start = np.array(atoms.cell)
        strain_a = np.linalg.solve(start, np.array(a.cell)) - np.eye(3)
        strain_b = np.linalg.solve(start, np.array(b.cell)) - np.eye(3)
        step = float((strain_a * strain_b).sum() / (strain_b * strain_b).sum())
        assert -1e-9 <= step <= 1 + 1e-9
        assert np.abs(strain_a - step * strain_b).max() < 1e-6
    with e3relax.Model(trust=(0.087, 0.167), surface_trust=False) as trusted, \
            e3relax.Model(surface_trust=False) as raw:
        a, b = trusted.relax(atoms), raw.relax(atoms)
        change = lambda s: abs(s.get_volume() / atoms.get_volume() - 1)  # noqa: E731
        assert change(a) < change(b)
