"""The Python package against the CLI, with ASE and pymatgen inputs, bad
inputs and batches (run by scripts/test.sh)."""

import os
import subprocess
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
    fixed = model.relax(atoms, fixed_cell=True)
    assert np.array_equal(fixed.cell[:], atoms.cell[:])
    assert not np.allclose(fixed.positions, atoms.positions)


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
