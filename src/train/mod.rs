//! Training: layer-wise supervised loss, AdamW (AMSGrad), gradient clipping,
//! EMA weights for validation and export, plateau schedule, early stopping,
//! atomic checkpoints every validation round and bit-for-bit resume.
//!
//! A run directory holds `checkpoint/` (weights, EMA, optimizer moments and
//! `state.json`), `best/` (the best EMA model as a model directory),
//! `metrics.csv` and `metrics.jsonl` (one line per validation round) and
//! `train_config.json`.

mod augment;
pub mod collective;
pub mod config;
pub mod optimizer;
mod run_dir;
pub mod single_points;
mod step;
mod validation;

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::Kind;

use augment::{training_batch, training_batch_share};
pub use collective::{Collective, ThreadGroup};
pub use config::{LrSchedule, Schedule, TrainConfig};
use optimizer::{AdamW, Ema};
use run_dir::{
    checkpoint_dir, clean_after_interruption, model_and_state, refuse_existing_run,
    restore_optimizer, save_checkpoint,
};
use single_points::{SinglePointSet, SurfaceWeights};
use step::{optimiser_step, outlier_batch, StepOutcome};
use validation::validation_round;

use crate::baseline::ElementVolumes;
use crate::dataset::{split_group, DataSplit};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::loss::LossWeights;
use crate::model::Model;
use crate::relax::RelaxOptions;
use crate::rng::SplitMix64;

/// Batches with a non-finite loss or gradient that may be skipped in a row
/// before the run is declared diverged.
const MAX_SKIPPED_IN_A_ROW: usize = 10;

/// Everything besides tensors that a resumed run needs (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Next epoch to run.
    pub epoch: usize,
    pub step: i64,
    pub lr: f64,
    pub rng: SplitMix64,
    pub best_coordinate_mae: f64,
    pub rounds_since_best: usize,
    pub rounds_since_lr_change: usize,
    pub elapsed_seconds: f64,
    /// Which tensor files belong to this state.
    pub files_step: i64,
    /// Every validation round so far: `metrics.csv` and `metrics.jsonl`
    /// are rewritten from this after each commit, so they never hold a
    /// round the checkpoint does not (older checkpoints lack it: their
    /// logs are read back on resume).
    #[serde(default)]
    pub rounds: Vec<RoundLog>,
}

/// One validation round (a line of metrics.csv / metrics.jsonl).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundLog {
    pub epoch: usize,
    pub step: i64,
    pub lr: f64,
    pub train_loss: f64,
    pub validation: Metrics,
    pub dummy: Metrics,
    pub seconds: f64,
}

/// Progress reports handed to a callback (the CLI's progress bar, the C
/// ABI's callback).
#[derive(Debug, Clone)]
pub enum Progress {
    Step {
        epoch: usize,
        step: i64,
        batch: usize,
        batches: usize,
        loss: f64,
    },
    Round(RoundLog),
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub epochs: usize,
    pub steps: i64,
    pub best_coordinate_mae: f64,
    pub best_model: PathBuf,
    pub seconds: f64,
    pub stopped_early: bool,
    /// The progress callback asked to stop: the run ends at the last
    /// committed round (`--resume` continues it).
    #[serde(default)]
    pub stopped_by_caller: bool,
}

/// Runs a training job. `resume` continues the checkpoint in
/// `config.output`. `progress` receives every step and round; returning
/// `ControlFlow::Break` stops the run (after a round: once its checkpoint
/// is written; during an epoch: at the last committed round).
pub fn train(
    config: &TrainConfig,
    resume: bool,
    progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
    log: &mut dyn FnMut(&str),
) -> Result<TrainSummary> {
    train_shared(config, resume, progress, log, None)
}

/// [`train`], data parallel over the processes of `collective` (see
/// [`collective`]): every process runs its share of each batch and all
/// take the same steps; only rank 0 writes the run folder. A stop asked by
/// any process's `progress` takes effect at the end of the round. `None`
/// is the single-process run.
pub fn train_shared(
    config: &TrainConfig,
    resume: bool,
    progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
    log: &mut dyn FnMut(&str),
    collective: Option<&dyn Collective>,
) -> Result<TrainSummary> {
    config.validate()?;
    // Rank 0 alone writes: the run folder, checkpoints, logs, `best/`.
    let writes = collective.is_none_or(|c| c.rank() == 0);
    match config.threads {
        Some(threads) if threads > 0 => crate::runtime::set_threads(threads, 0)?,
        _ => crate::runtime::apply_default_threads()?,
    }
    let device = config.device_request()?.resolve()?;
    let output = &config.output;
    if !resume && !config.overwrite && writes {
        refuse_existing_run(output)?;
    }
    let DataSplit {
        train: train_pairs,
        validation: validation_pairs,
    } = DataSplit::load(&config.split_spec(), log)?;
    log(&format!(
        "{} training pairs, {} validation pairs",
        train_pairs.len(),
        validation_pairs.len()
    ));

    let ckpt = checkpoint_dir(output);
    let (model, mut state) = model_and_state(config, resume, device)?;
    if !config.layer_loss_weights.is_empty()
        && config.layer_loss_weights.len() != model.config().num_layers
    {
        return Err(Error::InvalidArgument(format!(
            "training config: layer_loss_weights has {} entries for the model's {} layers",
            config.layer_loss_weights.len(),
            model.config().num_layers
        )));
    }
    if config.hold_volume_prior && !model.config().volume_prior {
        return Err(Error::InvalidArgument(
            "training config: hold_volume_prior needs a model with a volume prior (model.volume_prior)".into(),
        ));
    }
    let single_points = if config.single_points.is_empty() {
        None
    } else {
        if !model.config().surface_heads {
            return Err(Error::InvalidArgument(
                "training config: single_points trains the energy-surface heads, which this model has not (model.surface_heads)".into(),
            ));
        }
        let held_out: HashSet<String> = validation_pairs
            .iter()
            .map(|p| split_group(p, &config.split_key))
            .collect();
        Some(SinglePointSet::load(
            &config.single_points,
            &config.split_key,
            &held_out,
            model.config().num_elements as usize,
            log,
        )?)
    };
    let surface_weights = SurfaceWeights {
        energy: config.energy_loss_weight,
        forces: config.force_loss_weight,
        virial: config.virial_loss_weight,
    };
    // The volume baseline (fitted on the training pairs) on the validation
    // pairs: the number every validation round should beat.
    let fit = ElementVolumes::fit(&train_pairs, model.config().num_elements as usize);
    let baseline = crate::metrics::mean(
        &validation_pairs
            .iter()
            .map(|p| {
                let b = fit.predict(&p.unrelaxed);
                crate::metrics::compare(&b.lattice, &b.positions, &p.target)
            })
            .collect::<Vec<_>>(),
    );
    if !config.fixed_cell {
        log(&format!(
            "volume baseline on the validation pairs: coord MAE {:.4} Å, shape {:.3} Å^2, volume {:.3} Å^3",
            baseline.coordinate_mae, baseline.shape_deviation, baseline.volume_error
        ));
    }
    if !resume && config.init_from.is_none() && model.config().volume_prior {
        // The volume prior starts from the same least-squares fit.
        model.network.set_element_volumes(&fit.volumes);
    }
    let frames: usize = train_pairs.iter().map(|p| p.frames.len()).sum();
    if config.frame_probability > 0.0 {
        log(&format!(
            "{frames} relaxation frames of {} training pairs",
            train_pairs.iter().filter(|p| !p.frames.is_empty()).count()
        ));
    }
    // The run folder appears only once the data and the model are there:
    // a run that cannot start leaves nothing behind.
    if writes {
        std::fs::create_dir_all(output).map_err(|e| Error::io(output.display().to_string(), e))?;
        let json = serde_json::to_string_pretty(config).expect("config serialises");
        crate::io::write_atomically(&output.join("train_config.json"), json.as_bytes())?;
    }

    // The parameters training changes: all, or all but a held prior.
    let held = if config.hold_volume_prior {
        model.parameter_names(crate::model::network::ParameterGroup::PhysicalPrior)
    } else {
        Default::default()
    };
    let params: BTreeMap<String, tch::Tensor> = model
        .named_parameters()
        .into_iter()
        .filter_map(|(name, p)| {
            if held.contains(&name) {
                // No gradient is even computed for it.
                let _ = p.set_requires_grad(false);
                None
            } else {
                Some((name, p))
            }
        })
        .collect();
    if !held.is_empty() {
        log(&format!(
            "volume prior held at its start ({}), not trained",
            held.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let mut opt = AdamW::new(
        &params,
        config.beta1,
        config.beta2,
        config.eps,
        config.weight_decay,
        config.amsgrad,
    );
    if !config.decay_volume_prior {
        opt.not_decayed =
            model.parameter_names(crate::model::network::ParameterGroup::PhysicalPrior);
    }
    let mut ema = Ema::new(&params, config.ema_decay);
    if resume {
        if writes {
            clean_after_interruption(output, &mut state)?;
        }
        restore_optimizer(&ckpt, &state, &mut opt, &ema)?;
        log(&format!(
            "resumed at epoch {} (step {})",
            state.epoch, state.step
        ));
    }

    let weights = LossWeights {
        layers: model.config().loss_weights(&config.layer_loss_weights),
        lattice: config.lattice_loss_weight,
        per_crystal: config.per_crystal_position_loss,
    };
    let eval_options = RelaxOptions {
        fixed_cell: config.fixed_cell,
        batch_size: config.batch_size.max(16),
        keep_trajectory: false,
        ..Default::default()
    };
    let start = Instant::now() - std::time::Duration::from_secs_f64(state.elapsed_seconds);
    // Pre-training steps through the single-point labels, a relaxation
    // run through the training pairs.
    let batches = match (&single_points, config.surface_pretraining) {
        (Some(set), true) => set.points.len().div_ceil(config.single_point_batch_size),
        _ => train_pairs.len().div_ceil(config.batch_size),
    };
    if config.surface_pretraining {
        log(&format!(
            "surface pre-training: {batches} single-point batches per epoch, no relaxation loss"
        ));
    }
    let mut stopped_early = false;
    let mut stopped_by_caller = false;
    let mut skipped_in_a_row = 0;
    let mut stop_asked = false;
    while state.epoch < config.max_epochs {
        let mut order: Vec<usize> = (0..train_pairs.len()).collect();
        state.rng.shuffle(&mut order);
        // A pre-training step has no relaxation pairs: empty chunks.
        let chunks: Vec<&[usize]> = if config.surface_pretraining {
            vec![&[]; batches]
        } else {
            order.chunks(config.batch_size).collect()
        };
        let mut loss_sum = 0.0;
        for (b, &chunk) in chunks.iter().enumerate() {
            let (part, totals) = match collective {
                _ if config.surface_pretraining => (None, None),
                None => (
                    Some(training_batch(
                        &train_pairs,
                        chunk,
                        config,
                        &mut state.rng,
                        model.config(),
                        device,
                    )?),
                    None,
                ),
                Some(c) => {
                    let (part, totals) = training_batch_share(
                        &train_pairs,
                        chunk,
                        collective::share(chunk.len(), c.rank(), c.size()),
                        config,
                        &mut state.rng,
                        model.config(),
                        device,
                    )?;
                    (part, Some(totals))
                }
            };
            let (surface, surface_totals) = match (&single_points, collective) {
                (None, _) => (None, None),
                (Some(set), None) => (
                    Some(set.batch(
                        config.single_point_batch_size,
                        &mut state.rng,
                        model.config(),
                        device,
                    )?),
                    None,
                ),
                (Some(set), Some(c)) => {
                    let size = config.single_point_batch_size;
                    let (part, totals) = set.batch_part(
                        size,
                        collective::share(size, c.rank(), c.size()),
                        &mut state.rng,
                        model.config(),
                        device,
                    )?;
                    (part, Some(totals))
                }
            };
            state.step += 1;
            if let Some(lr) =
                config.scheduled_lr(state.step as usize - 1, config.max_epochs * batches)
            {
                state.lr = lr;
            }
            let value = match optimiser_step(
                &model,
                &params,
                &mut opt,
                &mut ema,
                &weights,
                part.as_ref().map(|(batch, tp, tl)| (batch, tp, tl, totals)),
                surface
                    .as_ref()
                    .map(|(batch, targets)| (batch, targets, surface_weights, surface_totals)),
                config.grad_clip,
                state.lr,
                collective,
            ) {
                StepOutcome::Applied { loss } => {
                    skipped_in_a_row = 0;
                    let ids = chunk.iter().map(|&i| train_pairs[i].id.as_str());
                    if let Some(message) = outlier_batch(state.step, loss, loss_sum, b, ids) {
                        log(&message);
                    }
                    loss_sum += loss;
                    loss
                }
                // A batch whose loss or gradient is not finite is skipped
                // (one odd input must not poison the weights); many in a
                // row mean the run itself diverged.
                StepOutcome::Skipped { loss, grad_norm } => {
                    skipped_in_a_row += 1;
                    log(&format!(
                        "step {}: loss {loss}, gradient norm {grad_norm}: batch skipped",
                        state.step
                    ));
                    if skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW {
                        return Err(Error::Model(format!(
                            "the training loss or gradient was not finite for {MAX_SKIPPED_IN_A_ROW} batches in a row (step {}); lower lr",
                            state.step
                        )));
                    }
                    continue;
                }
            };
            let asked = progress(&Progress::Step {
                epoch: state.epoch,
                step: state.step,
                batch: b + 1,
                batches,
                loss: value,
            });
            if asked.is_break() {
                if collective.is_some() {
                    // The other processes cannot know yet: at the round's end.
                    stop_asked = true;
                    continue;
                }
                // The partial epoch is dropped: the checkpoint stays at the
                // last committed round, which a resume continues exactly.
                stopped_by_caller = true;
                break;
            }
        }
        if stopped_by_caller {
            break;
        }
        let (validation, dummy, improved) = validation_round(
            &model,
            &params,
            &ema,
            &validation_pairs,
            &eval_options,
            &mut state,
            writes.then_some(output),
            collective,
            config.surface_pretraining,
        )?;
        state.after_round(improved, config);
        let round = RoundLog {
            epoch: state.epoch,
            step: state.step,
            lr: state.lr,
            train_loss: loss_sum / batches as f64,
            validation,
            dummy,
            seconds: start.elapsed().as_secs_f64(),
        };
        state.rounds.push(round.clone());
        let mut asked = progress(&Progress::Round(round)).is_break() || stop_asked;
        if let Some(c) = collective {
            // Any process's stop stops them all; the elapsed time is rank
            // 0's, so that max_minutes ends every process at the same round.
            let mut shared = [f64::from(u8::from(asked)), 0.0];
            if c.rank() == 0 {
                shared[1] = start.elapsed().as_secs_f64();
            }
            c.sum(&mut shared);
            asked = shared[0] > 0.0;
            state.elapsed_seconds = shared[1];
        } else {
            state.elapsed_seconds = start.elapsed().as_secs_f64();
        }
        state.epoch += 1;
        state.files_step = state.step;
        if writes {
            save_checkpoint(output, &model, &ema, &opt, &state)?;
        }
        abort_for_tests(state.epoch);
        if asked {
            stopped_by_caller = true;
            break;
        }
        if state.rounds_since_best >= config.early_stop_patience {
            stopped_early = true;
            break;
        }
        if config
            .max_minutes
            .is_some_and(|m| state.elapsed_seconds >= m * 60.0)
        {
            break;
        }
    }
    Ok(TrainSummary {
        epochs: state.epoch,
        steps: state.step,
        best_coordinate_mae: state.best_coordinate_mae,
        best_model: output.join("best"),
        seconds: state.elapsed_seconds,
        stopped_early,
        stopped_by_caller,
    })
}

impl TrainState {
    /// The plateau schedule after a validation round: lr times
    /// `plateau_factor` after `plateau_patience` rounds without improvement.
    fn after_round(&mut self, improved: bool, config: &TrainConfig) {
        if improved {
            self.rounds_since_best = 0;
            self.rounds_since_lr_change = 0;
        } else {
            self.rounds_since_best += 1;
            self.rounds_since_lr_change += 1;
            if let Schedule::Plateau {
                factor,
                patience,
                floor,
            } = config.schedule()
            {
                if self.rounds_since_lr_change >= patience {
                    self.lr = (self.lr * factor).max(floor);
                    self.rounds_since_lr_change = 0;
                }
            }
        }
    }
}

/// A hook for the kill-and-resume test, which must kill a run at a known
/// point however fast the machine is: with `E3RELAX_TEST_ABORT_AFTER_ROUND=N`
/// the process aborts (no clean-up, as a SIGKILL would leave it) once
/// `rounds` rounds are checkpointed. Not for users.
fn abort_for_tests(rounds: usize) {
    let asked = std::env::var("E3RELAX_TEST_ABORT_AFTER_ROUND")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if asked == Some(rounds) {
        std::process::abort();
    }
}

/// Named copies of a parameter map (for tests comparing runs).
pub fn parameter_values(model: &Model) -> BTreeMap<String, Vec<f32>> {
    model
        .named_parameters()
        .into_iter()
        .map(|(k, t)| {
            (
                k,
                Vec::try_from(
                    t.detach()
                        .to_device(tch::Device::Cpu)
                        .to_kind(Kind::Float)
                        .flatten(0, -1),
                )
                .unwrap_or_default(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::dataset::RelaxationPair;

    /// The split of a config, as training takes it.
    fn load_data(
        config: &TrainConfig,
        log: &mut dyn FnMut(&str),
    ) -> Result<(Vec<RelaxationPair>, Vec<RelaxationPair>)> {
        let split = DataSplit::load(&config.split_spec(), log)?;
        Ok((split.train, split.validation))
    }

    #[test]
    fn train_only_data_joins_the_training_side_without_moving_the_split() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pairs/bulk-small");
        let extra = std::env::temp_dir().join(format!("e3relax-extra-{}", std::process::id()));
        std::fs::create_dir_all(&extra).unwrap();
        for name in ["unrelaxed.extxyz", "relaxed.extxyz"] {
            let text = std::fs::read_to_string(fixture.join(name)).unwrap();
            std::fs::write(extra.join(name), text.replace(" id=", " id=extra-")).unwrap();
        }
        let mut config = TrainConfig {
            data: vec![fixture],
            validation_fraction: 0.25,
            ..TrainConfig::default()
        };
        let quiet = &mut |_: &str| {};
        let (base_train, base_validation) = load_data(&config, quiet).unwrap();
        config.train_only_data = vec![extra.clone()];
        let mut logged = Vec::new();
        let (train, validation) =
            load_data(&config, &mut |l: &str| logged.push(l.to_string())).unwrap();
        let ids = |pairs: &[RelaxationPair]| pairs.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&validation), ids(&base_validation), "the split moved");
        assert_eq!(ids(&train[..base_train.len()]), ids(&base_train));
        let prototype =
            |p: &RelaxationPair| p.unrelaxed.info_value("prototype").map(str::to_string);
        let held_out: Vec<_> = validation.iter().map(prototype).collect();
        let added = &train[base_train.len()..];
        assert!(added.iter().all(|p| p.id.starts_with("extra-")));
        assert!(added.iter().all(|p| !held_out.contains(&prototype(p))));
        let left_out = base_train.len() + base_validation.len() - added.len();
        assert_eq!(
            left_out,
            validation.len(),
            "every pair of a validation group left out"
        );
        assert!(
            logged
                .iter()
                .any(|l| l.contains(&format!("({left_out} in validation groups left out)"))),
            "{logged:?}"
        );
        // The same folder twice repeats every id: an error, not double weight.
        config.train_only_data = vec![extra.clone(), extra.clone()];
        let e = load_data(&config, quiet).unwrap_err().to_string();
        assert!(e.contains("appears twice"), "{e}");
        std::fs::remove_dir_all(&extra).unwrap();
    }

    #[test]
    fn exclude_from_training_leaves_out_training_pairs_only() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pairs/bulk-small");
        let mut config = TrainConfig {
            data: vec![fixture],
            validation_fraction: 0.25,
            model: Some(crate::model::ModelConfig::published()),
            ..TrainConfig::default()
        };
        let quiet = &mut |_: &str| {};
        let (base_train, base_validation) = load_data(&config, quiet).unwrap();
        let source = |p: &RelaxationPair| p.unrelaxed.info_value("source").unwrap().to_string();
        let dropped = source(&base_train[0]);
        config.exclude_from_training = [("source".to_string(), vec![dropped.clone()])].into();
        config.validate().unwrap();
        let mut logged = Vec::new();
        let (train, validation) =
            load_data(&config, &mut |l: &str| logged.push(l.to_string())).unwrap();
        let ids = |pairs: &[RelaxationPair]| pairs.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&validation), ids(&base_validation), "the split moved");
        let kept: Vec<_> = base_train
            .iter()
            .filter(|p| source(p) != dropped)
            .cloned()
            .collect();
        assert_eq!(ids(&train), ids(&kept));
        assert!(train.len() < base_train.len());
        let gone = base_train.len() - train.len();
        assert!(
            logged
                .iter()
                .any(|l| l.contains(&format!("{gone} training pairs left out"))),
            "{logged:?}"
        );
        // A key without values would silently do nothing: an error.
        config.exclude_from_training = [("source".to_string(), vec![])].into();
        let e = config.validate().unwrap_err().to_string();
        assert!(e.contains("exclude_from_training"), "{e}");
    }

    #[test]
    fn validation_folders_are_taken_together_and_none_twice() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pairs");
        let (bulk, mos2) = (fixtures.join("bulk-small"), fixtures.join("mos2"));
        let config = |validation: Vec<std::path::PathBuf>| {
            let json = serde_json::json!({"data": [&bulk], "validation": validation});
            TrainConfig::with_settings(Some(&json.to_string()), &[]).unwrap()
        };
        let ids = |pairs: &[RelaxationPair]| pairs.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        let quiet = &mut |_: &str| {};
        let (_, alone) = load_data(&config(vec![mos2.clone()]), quiet).unwrap();
        let (train, both) = load_data(&config(vec![mos2.clone(), bulk.clone()]), quiet).unwrap();
        let (_, bulk_alone) = load_data(&config(vec![bulk.clone()]), quiet).unwrap();
        // In the order given, every pair of each folder, the data untouched.
        let mut expected = ids(&alone);
        expected.extend(ids(&bulk_alone));
        assert_eq!(ids(&both), expected);
        assert_eq!(train.len(), bulk_alone.len());
        // A folder named twice would weigh its pairs twice: refused.
        let e = load_data(&config(vec![mos2.clone(), mos2]), quiet)
            .unwrap_err()
            .to_string();
        assert!(e.contains("appears twice"), "{e}");
    }

    #[test]
    fn split_seed_fixes_the_validation_pairs_whatever_the_seed() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pairs/bulk-small");
        let ids = |config: &TrainConfig| {
            let (_, validation) = load_data(config, &mut |_: &str| {}).unwrap();
            validation.iter().map(|p| p.id.clone()).collect::<Vec<_>>()
        };
        let base = TrainConfig {
            data: vec![fixture],
            validation_fraction: 0.25,
            seed: 1,
            ..TrainConfig::default()
        };
        let other_seed = TrainConfig {
            seed: 2,
            ..base.clone()
        };
        let pinned = TrainConfig {
            split_seed: Some(1),
            ..other_seed.clone()
        };
        assert_ne!(
            ids(&base),
            ids(&other_seed),
            "the seed alone moves the split"
        );
        assert_eq!(ids(&base), ids(&pinned));
    }
}
