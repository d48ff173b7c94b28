//! The user-facing prediction API: load a model directory, relax one
//! structure or many.

use crate::profile;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::{Batch, LayerOutput, Model};
use crate::runtime::DeviceRequest;
use crate::structure::Structure;
use crate::symmetry::SpaceGroup;

/// Settings of a prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelaxOptions {
    /// Keep the input lattice; only atoms move (defects, slabs).
    pub fixed_cell: bool,
    /// Structures per forward pass.
    pub batch_size: usize,
    /// Also return the structure after every layer.
    pub keep_trajectory: bool,
    /// Keep the input's space group: find it at this tolerance (Å) and
    /// symmetrise the prediction with it (see [`crate::symmetry`]); `None`
    /// returns the network's raw output.
    pub symmetry_tolerance: Option<f64>,
    /// Shrink each crystal's predicted change towards the input where it is
    /// no larger than these error scales (see [`crate::trust`]); `None`:
    /// the prediction as it is.
    pub trust: Option<crate::trust::Trust>,
    /// With an ensemble: shrink each crystal's mean predicted change by
    /// `c^2 / (c^2 + (k s)^2)`, `s` the members' spread of that change (cell
    /// strain; atom moves), `k` this factor: the trust policy driven by the
    /// crystal's own uncertainty. `None`: the mean as it is.
    pub spread_trust: Option<f64>,
    /// Shrink each crystal's predicted change where the model's
    /// energy-surface heads find the input at rest: forces and virial no
    /// larger than these scales (see [`crate::trust`]). Needs a model with
    /// `surface_heads`; `None`: the prediction as it is.
    pub surface_trust: Option<crate::trust::SurfaceTrust>,
    /// Go along the predicted move only as far as the model's
    /// energy-surface heads find the energy falling (see
    /// [`crate::line_search`]). Needs a model with `surface_heads`.
    pub line_search: bool,
}

/// Default tolerance of the symmetry search, Å (spglib's usual 1e-3).
pub const DEFAULT_SYMMETRY_TOLERANCE: f64 = 1e-3;

/// The shipped model used when none is named, searched in this order:
/// `$E3RELAX_MODEL`; beside the binary that holds this code (the library or
/// the CLI): `../share/e3relax/models/default` (an installed prefix) or
/// `models/default` (the Python package); the source tree this was built
/// from. The error lists where it looked.
pub fn default_model_dir() -> Result<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("E3RELAX_MODEL") {
        return Ok(dir.into());
    }
    let mut candidates = Vec::new();
    if let Some(binary_dir) = this_binary_dir() {
        candidates.push(binary_dir.join("../share/e3relax/models/default"));
        // A multiarch library folder (lib/x86_64-linux-gnu).
        candidates.push(binary_dir.join("../../share/e3relax/models/default"));
        candidates.push(binary_dir.join("models/default"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default"));
    if let Some(found) = candidates.iter().find(|d| d.join("config.json").is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
    Err(Error::Model(format!(
        "no model named, E3RELAX_MODEL is not set and no shipped model was found (looked in {})",
        looked.join(", ")
    )))
}

/// The folder of the shared library or executable this code is part of.
fn this_binary_dir() -> Option<std::path::PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let address = default_model_dir as *const libc::c_void;
    // SAFETY: dladdr only reads the loader's tables; info is a plain struct.
    if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
    let path = std::fs::canonicalize(path).ok()?;
    path.parent().map(Path::to_path_buf)
}

impl RelaxOptions {
    /// Checks the settings (every caller's, in this one place); the error
    /// names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if let Some(t) = self.symmetry_tolerance {
            if !(t > 0.0 && t < 0.5) {
                return bad(format!(
                    "symmetry_tolerance must be in (0, 0.5) Å (or none for the raw output), got {t}"
                ));
            }
        }
        if let Some(t) = self.trust {
            if !(t.strain.is_finite()
                && t.strain >= 0.0
                && t.displacement.is_finite()
                && t.displacement >= 0.0)
            {
                return bad(format!(
                    "trust must be two non-negative numbers [strain, displacement], got [{}, {}]",
                    t.strain, t.displacement
                ));
            }
        }
        if let Some(k) = self.spread_trust {
            if !(k.is_finite() && k >= 0.0) {
                return bad(format!(
                    "spread_trust must be a non-negative number, got {k}"
                ));
            }
        }
        if let Some(t) = self.surface_trust {
            if !(t.force.is_finite() && t.force > 0.0 && t.virial.is_finite() && t.virial > 0.0) {
                return bad(format!(
                    "surface_trust scales must be finite numbers above 0, got force {} and virial {}",
                    t.force, t.virial
                ));
            }
            if !crate::trust::SurfaceTrust::sharpness_is_valid(t.sharpness) {
                return bad(format!(
                    "surface_trust sharpness must be a finite number of at least 1, got {}",
                    t.sharpness
                ));
            }
        }
        Ok(())
    }
}

impl Default for RelaxOptions {
    fn default() -> Self {
        RelaxOptions {
            fixed_cell: false,
            batch_size: 16,
            keep_trajectory: false,
            symmetry_tolerance: Some(DEFAULT_SYMMETRY_TOLERANCE),
            trust: None,
            spread_trust: None,
            surface_trust: None,
            line_search: false,
        }
    }
}

/// The prediction for one structure.
#[derive(Debug, Clone, PartialEq)]
pub struct Relaxation {
    /// The relaxed structure (the last layer's output), with the input's
    /// atom order, id and metadata.
    pub relaxed: Structure,
    /// The structure after each layer (empty unless asked for; with an
    /// ensemble, the first member's layers).
    pub trajectory: Vec<Structure>,
    /// The spread of an ensemble's predictions (see [`crate::ensemble`]);
    /// `None` for a single model.
    pub uncertainty: Option<crate::ensemble::Uncertainty>,
}

/// A loaded model ready to relax structures.
#[derive(Debug)]
pub struct Relaxer {
    model: Model,
    /// The other members of an ensemble (empty for a single model).
    members: Vec<Model>,
    /// The model directory's default surface trust (`surface_trust.json`
    /// with a `default` K), used by [`Relaxer::default_options`].
    default_surface_trust: Option<crate::trust::SurfaceTrust>,
}

/// A tensor's values, on the CPU in f64, in row-major order.
fn to_values(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::try_from(
        t.to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .contiguous()
            .flatten(0, -1),
    )?)
}

fn to_rows(t: &Tensor) -> Result<Vec<[f64; 3]>> {
    let flat = to_values(t)?;
    Ok(flat.chunks(3).map(|c| [c[0], c[1], c[2]]).collect())
}

impl Relaxer {
    /// Loads a model directory onto the requested device.
    pub fn load(dir: impl AsRef<Path>, device: DeviceRequest) -> Result<Relaxer> {
        let dir = dir.as_ref();
        crate::runtime::check_libtorch_version()?;
        let device = device.resolve()?;
        let mut relaxer = Relaxer::from_model(Model::load(dir, device)?);
        relaxer.default_surface_trust = relaxer.default_surface_trust(dir)?;
        Ok(relaxer)
    }

    /// Loads a model directory and the other members of its ensemble
    /// (`ensemble.json`, see [`crate::ensemble`]): predictions are then the
    /// members' mean, with their spread as the uncertainty. An error if
    /// the directory holds no ensemble.
    pub fn load_ensemble(dir: impl AsRef<Path>, device: DeviceRequest) -> Result<Relaxer> {
        let dir = dir.as_ref();
        let member_dirs = crate::ensemble::member_dirs(dir)?;
        if member_dirs.is_empty() {
            return Err(Error::Model(format!(
                "{}: no ensemble.json, so no uncertainty (an ensemble lists its other members there)",
                dir.display()
            )));
        }
        let mut relaxer = Relaxer::load(dir, device)?;
        let device = relaxer.model.device();
        for member in member_dirs {
            let model = Model::load(&member, device)?;
            // The same network; only the first member's energy-surface
            // heads are used (the surface trust reads them once).
            let mut same = model.config().clone();
            same.surface_heads = relaxer.model.config().surface_heads;
            if &same != relaxer.model.config() {
                return Err(Error::Model(format!(
                    "{}: an ensemble member must have the first member's config.json (energy-surface heads aside)",
                    member.display()
                )));
            }
            relaxer.members.push(model);
        }
        Ok(relaxer)
    }

    pub fn from_model(model: Model) -> Relaxer {
        Relaxer {
            model,
            members: Vec::new(),
            default_surface_trust: None,
        }
    }

    /// The settings a prediction uses when its caller does not choose:
    /// [`RelaxOptions::default`] with the model directory's default
    /// surface trust, if it names one.
    pub fn default_options(&self) -> RelaxOptions {
        RelaxOptions {
            surface_trust: self.default_surface_trust,
            ..RelaxOptions::default()
        }
    }

    /// An ensemble of these models (the first one's config is used).
    pub fn from_models(mut models: Vec<Model>) -> Result<Relaxer> {
        if models.is_empty() {
            return Err(Error::InvalidArgument("an ensemble needs a model".into()));
        }
        let model = models.remove(0);
        Ok(Relaxer {
            model,
            members: models,
            default_surface_trust: None,
        })
    }

    /// The surface trust's scales of this relaxer's model (loaded from
    /// `dir`) times `k`; an error names what is missing: the energy-surface
    /// heads or their measured scales (`surface_trust.json`).
    pub fn surface_trust(&self, dir: &Path, k: f64) -> Result<crate::trust::SurfaceTrust> {
        if !(k.is_finite() && k > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "surface_trust must be a finite number above 0, got {k}"
            )));
        }
        if !self.model.reads_surface() {
            return Err(Error::Model(format!(
                "{}: this model has no energy-surface heads (config.json: surface_heads) and no surface reader, which the surface trust reads",
                dir.display()
            )));
        }
        Ok(crate::trust::SurfaceCalibration::load(dir)?.scales.times(k))
    }

    /// The surface trust a prediction with this model uses when its caller
    /// does not choose: the `default` K of the model's `surface_trust.json`
    /// (loaded from `dir`), or none (the raw prediction).
    pub fn default_surface_trust(&self, dir: &Path) -> Result<Option<crate::trust::SurfaceTrust>> {
        if !self.model.reads_surface() || !dir.join(crate::trust::SURFACE_TRUST_FILE).is_file() {
            return Ok(None);
        }
        let calibration = crate::trust::SurfaceCalibration::load(dir)?;
        Ok(calibration.default.map(|k| calibration.scales.times(k)))
    }

    /// Whether this relaxer's model can run the energy-surface line search
    /// (`RelaxOptions::line_search`): an error names what it lacks.
    pub fn check_line_search(&self) -> Result<()> {
        if self.model.reads_surface() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(
                "line_search needs a model with energy-surface heads (config.json: surface_heads)"
                    .into(),
            ))
        }
    }

    /// The surface trust a caller asked for: `Some(Some(k))` K times the
    /// model's scales, `Some(None)` none, `None` the model's default.
    pub fn chosen_surface_trust(
        &self,
        dir: &Path,
        choice: Option<Option<f64>>,
    ) -> Result<Option<crate::trust::SurfaceTrust>> {
        match choice {
            None => self.default_surface_trust(dir),
            Some(None) => Ok(None),
            Some(Some(k)) => self.surface_trust(dir, k).map(Some),
        }
    }

    /// Models in the ensemble (1 for a single model).
    pub fn ensemble_size(&self) -> usize {
        1 + self.members.len()
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Checks that this model can relax `structure` (the same checks a
    /// prediction runs first): the error says what is wrong with it.
    pub fn check(&self, structure: &Structure) -> Result<()> {
        crate::model::batch::check_structure(structure, self.model.config())
    }

    /// Relaxes one structure with [`Relaxer::default_options`].
    pub fn relax(&self, structure: &Structure) -> Result<Structure> {
        Ok(self
            .relax_many(std::slice::from_ref(structure), &self.default_options())?
            .remove(0)
            .relaxed)
    }

    /// Relaxes many structures, `options.batch_size` per forward pass. The
    /// result for a structure does not depend on what else is in its batch.
    /// On the CPU with two batches or more, the work is spread over
    /// [`Relaxer::workers_for`] threads.
    pub fn relax_many(
        &self,
        structures: &[Structure],
        options: &RelaxOptions,
    ) -> Result<Vec<Relaxation>> {
        self.relax_many_with_progress(structures, options, &|_| {})
    }

    /// [`Relaxer::relax_many`], calling `on_batch(done)` after each batch
    /// with the number of structures relaxed so far (from whichever worker
    /// finished it; `done` only grows). Long runs report progress this way
    /// (the CLI's bar, the C ABI's callback).
    pub fn relax_many_with_progress(
        &self,
        structures: &[Structure],
        options: &RelaxOptions,
        on_batch: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Relaxation>> {
        let workers = self.workers_for(structures.len(), options.batch_size);
        self.relax_many_on(structures, options, workers, on_batch)
    }

    /// How many workers [`Relaxer::relax_many`] uses for `structures`
    /// crystals in batches of `batch_size`: on the CPU with two batches or
    /// more, one worker per libtorch intra-op thread (at most one per
    /// batch), each running single-threaded, since many small crystals gain
    /// from whole cores where libtorch's intra-op threads do little for
    /// their small tensors; otherwise one worker with all of libtorch's
    /// threads. The thread count is libtorch's (see
    /// [`crate::runtime::set_threads`]; the CLI's `--threads`, the C ABI's
    /// `E3RELAX_NUM_THREADS`).
    pub fn workers_for(&self, structures: usize, batch_size: usize) -> usize {
        let batches = structures.div_ceil(batch_size.max(1));
        if self.model.device() != Device::Cpu || batches < 2 {
            return 1;
        }
        (tch::get_num_threads().max(1) as usize).min(batches)
    }

    /// [`Relaxer::relax_many_with_progress`] on exactly `workers` threads,
    /// each with its own copy of the model and a contiguous share of the
    /// structures (whole batches). While several run, libtorch's intra-op
    /// threads are 1 (see [`crate::runtime::OneThreadPerWorker`]). Results
    /// come back in input order and equal the serial run's (same batches,
    /// so bit for bit). On a GPU, or with one batch, runs serially.
    pub fn relax_many_on(
        &self,
        structures: &[Structure],
        options: &RelaxOptions,
        workers: usize,
        on_batch: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Relaxation>> {
        options.validate()?;
        if self.members.is_empty() {
            return relax_with_model(&self.model, structures, options, workers, on_batch);
        }
        // An ensemble: every member relaxes everything; progress counts
        // structures whose every member is done (approximately, per member).
        let k = self.ensemble_size();
        // The surface trust acts once, on the mean, with the first model's
        // heads: the other members need none of their own.
        let member_options = RelaxOptions {
            surface_trust: None,
            line_search: false,
            ..*options
        };
        let mut per_member = Vec::with_capacity(k);
        for (j, model) in std::iter::once(&self.model)
            .chain(&self.members)
            .enumerate()
        {
            // Members run one after the other: j of them are done.
            let count = |done: usize| on_batch((j * structures.len() + done) / k);
            per_member.push(relax_with_model(
                model,
                structures,
                &member_options,
                workers,
                &count,
            )?);
        }
        let readings = match options.surface_trust {
            Some(_) => Some(read_surface(
                &self.model,
                structures,
                options.batch_size,
                options.fixed_cell,
            )?),
            None => None,
        };
        let mut first = per_member.remove(0);
        for (i, (input, relaxation)) in structures.iter().zip(&mut first).enumerate() {
            let predictions: Vec<Structure> = std::iter::once(relaxation.relaxed.clone())
                .chain(per_member.iter().map(|m| m[i].relaxed.clone()))
                .collect();
            let (mut mean, uncertainty) = crate::ensemble::combine(input, &predictions);
            if let Some(k) = options.spread_trust {
                let trust = crate::trust::Trust {
                    strain: k * uncertainty.cell,
                    displacement: k * uncertainty.mean_atom(),
                };
                mean = crate::trust::shrink(input, &mean, &trust);
            }
            if let (Some(scales), Some(readings)) = (&options.surface_trust, &readings) {
                mean = surface_shrink(input, &mean, scales, &readings[i], options.fixed_cell);
            }
            // The mean of frozen coordinates is frozen up to round-off:
            // honour them exactly again.
            relaxation.relaxed = crate::frozen::honour(input, mean, options.fixed_cell);
            relaxation.uncertainty = Some(uncertainty);
        }
        if options.line_search {
            line_search(
                &self.model,
                structures,
                &mut first,
                options.batch_size,
                options.fixed_cell,
            )?;
        }
        keep_atoms_apart(structures, &mut first, options.fixed_cell);
        Ok(first)
    }
}

/// [`Relaxer::relax_many_with_progress`] for one model.
fn relax_with_model(
    model: &Model,
    structures: &[Structure],
    options: &RelaxOptions,
    workers: usize,
    on_batch: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Relaxation>> {
    let batch_size = options.batch_size.max(1);
    let batches = structures.len().div_ceil(batch_size);
    let workers = workers.clamp(1, batches.max(1));
    let done = std::sync::atomic::AtomicUsize::new(0);
    let count = |n: usize| {
        let total = done.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n;
        on_batch(total);
    };
    if workers == 1 || model.device() != Device::Cpu {
        return predict_with_progress(model, structures, options, 0, &count);
    }
    let _one_thread_each = crate::runtime::OneThreadPerWorker::enter();
    // Shares of whole batches, so that every structure is batched with
    // the same neighbours as in the serial run.
    let share = batches.div_ceil(workers) * batch_size;
    let parts: Vec<&[Structure]> = structures.chunks(share).collect();
    let copies = (1..parts.len())
        .map(|_| model.duplicate())
        .collect::<Result<Vec<Model>>>()?;
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = copies
            .into_iter()
            .zip(&parts[1..])
            .enumerate()
            .map(|(k, (model, part))| {
                let offset = (k + 1) * share;
                let count = &count;
                scope.spawn(move || {
                    // OpenMP's thread count is per thread: a new thread
                    // starts from the process default, not the guard's 1.
                    tch::set_num_threads(1);
                    predict_with_progress(&model, part, options, offset, count)
                })
            })
            .collect();
        let mut results = vec![predict_with_progress(model, parts[0], options, 0, &count)];
        results.extend(handles.into_iter().map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::Model("a prediction thread panicked".into())))
        }));
        results
    });
    let mut all = Vec::with_capacity(structures.len());
    for part in results {
        all.extend(part?);
    }
    Ok(all)
}

/// Runs a model on structures in batches (inference, no gradients).
pub fn predict(
    model: &Model,
    structures: &[Structure],
    options: &RelaxOptions,
    first_index: usize,
) -> Result<Vec<Relaxation>> {
    predict_with_progress(model, structures, options, first_index, &|_| {})
}

/// [`predict`], calling `on_batch(n)` with the size of each batch once it
/// is relaxed.
pub fn predict_with_progress(
    model: &Model,
    structures: &[Structure],
    options: &RelaxOptions,
    first_index: usize,
    on_batch: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Relaxation>> {
    options.validate()?;
    let mut results = Vec::with_capacity(structures.len());
    for chunk in structures.chunks(options.batch_size) {
        let refs: Vec<&Structure> = chunk.iter().collect();
        let batch = profile::stage("batch and neighbour graph", || {
            Batch::new(
                &refs,
                model.config(),
                model.device(),
                model.kind(),
                options.fixed_cell,
            )
        })?;
        let outputs = profile::stage("network", || {
            let _guard = tch::no_grad_guard();
            model.network.forward(&batch)
        });
        let readings = match options.surface_trust {
            None => None,
            Some(_) => Some(profile::stage("energy-surface heads", || {
                surface_readings(model, &batch, &refs)
            })?),
        };
        let relaxed = profile::stage("results and symmetrisation", || {
            assemble(
                chunk,
                first_index + results.len(),
                &batch,
                &outputs,
                readings.as_deref(),
                options,
            )
        })?;
        let mut relaxed = relaxed;
        if options.line_search {
            profile::stage("energy-surface line search", || {
                line_search(
                    model,
                    chunk,
                    &mut relaxed,
                    options.batch_size,
                    options.fixed_cell,
                )
            })?;
        }
        keep_atoms_apart(chunk, &mut relaxed, options.fixed_cell);
        results.extend(relaxed);
        on_batch(chunk.len());
    }
    Ok(results)
}

/// Every prediction's move shortened where it would bring two atoms
/// closer than its input allows ([`crate::separation`]): the last step
/// before a prediction is returned.
fn keep_atoms_apart(inputs: &[Structure], relaxations: &mut [Relaxation], fixed_cell: bool) {
    for (input, r) in inputs.iter().zip(relaxations.iter_mut()) {
        if let Some(shortened) = crate::separation::shortened(input, &r.relaxed, fixed_cell) {
            r.relaxed = shortened;
        }
    }
}

/// The prediction shrunk by the surface trust's factor for this input's
/// reading, carrying the factor it got (info `e3relax_surface_factor`: 1
/// keeps the prediction, 0 the input) for the user to see.
fn surface_shrink(
    input: &Structure,
    predicted: &Structure,
    scales: &crate::trust::SurfaceTrust,
    reading: &crate::trust::SurfaceReading,
    fixed_cell: bool,
) -> Structure {
    let factor = scales.factor(reading, fixed_cell);
    let change = crate::trust::Change::of(input, predicted);
    let mut s = crate::trust::shrink_by(input, predicted, &change, factor, factor);
    s.set_info("e3relax_surface_factor", format!("{factor:.4}"));
    s
}

/// The energy-surface line search on each prediction (see
/// [`crate::line_search`]): the heads read every sample of every crystal's
/// path, `batch_size` crystals (times the samples) per pass; each
/// prediction moves to its path's lowest point and records the step it
/// took in info `e3relax_line_search_step` (0 keeps the input, 1 the
/// prediction). An error for a model without heads.
fn line_search(
    model: &Model,
    inputs: &[Structure],
    relaxations: &mut [Relaxation],
    batch_size: usize,
    fixed_cell: bool,
) -> Result<()> {
    use crate::line_search::{lowest, slope, STEPS};
    let batch_size = batch_size.max(1);
    for (inputs, relaxations) in inputs
        .chunks(batch_size)
        .zip(relaxations.chunks_mut(batch_size))
    {
        let changes: Vec<crate::trust::Change> = inputs
            .iter()
            .zip(relaxations.iter())
            .map(|(input, r)| crate::trust::Change::of(input, &r.relaxed))
            .collect();
        // Each path stops before its first sample the model cannot take
        // (atoms closer than it allows, past the prediction).
        let mut samples = Vec::with_capacity(inputs.len() * STEPS.len());
        let mut lengths = Vec::with_capacity(inputs.len());
        for ((input, r), change) in inputs.iter().zip(relaxations.iter()).zip(&changes) {
            let mut length = 0;
            for &t in &STEPS {
                let sample = crate::trust::shrink_by(input, &r.relaxed, change, t, t);
                if length > 0
                    && crate::model::batch::check_structure(&sample, model.config()).is_err()
                {
                    break;
                }
                samples.push(sample);
                length += 1;
            }
            lengths.push(length);
        }
        let refs: Vec<&Structure> = samples.iter().collect();
        let batch = Batch::new(
            &refs,
            model.config(),
            model.device(),
            model.kind(),
            fixed_cell,
        )?;
        let surface = run_heads(model, &batch, "the line search")?;
        let forces = to_rows(&surface.forces)?;
        let virial = to_values(&surface.virial_per_atom)?;
        let mut atom = 0;
        let mut sample = 0;
        for (((input, r), change), &length) in inputs
            .iter()
            .zip(relaxations.iter_mut())
            .zip(&changes)
            .zip(&lengths)
        {
            let n = input.positions.len();
            let steps = &STEPS[..length];
            let slopes: Vec<f64> = steps
                .iter()
                .map(|&t| {
                    let w = &virial[9 * sample..9 * sample + 9];
                    let w = [[w[0], w[1], w[2]], [w[3], w[4], w[5]], [w[6], w[7], w[8]]];
                    let g = slope(input, change, t, &forces[atom..atom + n], &w, fixed_cell);
                    atom += n;
                    sample += 1;
                    g
                })
                .collect();
            let (t, _) = lowest(steps, &slopes);
            let mut s = crate::trust::shrink_by(input, &r.relaxed, change, t, t);
            s.set_info("e3relax_line_search_step", format!("{t:.4}"));
            r.relaxed = crate::frozen::honour(input, s, fixed_cell);
        }
    }
    Ok(())
}

/// The energy-surface heads' reading of each structure, `batch_size` per
/// pass (what `e3relax calibrate` measures the surface trust's scales on).
pub fn read_surface(
    model: &Model,
    structures: &[Structure],
    batch_size: usize,
    fixed_cell: bool,
) -> Result<Vec<crate::trust::SurfaceReading>> {
    let mut readings = Vec::with_capacity(structures.len());
    for chunk in structures.chunks(batch_size.max(1)) {
        let refs: Vec<&Structure> = chunk.iter().collect();
        let batch = Batch::new(
            &refs,
            model.config(),
            model.device(),
            model.kind(),
            fixed_cell,
        )?;
        readings.extend(surface_readings(model, &batch, &refs)?);
    }
    Ok(readings)
}

/// The energy-surface heads on a batch (no gradients), or an error for a
/// model without them naming `reader`, what needed them.
fn run_heads(
    model: &Model,
    batch: &Batch,
    reader: &str,
) -> Result<crate::model::surface_heads::SurfacePrediction> {
    let _guard = tch::no_grad_guard();
    model.surface(batch).ok_or_else(|| {
        Error::Model(format!(
            "this model has no energy-surface heads (config.json: surface_heads), which {reader} reads"
        ))
    })
}

/// The energy-surface heads' reading of each input of a batch, or an
/// error for a model without them.
pub fn surface_readings(
    model: &Model,
    batch: &Batch,
    inputs: &[&Structure],
) -> Result<Vec<crate::trust::SurfaceReading>> {
    let surface = run_heads(model, batch, "the surface trust")?;
    crate::trust::SurfaceReading::of_batch(
        &to_values(&surface.forces)?,
        &to_values(&surface.virial_per_atom)?,
        inputs,
    )
}

/// Why a predicted structure cannot be right, if it cannot: not finite, a
/// lattice vector longer than any input may have, a cell whose volume
/// changed by more than a factor 1000, or atoms moved further than that.
fn implausible(input: &Structure, positions: &[[f64; 3]], lattice: &[[f64; 3]]) -> Option<String> {
    use crate::structure::MAX_LATTICE_LENGTH;
    if positions
        .iter()
        .chain(lattice)
        .flatten()
        .any(|v| !v.is_finite())
    {
        return Some("not finite (NaN or infinity)".into());
    }
    let lengths = [0, 1, 2].map(|c| crate::linalg::norm(lattice[c]));
    if lengths.iter().any(|&l| l > MAX_LATTICE_LENGTH) {
        return Some(format!(
            "out of range (a lattice vector of {:.3e} Å)",
            lengths.iter().fold(0f64, |a, &b| a.max(b))
        ));
    }
    let lattice: crate::linalg::Mat3 = [lattice[0], lattice[1], lattice[2]];
    let ratio = crate::linalg::det(&lattice).abs() / input.volume();
    if !(1e-3..=1e3).contains(&ratio) {
        return Some(format!(
            "out of range (the cell volume changed by a factor {ratio:.3e})"
        ));
    }
    let reach = MAX_LATTICE_LENGTH;
    let moved = positions
        .iter()
        .zip(&input.positions)
        .map(|(p, q)| crate::linalg::norm([p[0] - q[0], p[1] - q[1], p[2] - q[2]]))
        .fold(0f64, f64::max);
    (moved > reach).then(|| format!("out of range (an atom moved {moved:.3e} Å)"))
}

/// Splits a batch's layer outputs back into structures (`offset`: the
/// index of the chunk's first structure, for messages).
fn assemble(
    chunk: &[Structure],
    offset: usize,
    batch: &Batch,
    outputs: &[LayerOutput],
    readings: Option<&[crate::trust::SurfaceReading]>,
    options: &RelaxOptions,
) -> Result<Vec<Relaxation>> {
    let layers: Vec<usize> = if options.keep_trajectory {
        (0..outputs.len()).collect()
    } else {
        vec![outputs.len() - 1]
    };
    let mut per_layer = Vec::new();
    for &t in &layers {
        per_layer.push((
            to_rows(&outputs[t].positions)?,
            to_rows(&outputs[t].lattice)?,
        ));
    }
    let mut results = Vec::with_capacity(chunk.len());
    let mut first = 0;
    for (b, input) in chunk.iter().enumerate() {
        let n = batch.natoms[b];
        let group = options
            .symmetry_tolerance
            .and_then(|tolerance| SpaceGroup::find(input, tolerance));
        let make = |positions: &[[f64; 3]], lattice: &[[f64; 3]], layer: Option<usize>| {
            let mut s = input.clone();
            s.positions = positions[first..first + n].to_vec();
            if !options.fixed_cell {
                s.lattice = [lattice[3 * b], lattice[3 * b + 1], lattice[3 * b + 2]];
            }
            if let Some(t) = layer {
                s.set_info("e3relax_layer", (t + 1).to_string());
            }
            let s = match &group {
                Some(g) => g.symmetrize(input, &s),
                None => s,
            };
            let s = match (&options.trust, layer) {
                (Some(trust), None) => crate::trust::shrink(input, &s, trust),
                _ => s,
            };
            let s = match (&options.surface_trust, readings, layer) {
                (Some(scales), Some(readings), None) => {
                    surface_shrink(input, &s, scales, &readings[b], options.fixed_cell)
                }
                _ => s,
            };
            crate::frozen::honour(input, s, options.fixed_cell)
        };
        // A prediction is checked before anyone can write or return it:
        // NaN, infinity or an absurd size must surface as an error, never
        // as a structure on disk.
        for (t, (p, l)) in per_layer.iter().enumerate() {
            let problem = implausible(input, &p[first..first + n], &l[3 * b..3 * b + 3]);
            if let Some(problem) = problem {
                return Err(Error::Model(format!(
                    "the prediction for {} is {problem}{}: the model cannot handle this input",
                    input.label(offset + b),
                    if options.keep_trajectory {
                        format!(" (layer {})", layers[t] + 1)
                    } else {
                        String::new()
                    }
                )));
            }
        }
        let (last_pos, last_lat) = per_layer.last().unwrap();
        let relaxed = make(last_pos, last_lat, None);
        let trajectory = if options.keep_trajectory {
            per_layer
                .iter()
                .enumerate()
                .map(|(t, (p, l))| make(p, l, Some(t)))
                .collect()
        } else {
            Vec::new()
        };
        results.push(Relaxation {
            relaxed,
            trajectory,
            uncertainty: None,
        });
        first += n;
    }
    Ok(results)
}
