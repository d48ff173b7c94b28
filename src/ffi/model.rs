//! Loading a model and predicting through the C ABI.

use std::ffi::c_char;
use std::path::Path;
use std::sync::Mutex;

use serde::Deserialize;

use super::{
    e3relax_status_t, guard, null, read_str, E3RELAX_AXES_CARTESIAN, E3RELAX_AXES_LATTICE,
};
use crate::error::Error;
use crate::frozen::AxisFrame;
use crate::linalg::{self, Mat3};
use crate::relax::{RelaxOptions, Relaxation, Relaxer};
use crate::runtime::DeviceRequest;
use crate::structure::{Structure, ValidationOptions};
use crate::units::{Coordinates, LengthUnit};

/// Options of `e3relax_load` (a JSON object; every key optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LoadOptions {
    /// "cpu", "cuda", "cuda:K" or "auto".
    device: DeviceRequest,
    /// "angstrom" or "bohr", for positions and lattices in and out.
    length_unit: LengthUnit,
    /// "cartesian" or "fractional" positions, in and out.
    coordinates: Coordinates,
    /// Keep the lattice fixed; only atoms move.
    fixed_cell: bool,
    /// Structures per forward pass in batch calls.
    batch_size: usize,
    /// Tolerance (Å) of the symmetry search whose operations the
    /// prediction keeps; null: the network's raw output.
    symmetry_tolerance: Option<f64>,
    /// Load the model directory's ensemble (`ensemble.json`): predictions
    /// are the members' mean, `e3relax_predict_uncertainty` returns their
    /// spread.
    uncertainty: bool,
    /// The trust policy's scales `[strain, displacement (Å)]`, or null
    /// (the default) for the raw prediction.
    trust: Option<[f64; 2]>,
    /// The surface trust's factor `K` on the model's `surface_trust.json`
    /// scales; null: the raw prediction; absent: the model's default.
    #[serde(deserialize_with = "present")]
    surface_trust: Option<Option<f64>>,
    /// The energy-surface line search along each predicted move.
    line_search: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: DeviceRequest::Cpu,
            length_unit: LengthUnit::Angstrom,
            coordinates: Coordinates::Cartesian,
            fixed_cell: false,
            batch_size: 16,
            symmetry_tolerance: Some(crate::relax::DEFAULT_SYMMETRY_TOLERANCE),
            uncertainty: false,
            trust: None,
            surface_trust: None,
            line_search: false,
        }
    }
}

/// A loaded model (opaque).
///
/// Lifetime: a handle is valid from a successful `e3relax_load` until
/// `e3relax_free` is called on it, and not after (using or freeing it
/// again is undefined behaviour, as for `free`). It owns its copy of the
/// weights: the model directory may be deleted once it is loaded. Arrays
/// passed to a call are read or written during that call only; the
/// library keeps no pointer to them.
///
/// Threads: one handle may be used from several threads (calls on it are
/// serialised); separate handles run in parallel. `e3relax_free` must not
/// race with another call on the same handle. Thread counts are
/// process-wide (`e3relax_set_num_threads`).
pub struct e3relax_model_t {
    relaxer: Mutex<Relaxer>,
    /// The model's validation limits, kept outside the lock.
    validation: ValidationOptions,
    unit: LengthUnit,
    fractional: bool,
    options: RelaxOptions,
    /// Where the model was loaded from (its `surface_trust.json`).
    dir: std::path::PathBuf,
    /// `e3relax_set_predict_progress`: the callback and its user data (as
    /// an address: the library only hands it back).
    progress: Mutex<Option<(e3relax_predict_progress_t, usize)>>,
}

/// Called by the batched prediction after each batch: `done` of `total`
/// structures relaxed so far in this call, and the `user_data` given to
/// `e3relax_set_predict_progress`. It runs on the calling thread, between
/// batches, and must not call back into the same handle.
pub type e3relax_predict_progress_t =
    Option<unsafe extern "C" fn(done: i32, total: i32, user_data: *mut std::ffi::c_void)>;

/// Sets (or, with a NULL callback, removes) the progress callback of the
/// batched predictions made with this handle (`e3relax_predict_batch`,
/// `e3relax_predict_batch_frozen`, `e3relax_predict_with`): a long batch
/// can drive a progress bar.
/// The handle keeps `user_data` until the callback is replaced or the
/// handle is freed; the library never dereferences it.
#[no_mangle]
pub unsafe extern "C" fn e3relax_set_predict_progress(
    model: *mut e3relax_model_t,
    callback: e3relax_predict_progress_t,
    user_data: *mut std::ffi::c_void,
) -> e3relax_status_t {
    guard(|| {
        let handle = model.as_ref().ok_or_else(|| null("model"))?;
        let mut progress = handle.progress.lock().unwrap_or_else(|e| e.into_inner());
        *progress = callback.map(|c| (Some(c), user_data as usize));
        Ok(())
    })
}

/// Reads `options_json`; an error names the option at fault (`batch_size:
/// invalid value: integer `-1`, expected usize`), not a column.
/// An invalid option, as the caller's `options_json` names it.
fn in_options(error: Error) -> Error {
    match error {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("options_json: {m}")),
        other => other,
    }
}

fn parse_load_options(text: &str) -> Result<LoadOptions, Error> {
    let invalid = |e: String| Error::InvalidArgument(format!("options_json: {e}"));
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(invalid(format!("expected a JSON object, got {value}")));
    };
    // Each option alone first, so that its error is reported with its name.
    for (key, field) in &fields {
        let single =
            serde_json::Value::Object([(key.clone(), field.clone())].into_iter().collect());
        serde_json::from_value::<LoadOptions>(single).map_err(|e| {
            if e.to_string().starts_with("unknown field") {
                invalid(e.to_string())
            } else {
                invalid(format!("{key}: {e}"))
            }
        })?;
    }
    serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| invalid(e.to_string()))
}

/// Loads a model directory (`config.json` + `model.safetensors`); `path`
/// NULL or empty loads the shipped default model (`$E3RELAX_MODEL`, else
/// the installed `share/e3relax/models/default` beside the library).
/// `options_json` may be NULL or e.g. `{"device": "cpu", "length_unit":
/// "bohr", "coordinates": "fractional", "fixed_cell": false, "batch_size":
/// 16, "symmetry_tolerance": 0.001, "uncertainty": false, "trust": null,
/// "surface_trust": 1, "line_search": false}`.
/// `symmetry_tolerance` (Å, default 0.001; null for the network's raw
/// output) is the tolerance of the search for the input's space group,
/// which the prediction keeps. `uncertainty: true` loads the directory's
/// ensemble (`ensemble.json`): predictions are its members' mean, and
/// `e3relax_predict_uncertainty` also returns their spread. `trust:
/// [strain, displacement]` shrinks each predicted change towards the input
/// where it is no larger than these scales (the trust policy).
/// `surface_trust: K` shrinks each predicted change where the model's
/// surface readers (the `reader`s its `surface_trust.json` names, their
/// readings averaged, else its own energy-surface heads) find the input
/// at rest (forces and virial no larger than K times the scales in that
/// file); without the key a model
/// whose `surface_trust.json` names a `default` K uses it, and `null` asks
/// for the raw prediction. `line_search: true` goes along each predicted
/// move only as far as the readers find the energy falling.
/// On success `*model` is the new handle (free it with
/// `e3relax_free`); on failure it is set to NULL.
///
/// Memory: the first load tunes glibc's malloc for the process (mmap
/// threshold 32 MiB, trim threshold 1 GiB, top pad 256 MiB), so that the
/// per-edge tensors of a prediction reuse freed heap memory instead of
/// faulting fresh pages in (half of message passing at F = 512); freed
/// memory then stays with the process for later allocations. Set
/// `E3RELAX_TUNE_MALLOC=0` to keep glibc's defaults.
#[no_mangle]
pub unsafe extern "C" fn e3relax_load(
    path: *const c_char,
    options_json: *const c_char,
    model: *mut *mut e3relax_model_t,
) -> e3relax_status_t {
    guard(|| {
        if model.is_null() {
            return Err(null("model"));
        }
        *model = std::ptr::null_mut();
        let path = if path.is_null() {
            ""
        } else {
            read_str(path, "path")?
        };
        let options: LoadOptions = if options_json.is_null() {
            LoadOptions::default()
        } else {
            let text = read_str(options_json, "options_json")?;
            if text.trim().is_empty() {
                LoadOptions::default()
            } else {
                parse_load_options(text)?
            }
        };
        let unit = options.length_unit;
        let fractional = options.coordinates == Coordinates::Fractional;
        let mut relax_options = RelaxOptions {
            fixed_cell: options.fixed_cell,
            batch_size: options.batch_size,
            keep_trajectory: false,
            symmetry_tolerance: options.symmetry_tolerance,
            spread_trust: None,
            surface_trust: None,
            line_search: options.line_search,
            trust: options
                .trust
                .map(|[strain, displacement]| crate::trust::Trust {
                    strain,
                    displacement,
                }),
        };
        relax_options.validate().map_err(in_options)?;
        crate::runtime::apply_default_threads()?;
        crate::runtime::tune_allocator();
        let dir = if path.trim().is_empty() {
            crate::relax::default_model_dir()?
        } else {
            Path::new(path).to_path_buf()
        };
        if let Some(Some(k)) = options.surface_trust {
            if !(k.is_finite() && k > 0.0) {
                return Err(in_options(Error::InvalidArgument(format!(
                    "surface_trust must be a finite number above 0 or null, got {k}"
                ))));
            }
        }
        let relaxer = if options.uncertainty {
            Relaxer::load_ensemble(&dir, options.device)?
        } else {
            Relaxer::load(&dir, options.device)?
        };
        relax_options.surface_trust = relaxer.chosen_surface_trust(&dir, options.surface_trust)?;
        if options.line_search {
            relaxer.check_line_search().map_err(in_options)?;
        }
        let validation = ValidationOptions {
            max_atomic_number: relaxer.model().config().max_atomic_number(),
            ..Default::default()
        };
        let handle = Box::new(e3relax_model_t {
            relaxer: Mutex::new(relaxer),
            validation,
            unit,
            fractional,
            options: relax_options,
            dir,
            progress: Mutex::new(None),
        });
        *model = Box::into_raw(handle);
        Ok(())
    })
}

/// Frees a model handle; the handle is invalid afterwards (see
/// `e3relax_model_t`). `e3relax_free(NULL)` does nothing.
#[no_mangle]
pub unsafe extern "C" fn e3relax_free(model: *mut e3relax_model_t) -> e3relax_status_t {
    guard(|| {
        if !model.is_null() {
            drop(Box::from_raw(model));
        }
        Ok(())
    })
}

/// Builds a structure from caller arrays (already checked for NULL).
unsafe fn structure_from(
    handle: &e3relax_model_t,
    natoms: usize,
    numbers: *const i32,
    positions: *const f64,
    lattice: *const f64,
    label: &str,
) -> Result<Structure, Error> {
    let scale = handle.unit.in_angstrom();
    let raw_lattice = std::slice::from_raw_parts(lattice, 9);
    let lattice: Mat3 = [
        [
            raw_lattice[0] * scale,
            raw_lattice[1] * scale,
            raw_lattice[2] * scale,
        ],
        [
            raw_lattice[3] * scale,
            raw_lattice[4] * scale,
            raw_lattice[5] * scale,
        ],
        [
            raw_lattice[6] * scale,
            raw_lattice[7] * scale,
            raw_lattice[8] * scale,
        ],
    ];
    let raw_positions = std::slice::from_raw_parts(positions, 3 * natoms);
    let positions: Vec<[f64; 3]> = raw_positions
        .chunks(3)
        .map(|c| {
            if handle.fractional {
                linalg::vec_mat([c[0], c[1], c[2]], &lattice)
            } else {
                [c[0] * scale, c[1] * scale, c[2] * scale]
            }
        })
        .collect();
    let raw_numbers = std::slice::from_raw_parts(numbers, natoms);
    let mut z = Vec::with_capacity(natoms);
    for (i, &n) in raw_numbers.iter().enumerate() {
        if n <= 0 {
            return Err(Error::InvalidStructure(format!(
                "{label}atom {} has atomic number {n}",
                i + 1
            )));
        }
        z.push(n as u32);
    }
    let s = Structure::new_unchecked(lattice, positions, z);
    s.validate_with(&handle.validation).map_err(|e| match e {
        Error::InvalidStructure(m) => Error::InvalidStructure(format!("{label}{m}")),
        other => other,
    })?;
    Ok(s)
}

/// Writes a relaxed structure to caller arrays (NULL = not wanted).
unsafe fn write_out(
    handle: &e3relax_model_t,
    s: &Structure,
    out_positions: *mut f64,
    out_lattice: *mut f64,
) {
    let scale = 1.0 / handle.unit.in_angstrom();
    if !out_lattice.is_null() {
        let out = std::slice::from_raw_parts_mut(out_lattice, 9);
        for (k, v) in s.lattice.iter().flatten().enumerate() {
            out[k] = v * scale;
        }
    }
    if !out_positions.is_null() {
        let out = std::slice::from_raw_parts_mut(out_positions, 3 * s.natoms());
        let values: Vec<[f64; 3]> = if handle.fractional {
            s.fractional_positions()
        } else {
            s.positions.clone()
        };
        for (k, v) in values.iter().flatten().enumerate() {
            out[k] = if handle.fractional { *v } else { v * scale };
        }
    }
}

fn check_count(natoms: i32, name: &str) -> Result<usize, Error> {
    if natoms <= 0 {
        return Err(Error::InvalidArgument(format!(
            "{name} must be positive, got {natoms}"
        )));
    }
    Ok(natoms as usize)
}

/// Predicts the relaxed structure of one crystal.
///
/// `numbers[natoms]` atomic numbers; `positions[natoms][3]` (Cartesian, or
/// fractional with the `coordinates` option); `lattice[3][3]` with row i =
/// lattice vector i. Outputs use the same conventions; either may be NULL
/// when not wanted. Atoms keep their order and periodic images.
#[no_mangle]
pub unsafe extern "C" fn e3relax_predict(
    model: *const e3relax_model_t,
    natoms: i32,
    numbers: *const i32,
    positions: *const f64,
    lattice: *const f64,
    out_positions: *mut f64,
    out_lattice: *mut f64,
) -> e3relax_status_t {
    guard(|| {
        let (handle, relaxation) =
            relax_one(model, natoms, numbers, positions, lattice, None, false)?;
        write_out(handle, &relaxation.relaxed, out_positions, out_lattice);
        Ok(())
    })
}

/// Reads a caller's move mask (`natoms` x 3 flags, non-zero = may move)
/// into the structure; NULL leaves every atom free.
unsafe fn attach_mask(
    s: &mut Structure,
    move_mask: *const i32,
    mask_axes: i32,
) -> Result<(), Error> {
    if move_mask.is_null() {
        return Ok(());
    }
    let raw = std::slice::from_raw_parts(move_mask, 3 * s.natoms());
    s.selective_dynamics = Some(
        raw.chunks(3)
            .map(|c| [c[0] != 0, c[1] != 0, c[2] != 0])
            .collect(),
    );
    s.selective_dynamics_axes = axes_of(mask_axes)?;
    Ok(())
}

fn axes_of(mask_axes: i32) -> Result<AxisFrame, Error> {
    match mask_axes {
        E3RELAX_AXES_CARTESIAN => Ok(AxisFrame::Cartesian),
        E3RELAX_AXES_LATTICE => Ok(AxisFrame::Lattice),
        other => Err(Error::InvalidArgument(format!(
            "mask_axes must be E3RELAX_AXES_CARTESIAN (0) or E3RELAX_AXES_LATTICE (1), got {other}"
        ))),
    }
}

/// `e3relax_predict` with frozen coordinates: `move_mask[natoms][3]`, 1
/// where atom i may move along axis k and 0 where it is frozen (NULL: all
/// free); `mask_axes` says what the axes are (`E3RELAX_AXES_CARTESIAN` or
/// `E3RELAX_AXES_LATTICE`). With `fixed_cell`, frozen coordinates come back
/// bit for bit; with a variable cell, a frozen atom keeps its fractional
/// coordinates (it follows the cell's deformation, as in a DFT code's
/// variable-cell relaxation). Free atoms keep their predicted positions
/// relative to the frozen ones; symmetrisation uses only operations that
/// map frozen atoms onto atoms frozen the same way.
#[no_mangle]
pub unsafe extern "C" fn e3relax_predict_frozen(
    model: *const e3relax_model_t,
    natoms: i32,
    numbers: *const i32,
    positions: *const f64,
    lattice: *const f64,
    move_mask: *const i32,
    mask_axes: i32,
    out_positions: *mut f64,
    out_lattice: *mut f64,
) -> e3relax_status_t {
    guard(|| {
        let mask = Some((move_mask, mask_axes));
        let (handle, relaxation) =
            relax_one(model, natoms, numbers, positions, lattice, mask, false)?;
        write_out(handle, &relaxation.relaxed, out_positions, out_lattice);
        Ok(())
    })
}

/// The checks and the prediction shared by `e3relax_predict` and
/// `e3relax_predict_layers`: NULL arguments and the atom count refused, the
/// structure built and validated, relaxed with the handle's options (and
/// every layer's structure when `keep_trajectory`).
unsafe fn relax_one<'a>(
    model: *const e3relax_model_t,
    natoms: i32,
    numbers: *const i32,
    positions: *const f64,
    lattice: *const f64,
    mask: Option<(*const i32, i32)>,
    keep_trajectory: bool,
) -> Result<(&'a e3relax_model_t, Relaxation), Error> {
    let handle = model.as_ref().ok_or_else(|| null("model"))?;
    let n = check_count(natoms, "natoms")?;
    if numbers.is_null() {
        return Err(null("numbers"));
    }
    if positions.is_null() {
        return Err(null("positions"));
    }
    if lattice.is_null() {
        return Err(null("lattice"));
    }
    let mut s = structure_from(handle, n, numbers, positions, lattice, "")?;
    if let Some((move_mask, mask_axes)) = mask {
        attach_mask(&mut s, move_mask, mask_axes)?;
    }
    let relaxer = handle.relaxer.lock().unwrap_or_else(|e| e.into_inner());
    let options = RelaxOptions {
        keep_trajectory,
        ..handle.options
    };
    let relaxation = relaxer
        .relax_many(std::slice::from_ref(&s), &options)?
        .remove(0);
    Ok((handle, relaxation))
}

/// `e3relax_predict` with the ensemble's spread (the handle must be loaded
/// with `{"uncertainty": true}`): `out_atom_uncertainty[natoms]` per atom
/// (in the handle's length unit), `*out_cell_uncertainty` the spread of the
/// cell strain (dimensionless) and `*out_volume_uncertainty` of the volume
/// (length unit cubed). Any output may be NULL when not wanted.
/// `move_mask` and `mask_axes` as in `e3relax_predict_frozen` (NULL: all
/// atoms free): the mean honours frozen coordinates as a single prediction
/// does.
#[no_mangle]
pub unsafe extern "C" fn e3relax_predict_uncertainty(
    model: *const e3relax_model_t,
    natoms: i32,
    numbers: *const i32,
    positions: *const f64,
    lattice: *const f64,
    move_mask: *const i32,
    mask_axes: i32,
    out_positions: *mut f64,
    out_lattice: *mut f64,
    out_atom_uncertainty: *mut f64,
    out_cell_uncertainty: *mut f64,
    out_volume_uncertainty: *mut f64,
) -> e3relax_status_t {
    let refused = guard(|| {
        let handle = model.as_ref().ok_or_else(|| null("model"))?;
        let relaxer = handle.relaxer.lock().unwrap_or_else(|e| e.into_inner());
        if relaxer.ensemble_size() < 2 {
            return Err(Error::InvalidArgument(
                "this handle has no ensemble: load it with {\"uncertainty\": true} from a model directory with ensemble.json".into(),
            ));
        }
        Ok(())
    });
    if refused != e3relax_status_t::E3RELAX_SUCCESS {
        return refused;
    }
    // One structure through `e3relax_predict_with`: one place writes the
    // spreads.
    e3relax_predict_with(
        model,
        std::ptr::null(),
        1,
        &natoms,
        numbers,
        positions,
        lattice,
        move_mask,
        mask_axes,
        out_positions,
        out_lattice,
        out_atom_uncertainty,
        out_cell_uncertainty,
        out_volume_uncertainty,
    )
}

/// The number of layers of a model (the structures `e3relax_predict_layers`
/// returns), written to `layers`.
#[no_mangle]
pub unsafe extern "C" fn e3relax_num_layers(
    model: *const e3relax_model_t,
    layers: *mut i32,
) -> e3relax_status_t {
    guard(|| {
        let handle = model.as_ref().ok_or_else(|| null("model"))?;
        if layers.is_null() {
            return Err(null("layers"));
        }
        let relaxer = handle.relaxer.lock().unwrap_or_else(|e| e.into_inner());
        *layers = relaxer.model().config().num_layers as i32;
        Ok(())
    })
}

/// Like `e3relax_predict`, but returns the structure after every layer:
/// `out_positions[layers][natoms][3]` and `out_lattices[layers][3][3]`
/// (`layers` from `e3relax_num_layers`; the last is `e3relax_predict`'s
/// answer). Either output may be NULL when not wanted.
#[no_mangle]
pub unsafe extern "C" fn e3relax_predict_layers(
    model: *const e3relax_model_t,
    natoms: i32,
    numbers: *const i32,
    positions: *const f64,
    lattice: *const f64,
    out_positions: *mut f64,
    out_lattices: *mut f64,
) -> e3relax_status_t {
    guard(|| {
        let (handle, relaxation) =
            relax_one(model, natoms, numbers, positions, lattice, None, true)?;
        let n = relaxation.relaxed.natoms();
        let layers = relaxation.trajectory;
        for (t, layer) in layers.iter().enumerate() {
            let positions = if out_positions.is_null() {
                out_positions
            } else {
                out_positions.add(t * 3 * n)
            };
            let lattice = if out_lattices.is_null() {
                out_lattices
            } else {
                out_lattices.add(t * 9)
            };
            write_out(handle, layer, positions, lattice);
        }
        Ok(())
    })
}

/// Predicts many crystals of different sizes at once. `natoms[nstructures]`
/// are the atom counts; `numbers`, `positions` (and `out_positions`) are the
/// structures' arrays concatenated; `lattices[nstructures][3][3]` (and
/// `out_lattices`). Outputs may be NULL when not wanted.
#[no_mangle]
pub unsafe extern "C" fn e3relax_predict_batch(
    model: *const e3relax_model_t,
    nstructures: i32,
    natoms: *const i32,
    numbers: *const i32,
    positions: *const f64,
    lattices: *const f64,
    out_positions: *mut f64,
    out_lattices: *mut f64,
) -> e3relax_status_t {
    e3relax_predict_batch_frozen(
        model,
        nstructures,
        natoms,
        numbers,
        positions,
        lattices,
        std::ptr::null(),
        E3RELAX_AXES_CARTESIAN,
        out_positions,
        out_lattices,
    )
}

/// `e3relax_predict_batch` with frozen coordinates: `move_mask` holds the
/// structures' `[natoms][3]` masks concatenated (as `positions`), NULL for
/// none; flags and `mask_axes` as in `e3relax_predict_frozen`.
#[no_mangle]
pub unsafe extern "C" fn e3relax_predict_batch_frozen(
    model: *const e3relax_model_t,
    nstructures: i32,
    natoms: *const i32,
    numbers: *const i32,
    positions: *const f64,
    lattices: *const f64,
    move_mask: *const i32,
    mask_axes: i32,
    out_positions: *mut f64,
    out_lattices: *mut f64,
) -> e3relax_status_t {
    // The handle's settings, no layers, no spreads: `e3relax_predict_with`
    // without options.
    e3relax_predict_with(
        model,
        std::ptr::null(),
        nstructures,
        natoms,
        numbers,
        positions,
        lattices,
        move_mask,
        mask_axes,
        out_positions,
        out_lattices,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    )
}

/// The structures of a batch call (CSR arrays as in
/// `e3relax_predict_batch_frozen`), each checked, with its move mask.
#[allow(clippy::too_many_arguments)]
unsafe fn batch_structures(
    handle: &e3relax_model_t,
    nstructures: i32,
    natoms: *const i32,
    numbers: *const i32,
    positions: *const f64,
    lattices: *const f64,
    move_mask: *const i32,
    mask_axes: i32,
) -> Result<Vec<Structure>, Error> {
    let count = check_count(nstructures, "nstructures")?;
    for (ptr, name) in [
        (natoms.is_null(), "natoms"),
        (numbers.is_null(), "numbers"),
        (positions.is_null(), "positions"),
        (lattices.is_null(), "lattices"),
    ] {
        if ptr {
            return Err(null(name));
        }
    }
    let counts = std::slice::from_raw_parts(natoms, count);
    let mut structures = Vec::with_capacity(count);
    let mut first = 0usize;
    for (k, &c) in counts.iter().enumerate() {
        let n = check_count(c, &format!("natoms[{k}]"))?;
        let mut s = structure_from(
            handle,
            n,
            numbers.add(first),
            positions.add(3 * first),
            lattices.add(9 * k),
            &format!("structure {k}: "),
        )?;
        let mask = if move_mask.is_null() {
            move_mask
        } else {
            move_mask.add(3 * first)
        };
        attach_mask(&mut s, mask, mask_axes)?;
        structures.push(s);
        first += n;
    }
    Ok(structures)
}

/// Relaxes a batch, reporting to the handle's progress callback if it has
/// one.
fn relax_with_progress(
    handle: &e3relax_model_t,
    relaxer: &Relaxer,
    structures: &[Structure],
    options: &RelaxOptions,
) -> Result<Vec<Relaxation>, Error> {
    let progress = *handle.progress.lock().unwrap_or_else(|e| e.into_inner());
    let total = structures.len() as i32;
    match progress {
        Some((Some(callback), user_data)) => {
            relaxer.relax_many_with_progress(structures, options, &|done| {
                // SAFETY: the caller registered this callback for this handle.
                unsafe { callback(done as i32, total, user_data as *mut std::ffi::c_void) }
            })
        }
        _ => relaxer.relax_many(structures, options),
    }
}

/// The settings one `e3relax_predict_with` call may change; every key is
/// optional and a missing one keeps the handle's (`e3relax_load`'s) value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallOptions {
    fixed_cell: Option<bool>,
    batch_size: Option<usize>,
    /// `null` turns symmetrisation off for this call.
    #[serde(default, deserialize_with = "present")]
    symmetry_tolerance: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    trust: Option<Option<[f64; 2]>>,
    #[serde(default, deserialize_with = "present")]
    surface_trust: Option<Option<f64>>,
    line_search: Option<bool>,
    layers: Option<bool>,
}

/// A key that is present, `null` included (serde reads a missing key as
/// the outer `None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl CallOptions {
    unsafe fn read(options_json: *const c_char) -> Result<CallOptions, Error> {
        if options_json.is_null() {
            return Ok(CallOptions::default());
        }
        let text = read_str(options_json, "options_json")?;
        if text.trim().is_empty() {
            return Ok(CallOptions::default());
        }
        serde_json::from_str(text).map_err(|e| Error::InvalidArgument(format!("options_json: {e}")))
    }

    /// The handle's options with this call's changes.
    fn apply(&self, handle: &e3relax_model_t, relaxer: &Relaxer) -> Result<RelaxOptions, Error> {
        let mut options = handle.options;
        if let Some(fixed_cell) = self.fixed_cell {
            options.fixed_cell = fixed_cell;
        }
        if let Some(batch_size) = self.batch_size {
            options.batch_size = batch_size;
        }
        if let Some(tolerance) = self.symmetry_tolerance {
            options.symmetry_tolerance = tolerance;
        }
        if let Some(trust) = self.trust {
            options.trust = trust.map(|[strain, displacement]| crate::trust::Trust {
                strain,
                displacement,
            });
        }
        if let Some(k) = self.surface_trust {
            options.surface_trust = k
                .map(|k| relaxer.surface_trust(&handle.dir, k))
                .transpose()
                .map_err(in_options)?;
        }
        if let Some(line_search) = self.line_search {
            if line_search {
                relaxer.check_line_search().map_err(in_options)?;
            }
            options.line_search = line_search;
        }
        options.keep_trajectory = self.layers.unwrap_or(false);
        options.validate().map_err(in_options)?;
        Ok(options)
    }
}

/// Predicts many crystals with settings for this call only: the general
/// form of the other prediction functions. `options_json` (NULL or empty:
/// the handle's settings) may set `fixed_cell`, `batch_size`,
/// `symmetry_tolerance` (null: the raw output), `trust`, `surface_trust`,
/// `line_search` (as in `e3relax_load`) and `layers`; the handle keeps its own settings,
/// so threads sharing a handle may each pass their own, and one handle
/// serves fixed-cell and variable-cell predictions alike. Arrays as in
/// `e3relax_predict_batch_frozen` (`move_mask` NULL: every atom free).
/// With `"layers": true` the outputs hold every layer, the last being the
/// prediction: `out_positions[layers][total atoms][3]` and
/// `out_lattices[layers][nstructures][3][3]` (`layers` from
/// `e3relax_num_layers`; the layers do not honour frozen atoms or a trust
/// policy, so a mask or a trust option is refused with them).
/// `out_atom_uncertainty[total atoms]`, `out_cell_uncertainty[nstructures]`
/// and `out_volume_uncertainty[nstructures]` are the ensemble's spread as
/// in `e3relax_predict_uncertainty` (a handle loaded with
/// `{"uncertainty": true}`); any output may be NULL when not wanted.
#[no_mangle]
pub unsafe extern "C" fn e3relax_predict_with(
    model: *const e3relax_model_t,
    options_json: *const c_char,
    nstructures: i32,
    natoms: *const i32,
    numbers: *const i32,
    positions: *const f64,
    lattices: *const f64,
    move_mask: *const i32,
    mask_axes: i32,
    out_positions: *mut f64,
    out_lattices: *mut f64,
    out_atom_uncertainty: *mut f64,
    out_cell_uncertainty: *mut f64,
    out_volume_uncertainty: *mut f64,
) -> e3relax_status_t {
    guard(|| {
        let handle = model.as_ref().ok_or_else(|| null("model"))?;
        let call = CallOptions::read(options_json)?;
        let structures = batch_structures(
            handle,
            nstructures,
            natoms,
            numbers,
            positions,
            lattices,
            move_mask,
            mask_axes,
        )?;
        let wants_spread = !(out_atom_uncertainty.is_null()
            && out_cell_uncertainty.is_null()
            && out_volume_uncertainty.is_null());
        let layers = call.layers.unwrap_or(false);
        let results = {
            let relaxer = handle.relaxer.lock().unwrap_or_else(|e| e.into_inner());
            let options = call.apply(handle, &relaxer)?;
            if wants_spread && relaxer.ensemble_size() < 2 {
                return Err(Error::InvalidArgument(
                    "uncertainty outputs need an ensemble: load the handle with {\"uncertainty\": true} from a model directory with ensemble.json".into(),
                ));
            }
            if layers
                && (wants_spread
                    || !move_mask.is_null()
                    || options.trust.is_some()
                    || options.surface_trust.is_some()
                    || options.line_search)
            {
                return Err(Error::InvalidArgument(
                    "options_json: layers returns the network's raw layers, which carry no uncertainty and honour no move_mask or trust policy".into(),
                ));
            }
            relax_with_progress(handle, &relaxer, &structures, &options)?
        };
        let total: usize = results.iter().map(|r| r.relaxed.natoms()).sum();
        let count = results.len();
        let scale = 1.0 / handle.unit.in_angstrom();
        let mut first = 0usize;
        for (k, r) in results.iter().enumerate() {
            let n = r.relaxed.natoms();
            let frames: Vec<&Structure> = if layers {
                r.trajectory.iter().collect()
            } else {
                vec![&r.relaxed]
            };
            for (t, s) in frames.into_iter().enumerate() {
                let pos = if out_positions.is_null() {
                    out_positions
                } else {
                    out_positions.add(3 * (t * total + first))
                };
                let lat = if out_lattices.is_null() {
                    out_lattices
                } else {
                    out_lattices.add(9 * (t * count + k))
                };
                write_out(handle, s, pos, lat);
            }
            if let Some(u) = &r.uncertainty {
                if !out_atom_uncertainty.is_null() {
                    for (i, v) in u.atoms.iter().enumerate() {
                        *out_atom_uncertainty.add(first + i) = v * scale;
                    }
                }
                if !out_cell_uncertainty.is_null() {
                    *out_cell_uncertainty.add(k) = u.cell;
                }
                if !out_volume_uncertainty.is_null() {
                    *out_volume_uncertainty.add(k) = u.volume * scale.powi(3);
                }
            }
            first += n;
        }
        Ok(())
    })
}
