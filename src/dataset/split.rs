//! The training / validation split of a training run: by `split_key`
//! groups (prototypes, by default) or a validation folder, plus the pairs
//! only ever trained on (`train_only_data`) and those left out of training
//! (`exclude_from_training`). Training and `e3relax eval --validation-of`
//! both take the split from here, so they always agree.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use super::{split_by_group, split_group, Dataset, RelaxationPair};
use crate::error::{Error, Result};

/// What decides a split (a training config's fields; see `TrainConfig`).
#[derive(Debug, Clone)]
pub struct SplitSpec<'a> {
    pub data: &'a [PathBuf],
    /// Validation folders; empty: hold out `validation_fraction` by groups.
    pub validation: &'a [PathBuf],
    pub validation_fraction: f64,
    pub split_key: &'a str,
    pub split_seed: u64,
    pub train_only_data: &'a [PathBuf],
    pub exclude_from_training: &'a BTreeMap<String, Vec<String>>,
}

/// The pairs of each side.
#[derive(Debug)]
pub struct DataSplit {
    pub train: Vec<RelaxationPair>,
    pub validation: Vec<RelaxationPair>,
}

impl DataSplit {
    /// Loads and splits the pairs (the same split every time for the same
    /// spec) and reports skipped ones.
    pub fn load(spec: &SplitSpec, log: &mut dyn FnMut(&str)) -> Result<Self> {
        let pairs = load_folders(spec.data, log)?;
        let (mut train, validation) = match spec.validation {
            [] => split_by_group(
                pairs,
                spec.split_key,
                spec.validation_fraction,
                spec.split_seed,
            ),
            folders => (pairs, validation_folders(folders, log)?),
        };
        if !spec.train_only_data.is_empty() {
            let group = |p: &RelaxationPair| split_group(p, spec.split_key);
            let held_out: HashSet<String> = validation.iter().map(group).collect();
            let extra = load_folders(spec.train_only_data, log)?;
            let offered = extra.len();
            let mut seen: HashSet<String> = train
                .iter()
                .chain(&validation)
                .map(|p| p.id.clone())
                .collect();
            let mut left_out = 0;
            for pair in extra {
                if held_out.contains(&group(&pair)) {
                    left_out += 1;
                    continue;
                }
                if !seen.insert(pair.id.clone()) {
                    return Err(Error::InvalidArgument(format!(
                        "train_only_data: pair id {} appears twice",
                        pair.id
                    )));
                }
                train.push(pair);
            }
            log(&format!(
            "train_only_data: {} of {offered} pairs added to the training side ({left_out} in validation groups left out)",
            offered - left_out
        ));
        }
        if !spec.exclude_from_training.is_empty() {
            let excluded = |p: &RelaxationPair| {
                spec.exclude_from_training.iter().any(|(key, values)| {
                    p.unrelaxed
                        .info_value(key)
                        .is_some_and(|v| values.iter().any(|x| x == v))
                })
            };
            let before = train.len();
            train.retain(|p| !excluded(p));
            log(&format!(
                "exclude_from_training: {} training pairs left out ({} kept)",
                before - train.len(),
                train.len()
            ));
        }
        if train.is_empty() || validation.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "training needs pairs on both sides: {} training, {} validation",
                train.len(),
                validation.len()
            )));
        }
        Ok(DataSplit { train, validation })
    }
}

/// The pairs of the validation folders, in order (loaded as the data
/// folders are); a pair id in two of them would be counted twice, so it is
/// refused.
fn validation_folders(dirs: &[PathBuf], log: &mut dyn FnMut(&str)) -> Result<Vec<RelaxationPair>> {
    let pairs = load_folders(dirs, log)?;
    let mut seen = HashSet::new();
    if let Some(pair) = pairs.iter().find(|p| !seen.insert(&p.id)) {
        return Err(Error::InvalidArgument(format!(
            "validation: pair id {} appears twice",
            pair.id
        )));
    }
    Ok(pairs)
}

/// The pairs of dataset folders, in order, logging what was skipped.
fn load_folders(dirs: &[PathBuf], log: &mut dyn FnMut(&str)) -> Result<Vec<RelaxationPair>> {
    let mut pairs = Vec::new();
    for dir in dirs {
        let d = Dataset::from_dir(dir)?;
        for s in &d.skipped {
            log(&format!(
                "{}: skipped pair {}: {}",
                dir.display(),
                s.id,
                s.reason
            ));
        }
        if !d.skipped_frames.is_empty() {
            log(&format!(
                "{}: {} relaxation frames skipped (first: {}: {})",
                dir.display(),
                d.skipped_frames.len(),
                d.skipped_frames[0].id,
                d.skipped_frames[0].reason
            ));
        }
        pairs.extend(d.pairs);
    }
    Ok(pairs)
}
