//! Training settings (a JSON file, overridable by CLI flags).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::runtime::DeviceRequest;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Dataset folders (unrelaxed.extxyz + relaxed.extxyz each).
    pub data: Vec<PathBuf>,
    /// Dataset folders whose pairs are only ever trained on: added to the
    /// training side after the split (which they therefore do not change),
    /// except pairs whose `split_key` group is on the validation side,
    /// which are left out (and counted in the log). For pairs made from the
    /// training pairs (`tools/data/make_pairs.py`).
    pub train_only_data: Vec<PathBuf>,
    /// Training pairs to leave out by an info value, e.g. `{"source":
    /// ["random"]}`: applied to the training side after the split (and
    /// after `train_only_data`), so the validation pairs stay the same. For
    /// pairs whose labels the input does not decide (`tools/measure/label_noise.py`).
    pub exclude_from_training: std::collections::BTreeMap<String, Vec<String>>,
    /// Validation dataset folders (`"validation": "dir"` or `["dir", ...]`,
    /// their pairs together); without any, `validation_fraction` of the
    /// data is held out by `split_key` groups.
    #[serde(deserialize_with = "one_or_many_folders")]
    pub validation: Vec<PathBuf>,
    pub validation_fraction: f64,
    /// Info key whose groups never straddle the split (prototype).
    pub split_key: String,
    /// The network for a new model (ignored with `init_from`).
    pub model: Option<ModelConfig>,
    /// Fine-tune: start from this model directory.
    pub init_from: Option<PathBuf>,
    /// Where checkpoints, logs and the best model go.
    pub output: PathBuf,
    /// Replace a training run already in `output` (its checkpoint, logs
    /// and best model) instead of refusing to start; `e3relax train
    /// --overwrite`. Not written to the run's `train_config.json`.
    #[serde(skip_serializing)]
    pub overwrite: bool,
    pub batch_size: usize,
    /// AdamW learning rate, weight decay, AMSGrad, betas, eps.
    pub lr: f64,
    pub weight_decay: f64,
    /// Whether weight decay also pulls the volume prior's learned
    /// per-element log volumes and its weight towards 0. They are physical
    /// quantities (ln Å^3 per atom), not weights: `false` leaves them out.
    /// `true` (the default) is how the first weight-decay models were
    /// trained.
    pub decay_volume_prior: bool,
    /// Keep the volume prior where it starts (the volume baseline's
    /// least-squares per-element volumes and `g` = 0.5, or the loaded
    /// model's values when fine-tuning): it is not trained at all, so the
    /// network's start is the volume baseline's prediction and the layers
    /// learn only the change from it. Trained, the prior drifts into an
    /// internal scale that the layers undo, and a new structure type then
    /// has no composition volume to fall back on (model card).
    pub hold_volume_prior: bool,
    pub amsgrad: bool,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Gradient-norm clipping threshold.
    pub grad_clip: f64,
    /// Exponential moving average of the weights (validation, export).
    pub ema_decay: f64,
    /// How the learning rate changes during a run (see [`LrSchedule`]).
    pub lr_schedule: LrSchedule,
    /// With the plateau schedule: lr *= factor after `plateau_patience`
    /// rounds without improvement of the validation coordinate MAE, not
    /// below `lr_floor`.
    pub plateau_factor: f64,
    pub plateau_patience: usize,
    pub lr_floor: f64,
    /// Stop after this many rounds without improvement.
    pub early_stop_patience: usize,
    pub max_epochs: usize,
    /// Stop (after a validation round) once this much time has passed.
    pub max_minutes: Option<f64>,
    /// Seed of the initial weights, the example order and the augmentation
    /// draws; also of the train/validation split unless `split_seed` is set.
    pub seed: u64,
    /// Seed of the train/validation split (default: `seed`): runs that
    /// differ only in `seed` then share their validation pairs, which is
    /// how run-to-run spread is measured.
    pub split_seed: Option<u64>,
    /// cpu, cuda, cuda:K or auto.
    pub device: String,
    /// libtorch intra-op threads, 1..=1024 (default: E3RELAX_NUM_THREADS,
    /// else OMP_NUM_THREADS, else 1).
    pub threads: Option<i32>,
    /// Randomly rotate each training structure (and its target).
    pub rotation_augmentation: bool,
    /// Keep cells fixed (datasets relaxed at fixed cell, e.g. MoS2 defects).
    pub fixed_cell: bool,
    /// Standard deviation (Å) of Gaussian noise added to each Cartesian
    /// coordinate of a training *input* (targets unchanged): a nearby start
    /// relaxes to the same minimum, so this teaches the same map from more
    /// starting points and fights overfitting on small datasets. 0 = off.
    pub position_noise: f64,
    /// Standard deviation of a random symmetric strain applied to each
    /// training input's cell (atoms carried in fractional coordinates;
    /// targets unchanged): teaches the cell's way back from strains the
    /// data does not show. 0 = off.
    pub strain_noise: f64,
    /// Chance that a training example uses one of its pair's intermediate
    /// relaxation frames (`trajectory.extxyz`), drawn uniformly, instead of
    /// the unrelaxed structure; only pairs with frames. 0 = off.
    pub frame_probability: f64,
    /// Weight of the lattice term of the layer-wise loss against the
    /// position term (1 = the paper's loss). The cell is what most of the
    /// coordinate error follows (atoms are carried with it), yet its
    /// term, a mean over 9 entries in Å, is several times smaller than the
    /// position term for the same relative error.
    pub lattice_loss_weight: f64,
    /// The position term of the loss as a mean over crystals of their
    /// per-atom means (how the coordinate MAE is averaged) instead of a
    /// mean over the batch's atoms (the paper's; the default).
    pub per_crystal_position_loss: bool,
    /// Chance that a training example's input is its pair's *relaxed*
    /// structure, deformed by a random symmetric strain of standard
    /// deviation `relaxed_input_strain` per entry (atoms keep their
    /// fractional coordinates; `position_noise` still applies), with the
    /// relaxed structure as its target: the way back to a known minimum
    /// from nearby, for every training crystal, at no labelling cost.
    /// 0 = off.
    pub relaxed_input_probability: f64,
    pub relaxed_input_strain: f64,
    /// Whether `position_noise` also rattles the relaxed inputs (default
    /// true). With false they are given exactly (strained by
    /// `relaxed_input_strain` only), so the network sees that an
    /// already-relaxed crystal maps onto itself.
    pub relaxed_input_noise: bool,
    /// Loss weight of each layer's output, one per layer (empty = all 1).
    pub layer_loss_weights: Vec<f64>,
    /// Files or folders of single-point labels (extended XYZ with an
    /// `energy` and a `stress` in the info line and a `forces` column, as
    /// `tools/data/single_points.py` writes them) for the model's energy-surface
    /// heads (`surface_heads`): every optimiser step adds their loss on
    /// `single_point_batch_size` labels drawn at random. Labels whose
    /// `split_key` value is a validation group are left out. Empty = off.
    pub single_points: Vec<PathBuf>,
    pub single_point_batch_size: usize,
    /// Weights of the heads' Huber losses (eV/atom, eV/Å, eV/atom) against
    /// the relaxation loss.
    pub energy_loss_weight: f64,
    pub force_loss_weight: f64,
    pub virial_loss_weight: f64,
    /// Surface pre-training: every optimiser step is one batch of
    /// `single_point_batch_size` single-point labels alone (no relaxation
    /// loss) and an epoch is as many steps as there are such batches in
    /// the labels. The validation pairs are still evaluated every round
    /// (the log shows what the untrained relaxation layers do), and the
    /// newest EMA weights are always the run's `best`: the start of a
    /// second run that trains the relaxation with `init_from`.
    pub surface_pretraining: bool,
}

/// The learning-rate schedule of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr` until the validation error stops improving, then lower by
    /// `plateau_factor` steps (the paper's recipe).
    Plateau,
    /// Half a cosine from `lr` at the first step down to `lr_floor` at the
    /// last step of `max_epochs`: the last epochs take small steps whatever
    /// the validation error does (a run cut short by `max_minutes` or
    /// early stopping never reaches the floor).
    Cosine,
}

/// [`LrSchedule`] with the settings it reads ([`TrainConfig::schedule`]):
/// the plateau fields exist only for the plateau schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// After `patience` validation rounds without improvement the
    /// learning rate is multiplied by `factor`, not below `floor`.
    Plateau {
        factor: f64,
        patience: usize,
        floor: f64,
    },
    /// Half a cosine from `lr` down to `floor` over `max_epochs`.
    Cosine { floor: f64 },
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: Vec::new(),
            train_only_data: Vec::new(),
            exclude_from_training: Default::default(),
            validation: Vec::new(),
            validation_fraction: 0.1,
            split_key: "prototype".into(),
            model: None,
            init_from: None,
            output: PathBuf::from("runs/e3relax"),
            overwrite: false,
            batch_size: 32,
            lr: 1e-4,
            weight_decay: 0.0,
            decay_volume_prior: true,
            hold_volume_prior: false,
            amsgrad: true,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            grad_clip: 150.0,
            ema_decay: 0.999,
            lr_schedule: LrSchedule::Plateau,
            plateau_factor: 0.8,
            plateau_patience: 5,
            lr_floor: 1e-8,
            early_stop_patience: 15,
            max_epochs: 1000,
            max_minutes: None,
            seed: 0,
            split_seed: None,
            device: "cpu".into(),
            threads: None,
            rotation_augmentation: false,
            fixed_cell: false,
            position_noise: 0.0,
            strain_noise: 0.0,
            frame_probability: 0.0,
            lattice_loss_weight: 1.0,
            per_crystal_position_loss: false,
            relaxed_input_probability: 0.0,
            relaxed_input_strain: 0.0,
            relaxed_input_noise: true,
            layer_loss_weights: Vec::new(),
            single_points: Vec::new(),
            single_point_batch_size: 16,
            energy_loss_weight: 0.1,
            force_loss_weight: 1.0,
            virial_loss_weight: 1.0,
            surface_pretraining: false,
        }
    }
}

impl TrainConfig {
    /// The learning-rate schedule with the settings it reads.
    pub fn schedule(&self) -> Schedule {
        match self.lr_schedule {
            LrSchedule::Plateau => Schedule::Plateau {
                factor: self.plateau_factor,
                patience: self.plateau_patience,
                floor: self.lr_floor,
            },
            LrSchedule::Cosine => Schedule::Cosine {
                floor: self.lr_floor.min(self.lr),
            },
        }
    }

    /// The device the run asks for; the error names the field.
    pub fn device_request(&self) -> Result<DeviceRequest> {
        self.device.parse::<DeviceRequest>().map_err(|e| {
            Error::InvalidArgument(format!("training config: device {:?}: {e}", self.device))
        })
    }

    /// The learning rate of optimiser step `step` (0-based) of a run of
    /// `total_steps`, for the schedules that depend on the step alone
    /// (`None` for the plateau schedule, which follows validation).
    pub fn scheduled_lr(&self, step: usize, total_steps: usize) -> Option<f64> {
        match self.schedule() {
            Schedule::Plateau { .. } => None,
            Schedule::Cosine { floor } => {
                let progress = (step as f64 / total_steps.max(1) as f64).min(1.0);
                Some(
                    floor
                        + 0.5 * (self.lr - floor) * (1.0 + (std::f64::consts::PI * progress).cos()),
                )
            }
        }
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let config: TrainConfig = serde_json::from_str(text)
            .map_err(|e| Error::InvalidArgument(format!("training config: {e}")))?;
        Ok(config)
    }

    /// A config (the JSON `text`, or the defaults when `None`) with
    /// `key=value` settings applied in order, as `e3relax train --set`
    /// takes them. A key is a field name, dotted to reach into the model
    /// config (`model.surface_heads=true`); a value is JSON (`3`, `true`,
    /// `[\"a\", \"b\"]`, `null`), or a plain string when it is not valid
    /// JSON (`device=cuda`). Any field can be set, with the config file's
    /// own names; an unknown name is an error naming it.
    pub fn with_settings(text: Option<&str>, settings: &[String]) -> Result<Self> {
        let bad = |m: String| Error::InvalidArgument(format!("training config: {m}"));
        let mut tree = match text {
            Some(text) => {
                serde_json::from_str::<serde_json::Value>(text).map_err(|e| bad(e.to_string()))?
            }
            None => serde_json::to_value(TrainConfig::default()).expect("config serialises"),
        };
        // serde's type errors do not name the field: each setting is
        // checked as it is applied, so the error can name the setting.
        let check = |tree: &serde_json::Value| serde_json::from_value::<TrainConfig>(tree.clone());
        check(&tree).map_err(|e| bad(e.to_string()))?;
        for setting in settings {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| bad(format!("--set {setting:?}: expected KEY=VALUE")))?;
            let parts: Vec<&str> = key.split('.').collect();
            if parts.iter().any(|p| p.trim().is_empty()) {
                return Err(bad(format!("--set {setting:?}: empty field name")));
            }
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            let (last, path) = parts.split_last().expect("split gives one part");
            let mut node = &mut tree;
            for part in path {
                let object = node.as_object_mut().ok_or_else(|| {
                    bad(format!(
                        "--set {key}: {part} is inside a value that is not an object"
                    ))
                })?;
                node = object
                    .entry(part.to_string())
                    .or_insert_with(|| serde_json::json!({}));
                if node.is_null() {
                    *node = serde_json::json!({});
                }
            }
            node.as_object_mut()
                .ok_or_else(|| bad(format!("--set {key}: {} is not an object", path.join("."))))?
                .insert(last.to_string(), value);
            check(&tree).map_err(|e| bad(format!("--set {setting}: {e}")))?;
        }
        serde_json::from_value(tree).map_err(|e| bad(e.to_string()))
    }

    /// What decides this run's training / validation split.
    pub fn split_spec(&self) -> crate::dataset::SplitSpec<'_> {
        crate::dataset::SplitSpec {
            data: &self.data,
            validation: &self.validation,
            validation_fraction: self.validation_fraction,
            split_key: &self.split_key,
            split_seed: self.split_seed.unwrap_or(self.seed),
            train_only_data: &self.train_only_data,
            exclude_from_training: &self.exclude_from_training,
        }
    }

    /// Checks the settings; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("training config: {m}")));
        if self.data.is_empty() {
            return bad("no training data (data: [folders])".into());
        }
        if self.model.is_none() && self.init_from.is_none() {
            return bad(
                "give a model config (model) or a model directory to fine-tune (init_from)".into(),
            );
        }
        if let Some((key, _)) = self
            .exclude_from_training
            .iter()
            .find(|(key, values)| key.is_empty() || values.is_empty())
        {
            return bad(format!(
                "exclude_from_training: key {key:?} needs a name and at least one value"
            ));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        self.device_request()?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr must be positive, got {}", self.lr));
        }
        if self.validation.is_empty()
            && !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0)
        {
            return bad(format!(
                "validation_fraction must be in (0, 1), got {}",
                self.validation_fraction
            ));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad(format!(
                "ema_decay must be in [0, 1), got {}",
                self.ema_decay
            ));
        }
        if !(self.plateau_factor > 0.0 && self.plateau_factor <= 1.0) {
            return bad(format!(
                "plateau_factor must be in (0, 1], got {}",
                self.plateau_factor
            ));
        }
        if self.grad_clip.is_nan() || self.grad_clip <= 0.0 {
            return bad(format!(
                "grad_clip must be positive, got {}",
                self.grad_clip
            ));
        }
        if !(0.0..=0.5).contains(&self.position_noise) {
            return bad(format!(
                "position_noise must be in [0, 0.5] Å, got {}",
                self.position_noise
            ));
        }
        if !(0.0..=0.2).contains(&self.strain_noise) {
            return bad(format!(
                "strain_noise must be in [0, 0.2], got {}",
                self.strain_noise
            ));
        }
        if !(0.0..=1.0).contains(&self.frame_probability) {
            return bad(format!(
                "frame_probability must be in [0, 1], got {}",
                self.frame_probability
            ));
        }
        if !(0.0..=1.0).contains(&self.relaxed_input_probability) {
            return bad(format!(
                "relaxed_input_probability must be in [0, 1], got {}",
                self.relaxed_input_probability
            ));
        }
        if !(0.0..=0.2).contains(&self.relaxed_input_strain) {
            return bad(format!(
                "relaxed_input_strain must be in [0, 0.2], got {}",
                self.relaxed_input_strain
            ));
        }
        if !(0.0..=100.0).contains(&self.lattice_loss_weight) {
            return bad(format!(
                "lattice_loss_weight must be in [0, 100], got {}",
                self.lattice_loss_weight
            ));
        }
        if self
            .layer_loss_weights
            .iter()
            .any(|w| !(w.is_finite() && *w >= 0.0))
        {
            return bad("layer_loss_weights must be finite and non-negative".into());
        }
        if let (Some(model), None) = (&self.model, &self.init_from) {
            if !self.layer_loss_weights.is_empty()
                && self.layer_loss_weights.len() != model.num_layers
            {
                return bad(format!(
                    "layer_loss_weights has {} entries for model.num_layers = {}",
                    self.layer_loss_weights.len(),
                    model.num_layers
                ));
            }
        }
        if !self.single_points.is_empty() && self.single_point_batch_size == 0 {
            return bad("single_point_batch_size must be at least 1".into());
        }
        for (name, weight) in [
            ("energy_loss_weight", self.energy_loss_weight),
            ("force_loss_weight", self.force_loss_weight),
            ("virial_loss_weight", self.virial_loss_weight),
        ] {
            if !(0.0..=100.0).contains(&weight) {
                return bad(format!("{name} must be in [0, 100], got {weight}"));
            }
        }
        // With init_from the model config is the fine-tuned model's own
        // (checked when it loads); a `model` field beside it is ignored.
        if let (Some(model), None) = (&self.model, &self.init_from) {
            model.validate()?;
            if !self.single_points.is_empty() && !model.surface_heads {
                return bad("single_points trains the energy-surface heads: set model.surface_heads to true".into());
            }
        }
        if self.surface_pretraining && self.single_points.is_empty() {
            return bad(
                "surface_pretraining trains on single-point labels alone: give single_points"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A folder list written as `null`, one folder or an array of folders.
fn one_or_many_folders<'de, D>(deserializer: D) -> std::result::Result<Vec<PathBuf>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Folders {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match Option::<Folders>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(Folders::One(folder)) => vec![folder],
        Some(Folders::Many(folders)) => folders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_is_one_folder_a_list_or_none() {
        let parse = |v: &str| {
            TrainConfig::with_settings(
                Some(&format!(r#"{{"data": ["a"], "validation": {v}}}"#)),
                &[],
            )
            .map(|c| c.validation)
        };
        assert_eq!(parse(r#""v""#).unwrap(), vec![PathBuf::from("v")]);
        assert_eq!(
            parse(r#"["v", "w"]"#).unwrap(),
            vec![PathBuf::from("v"), PathBuf::from("w")]
        );
        assert!(parse("null").unwrap().is_empty());
        assert!(parse("[]").unwrap().is_empty());
        assert!(parse("3").is_err());
        // Written back as a list, which reads the same.
        let config =
            TrainConfig::with_settings(None, &[r#"validation=["v", "w"]"#.into()]).unwrap();
        let again: TrainConfig =
            serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(again.validation, config.validation);
    }

    #[test]
    fn settings_reach_every_field_with_the_file_names() {
        let file = r#"{"data": ["a"], "max_epochs": 5, "model": {"hidden_channels": 8, "num_layers": 2, "num_rbf": 4, "rbf_cutoff": 6.0, "envelope_exponent": 5, "num_elements": 10, "graph_radius": 5.0, "max_neighbors": 12}}"#;
        let settings: Vec<String> = [
            "max_epochs=7",
            "device=cuda",
            "position_noise=0.05",
            "relaxed_input_noise=false",
            "single_points=[\"x.extxyz\", \"y\"]",
            "model.surface_heads=true",
            "max_minutes=null",
        ]
        .map(String::from)
        .to_vec();
        let config = TrainConfig::with_settings(Some(file), &settings).unwrap();
        assert_eq!(config.max_epochs, 7);
        assert_eq!(config.device, "cuda");
        assert_eq!(config.position_noise, 0.05);
        assert!(!config.relaxed_input_noise);
        assert_eq!(config.single_points.len(), 2);
        assert!(config.model.as_ref().unwrap().surface_heads);
        assert_eq!(config.model.as_ref().unwrap().hidden_channels, 8);
        assert_eq!(config.max_minutes, None);
        // Without a file the defaults are the base.
        let config = TrainConfig::with_settings(None, &["lr=0.01".into()]).unwrap();
        assert_eq!(config.lr, 0.01);
        assert_eq!(config.batch_size, TrainConfig::default().batch_size);
    }

    #[test]
    fn a_bad_setting_is_named() {
        let error = |setting: &str| {
            TrainConfig::with_settings(None, &[setting.to_string()])
                .unwrap_err()
                .to_string()
        };
        assert!(
            error("epochs=3").contains("unknown field `epochs`"),
            "{}",
            error("epochs=3")
        );
        assert!(error("max_epochs").contains("expected KEY=VALUE"));
        assert!(error("lr=fast").contains("lr"), "{}", error("lr=fast"));
        assert!(
            error("lr.x=1").contains("not an object"),
            "{}",
            error("lr.x=1")
        );
        assert!(error("model..x=1").contains("empty field name"));
    }

    /// The device is typed when the config is checked: a bad one is
    /// refused before anything runs, naming the field.
    #[test]
    fn the_device_is_checked_with_the_config() {
        let config = |device: &str| TrainConfig {
            data: vec!["d".into()],
            model: Some(ModelConfig::published()),
            device: device.into(),
            ..TrainConfig::default()
        };
        assert_eq!(
            config("cuda:1").device_request().unwrap(),
            DeviceRequest::Cuda(1)
        );
        config("auto").validate().unwrap();
        let error = config("tpu").validate().unwrap_err().to_string();
        assert!(error.contains("device \"tpu\""), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn cosine_schedule_falls_from_lr_to_the_floor() {
        let config = TrainConfig {
            lr: 1e-3,
            lr_floor: 1e-5,
            lr_schedule: LrSchedule::Cosine,
            ..TrainConfig::default()
        };
        let at = |step| config.scheduled_lr(step, 1000).unwrap();
        assert_eq!(at(0), 1e-3);
        assert!((at(500) / (0.5 * (1e-3 + 1e-5)) - 1.0).abs() < 1e-12);
        assert!((at(1000) / 1e-5 - 1.0).abs() < 1e-12);
        // Past the planned end (a resumed run given more epochs) it stays low.
        assert!((at(5000) / 1e-5 - 1.0).abs() < 1e-12);
        let lrs: Vec<f64> = (0..=1000).map(at).collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]), "not monotone");
        let plateau = TrainConfig {
            lr_schedule: LrSchedule::Plateau,
            ..config.clone()
        };
        assert_eq!(plateau.scheduled_lr(10, 1000), None);
        let parsed = TrainConfig::from_json(r#"{"data": ["d"], "lr_schedule": "cosine"}"#).unwrap();
        assert_eq!(parsed.lr_schedule, LrSchedule::Cosine);
        assert!(TrainConfig::from_json(r#"{"data": ["d"], "lr_schedule": "linear"}"#).is_err());
        // The typed schedule carries only the settings it reads.
        assert_eq!(config.schedule(), Schedule::Cosine { floor: 1e-5 });
        assert_eq!(
            plateau.schedule(),
            Schedule::Plateau {
                factor: 0.8,
                patience: 5,
                floor: 1e-5
            }
        );
    }

    fn valid() -> TrainConfig {
        TrainConfig {
            data: vec![PathBuf::from("data")],
            model: Some(ModelConfig::with_size(8, 2, 8)),
            ..TrainConfig::default()
        }
    }

    #[test]
    fn each_bad_setting_is_named() {
        valid().validate().unwrap();
        let cases: Vec<(TrainConfig, &str)> = vec![
            (
                TrainConfig {
                    data: vec![],
                    ..valid()
                },
                "no training data",
            ),
            (
                TrainConfig {
                    model: None,
                    ..valid()
                },
                "init_from",
            ),
            (
                TrainConfig {
                    batch_size: 0,
                    ..valid()
                },
                "batch_size",
            ),
            (
                TrainConfig {
                    lr: f64::NAN,
                    ..valid()
                },
                "lr must be positive",
            ),
            (
                TrainConfig {
                    validation_fraction: 1.0,
                    ..valid()
                },
                "validation_fraction",
            ),
            (
                TrainConfig {
                    ema_decay: 1.0,
                    ..valid()
                },
                "ema_decay",
            ),
            (
                TrainConfig {
                    plateau_factor: 0.0,
                    ..valid()
                },
                "plateau_factor",
            ),
            (
                TrainConfig {
                    grad_clip: -1.0,
                    ..valid()
                },
                "grad_clip",
            ),
            (
                TrainConfig {
                    strain_noise: 0.5,
                    ..valid()
                },
                "strain_noise",
            ),
            (
                TrainConfig {
                    frame_probability: f64::NAN,
                    ..valid()
                },
                "frame_probability",
            ),
            (
                TrainConfig {
                    relaxed_input_probability: 1.5,
                    ..valid()
                },
                "relaxed_input_probability",
            ),
            (
                TrainConfig {
                    relaxed_input_strain: f64::NAN,
                    ..valid()
                },
                "relaxed_input_strain",
            ),
            (
                TrainConfig {
                    lattice_loss_weight: f64::NAN,
                    ..valid()
                },
                "lattice_loss_weight",
            ),
            (
                TrainConfig {
                    lattice_loss_weight: -1.0,
                    ..valid()
                },
                "lattice_loss_weight",
            ),
            (
                TrainConfig {
                    position_noise: -0.1,
                    ..valid()
                },
                "position_noise",
            ),
            (
                TrainConfig {
                    position_noise: 2.0,
                    ..valid()
                },
                "position_noise",
            ),
            (
                TrainConfig {
                    position_noise: f64::NAN,
                    ..valid()
                },
                "position_noise",
            ),
        ];
        for (config, expected) in cases {
            let message = config.validate().unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "{message} (wanted '{expected}')"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused_and_known_ones_read() {
        let err = TrainConfig::from_json(r#"{"position_nois": 0.1}"#).unwrap_err();
        assert!(err.to_string().contains("position_nois"), "{err}");
        let config = TrainConfig::from_json(r#"{"position_noise": 0.05}"#).unwrap();
        assert_eq!(config.position_noise, 0.05);
    }
}
