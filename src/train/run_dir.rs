//! A run's folder: checkpoints (tensor files by step, `state.json` as the
//! commit point), the metrics logs, resuming, and the clean-up after a
//! kill.

use std::path::{Path, PathBuf};

use tch::Tensor;

use super::optimizer::{AdamW, Ema};
use super::{RoundLog, TrainConfig, TrainState};
use crate::error::{Error, Result};
use crate::model::checkpoint::read_safetensors;
use crate::model::Model;
use crate::rng::SplitMix64;

pub(super) fn checkpoint_dir(output: &Path) -> PathBuf {
    output.join("checkpoint")
}

/// Writes the checkpoint: tensor files named by step, then `state.json`
/// by rename (the commit point), then removes the previous step's files.
/// The metrics logs follow the committed state.
pub(super) fn save_checkpoint(
    output: &Path,
    model: &Model,
    ema: &Ema,
    opt: &AdamW,
    state: &TrainState,
) -> Result<()> {
    let dir = checkpoint_dir(output);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let step = state.files_step;
    let cpu = |named: Vec<(String, Tensor)>| -> Vec<(String, Tensor)> {
        named
            .into_iter()
            .map(|(k, t)| (k, t.detach().to_device(tch::Device::Cpu).contiguous()))
            .collect()
    };
    // The step's tensor files (and the config) are complete and synced
    // before state.json, the commit point, names them.
    let mut writes = crate::io::StagedWrites::new();
    let mut stage = |name: &str, named: Vec<(String, Tensor)>| -> Result<()> {
        let path = dir.join(format!("{name}-{step}.safetensors"));
        let named = cpu(named);
        writes.stage_with(&path, |temporary| {
            Ok(Tensor::write_safetensors(&named, temporary)?)
        })
    };
    stage("weights", model.named_parameters().into_iter().collect())?;
    stage(
        "ema",
        ema.shadow
            .iter()
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect(),
    )?;
    stage("optimizer", opt.state_tensors())?;
    writes.stage(
        &dir.join("config.json"),
        model.config().to_json().into_bytes(),
    )?;
    writes.commit()?;
    let json = serde_json::to_string_pretty(state).expect("state serialises");
    crate::io::write_atomically(&dir.join("state.json"), json.as_bytes())?;
    write_logs(output, &state.rounds)?;
    // Older files are no longer referenced.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".safetensors") && !name.ends_with(&format!("-{step}.safetensors")) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// A new run must not silently replace another: refuses an `output` that
/// holds a run's files (a checkpoint, a best model, its logs or config).
pub(super) fn refuse_existing_run(output: &Path) -> Result<()> {
    let found = ["checkpoint", "best", "metrics.csv", "train_config.json"]
        .into_iter()
        .find(|name| std::fs::symlink_metadata(output.join(name)).is_ok());
    match found {
        Some(name) => Err(Error::InvalidArgument(format!(
            "{} holds a training run already ({name}); continue it with --resume (resume=True), replace it with --overwrite (\"overwrite\": true), or choose another output folder",
            output.display()
        ))),
        None => Ok(()),
    }
}

/// The model and state a run starts from: the checkpoint's when resuming,
/// else a new model (or the `init_from` one) and a fresh state.
pub(super) fn model_and_state(
    config: &TrainConfig,
    resume: bool,
    device: tch::Device,
) -> Result<(Model, TrainState)> {
    let ckpt = checkpoint_dir(&config.output);
    Ok(if resume {
        let state_path = ckpt.join("state.json");
        let text = std::fs::read_to_string(&state_path).map_err(|e| {
            Error::InvalidArgument(format!("cannot resume: {}: {e}", state_path.display()))
        })?;
        let state: TrainState = serde_json::from_str(&text).map_err(|e| {
            Error::InvalidArgument(format!("cannot resume: {}: {e}", state_path.display()))
        })?;
        let model_config = crate::model::ModelConfig::from_json(
            &std::fs::read_to_string(ckpt.join("config.json"))
                .map_err(|e| Error::io(ckpt.join("config.json").display().to_string(), e))?,
        )?;
        let model = Model::new(&model_config, 0)?;
        let weights = ckpt.join(format!("weights-{}.safetensors", state.files_step));
        model.assign(read_safetensors(&weights)?, &weights.display().to_string())?;
        (model.to_device(device)?, state)
    } else {
        let model = match &config.init_from {
            Some(dir) => Model::load(dir, tch::Device::Cpu)?,
            None => Model::new(
                config.model.as_ref().expect("validated"),
                config.seed as i64,
            )?,
        };
        let state = TrainState {
            epoch: 0,
            step: 0,
            lr: config.lr,
            rng: SplitMix64::new(config.seed),
            best_coordinate_mae: f64::INFINITY,
            rounds_since_best: 0,
            rounds_since_lr_change: 0,
            elapsed_seconds: 0.0,
            files_step: 0,
            rounds: Vec::new(),
        };
        (model.to_device(device)?, state)
    })
}

/// Loads the optimizer moments and the EMA weights of a checkpoint.
pub(super) fn restore_optimizer(
    ckpt: &Path,
    state: &TrainState,
    opt: &mut AdamW,
    ema: &Ema,
) -> Result<()> {
    opt.load_state(&read_safetensors(
        &ckpt.join(format!("optimizer-{}.safetensors", state.files_step)),
    )?)?;
    opt.step = state.step;
    let ema_path = ckpt.join(format!("ema-{}.safetensors", state.files_step));
    let shadow = read_safetensors(&ema_path)?;
    tch::no_grad(|| -> Result<()> {
        for (k, t) in &ema.shadow {
            let v = shadow
                .get(k)
                .ok_or_else(|| Error::Model(format!("{}: missing '{k}'", ema_path.display())))?;
            t.shallow_clone().f_copy_(v)?;
        }
        Ok(())
    })
}

/// Rewrites `metrics.csv` and `metrics.jsonl` from the committed rounds
/// (each file atomically): a round appears only once its checkpoint is
/// on disk, and a resumed run never repeats a row.
pub(super) fn write_logs(output: &Path, rounds: &[RoundLog]) -> Result<()> {
    let mut csv = String::from("epoch,step,lr,train_loss,val_coordinate_mae,val_shape_deviation,val_volume_error,dummy_coordinate_mae,dummy_shape_deviation,dummy_volume_error,seconds\n");
    let mut jsonl = String::new();
    for round in rounds {
        let v = &round.validation;
        let d = &round.dummy;
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{:.1}\n",
            round.epoch,
            round.step,
            round.lr,
            round.train_loss,
            v.coordinate_mae,
            v.shape_deviation,
            v.volume_error,
            d.coordinate_mae,
            d.shape_deviation,
            d.volume_error,
            round.seconds
        ));
        jsonl.push_str(&serde_json::to_string(round).expect("round serialises"));
        jsonl.push('\n');
    }
    let mut writes = crate::io::StagedWrites::new();
    writes.stage(&output.join("metrics.csv"), csv.into_bytes())?;
    writes.stage(&output.join("metrics.jsonl"), jsonl.into_bytes())?;
    writes.commit()
}

/// Before a resumed run continues: removes the temporary files a kill
/// left behind, restores `best/` if the kill came in the middle of its
/// replacement, and takes the rounds of a checkpoint written before
/// `state.json` kept them from `metrics.jsonl` (only the committed ones).
pub(super) fn clean_after_interruption(output: &Path, state: &mut TrainState) -> Result<()> {
    for folder in [
        output.to_path_buf(),
        checkpoint_dir(output),
        output.join("best"),
    ] {
        crate::io::output::remove_temporary_files(&folder);
    }
    crate::model::checkpoint::recover_replaced_dir(&output.join("best"))?;
    if state.rounds.is_empty() && state.epoch > 0 {
        let jsonl = output.join("metrics.jsonl");
        if let Ok(text) = std::fs::read_to_string(&jsonl) {
            state.rounds = text
                .lines()
                .filter_map(|l| serde_json::from_str::<RoundLog>(l).ok())
                .filter(|r| r.epoch < state.epoch)
                .collect();
        }
    }
    write_logs(output, &state.rounds)
}
