//! Model directories (`config.json` + `model.safetensors`) of a
//! [`Model`]: loading, checking and writing them all-or-nothing. The authors' PyTorch checkpoints are
//! converted in [`super::authors`].

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Device, Tensor};

use crate::error::{Error, Result};
use crate::io::StagedWrites;
use crate::model::config::ModelConfig;
use crate::model::Model;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

impl Model {
    /// Loads a model directory onto `device` (f32), with the surface
    /// readers its `surface_trust.json` names, if any (see
    /// [`Model::with_surface_reader`]).
    pub fn load(dir: &Path, device: Device) -> Result<Model> {
        let mut model = Model::load_network(dir, device)?;
        for reader_dir in crate::trust::SurfaceCalibration::readers_of(dir)? {
            // A reader's own directory is read as a plain network
            // (with_surface_reader would drop readers of it anyway).
            let reader = Model::load_network(&reader_dir, device)?;
            model = model.with_surface_reader(reader, &reader_dir.display().to_string())?;
        }
        Ok(model)
    }

    /// A model directory's network alone (config.json + model.safetensors).
    fn load_network(dir: &Path, device: Device) -> Result<Model> {
        let shown = dir.display().to_string();
        if !dir.is_dir() {
            return Err(Error::Model(format!(
                "{shown}: not a model directory (expected {CONFIG_FILE} and {WEIGHTS_FILE})"
            )));
        }
        let config_path = dir.join(CONFIG_FILE);
        let text = crate::io::read_regular_text(&config_path, MAX_CONFIG_BYTES)?;
        let config = ModelConfig::from_json(&text).map_err(|e| match e {
            Error::Model(m) => Error::Model(format!("{}: {m}", config_path.display())),
            other => other,
        })?;
        let weights_path = dir.join(WEIGHTS_FILE);
        if !weights_path.exists() {
            return Err(Error::Model(format!(
                "{}: no such file",
                weights_path.display()
            )));
        }
        let tensors = read_safetensors(&weights_path)?;
        let source = weights_path.display().to_string();
        // Before anything is allocated for the config, its sizes must be
        // those of the weights: a config that disagrees fails here, not
        // after allocating a network of its own size.
        check_sizes_against_weights(&config, &tensors, &source)?;
        check_finite(&tensors, &source)?;
        let model = Model::new(&config, 0)?;
        model.assign(tensors, &source)?;
        model.to_device(device)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if
    /// needed); both files appear together, or neither changes.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let named: Vec<(String, Tensor)> = self
            .named_parameters()
            .into_iter()
            .map(|(k, t)| (k, t.to_device(Device::Cpu).contiguous()))
            .collect();
        let mut writes = StagedWrites::new();
        writes.create_folder(dir)?;
        writes.stage(&dir.join(CONFIG_FILE), self.config().to_json().into_bytes())?;
        writes.stage_with(&dir.join(WEIGHTS_FILE), |temporary| {
            Ok(Tensor::write_safetensors(&named, temporary)?)
        })?;
        writes.commit()
    }

    /// Replaces the model directory `dir` as a whole: the new one is
    /// written beside it and swapped in by two renames, so that at every
    /// moment `dir` holds a complete model, the old or the new (a kill
    /// between the renames leaves the old one as `.NAME.old`, which
    /// [`recover_replaced_dir`] puts back).
    pub fn save_replacing(&self, dir: &Path) -> Result<()> {
        let shown = dir.display().to_string();
        let (parent, name) = split_dir(dir)?;
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".new")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&shown, e))?;
        self.save(staging.path())?;
        let old = parent.join(format!(".{name}.old"));
        let io = |e| Error::io(&shown, e);
        if dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(io)?;
            }
            std::fs::rename(dir, &old).map_err(io)?;
            if let Err(e) = std::fs::rename(staging.path(), dir) {
                let _ = std::fs::rename(&old, dir);
                return Err(io(e));
            }
            let _ = staging.keep();
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(staging.path(), dir).map_err(io)?;
            let _ = staging.keep();
        }
        if let Ok(folder) = std::fs::File::open(&parent) {
            let _ = folder.sync_all();
        }
        Ok(())
    }
}

/// The parent folder and the name of a directory path.
fn split_dir(dir: &Path) -> Result<(std::path::PathBuf, String)> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::InvalidArgument(format!("{}: not a folder name", dir.display())))?;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok((parent, name))
}

/// Undoes what a kill during [`Model::save_replacing`] left: puts the old
/// directory back if the new one never arrived, and removes unfinished
/// new ones. Returns whether anything was cleaned.
pub fn recover_replaced_dir(dir: &Path) -> Result<bool> {
    let (parent, name) = split_dir(dir)?;
    let mut cleaned = false;
    let old = parent.join(format!(".{name}.old"));
    if old.is_dir() {
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&old, dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        }
        cleaned = true;
    }
    let unfinished_prefix = format!(".{name}.");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for entry in entries.flatten() {
            let entry_name = entry.file_name().to_string_lossy().into_owned();
            if entry_name.starts_with(&unfinished_prefix)
                && entry_name.ends_with(".new")
                && entry.path().is_dir()
            {
                let _ = std::fs::remove_dir_all(entry.path());
                cleaned = true;
            }
        }
    }
    Ok(cleaned)
}

/// The largest `config.json` a model directory may hold.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The largest weights file e3relax reads (far above any model's).
const MAX_WEIGHTS_BYTES: u64 = 1 << 34;

/// Reads every tensor of a safetensors file; a missing, truncated or
/// foreign file is an error naming the file.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let shown = path.display().to_string();
    if !path.exists() {
        return Err(Error::Model(format!("{shown}: no such file")));
    }
    // A regular file of bounded size: a FIFO or /dev/zero never reaches
    // the reader.
    crate::io::regular_file(path, MAX_WEIGHTS_BYTES)
        .map_err(|e| Error::Model(format!("{shown}: {e}")))?;
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| Error::Model(format!("{shown}: not a readable safetensors file ({e})")))?;
    Ok(tensors.into_iter().collect())
}

/// Checks the config's network sizes (F, T and the element table) against
/// the weights file, cheaply and before the network is built.
fn check_sizes_against_weights(
    config: &ModelConfig,
    tensors: &BTreeMap<String, Tensor>,
    source: &str,
) -> Result<()> {
    let embedding = "atom_embedding.weight";
    let expected = [config.num_elements, config.hidden_channels];
    match tensors.get(embedding).map(|t| t.size()) {
        None => {
            return Err(Error::Model(format!(
                "{source}: missing tensor '{embedding}' (not an e3relax weights file?)"
            )))
        }
        Some(shape) if shape != expected => {
            return Err(Error::Model(format!(
                "{source}: tensor '{embedding}' has shape {shape:?}, but config.json asks for [num_elements, hidden_channels] = {expected:?}"
            )))
        }
        Some(_) => {}
    }
    let layers_in_file = tensors
        .keys()
        .filter_map(|name| {
            name.strip_prefix("layers.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |t| t + 1);
    if layers_in_file != config.num_layers {
        return Err(Error::Model(format!(
            "{source}: the weights hold {layers_in_file} layers, but config.json asks for num_layers = {}",
            config.num_layers
        )));
    }
    Ok(())
}

/// Refuses weights holding NaN or infinity: they would turn every
/// prediction into NaN.
pub fn check_finite(tensors: &BTreeMap<String, Tensor>, source: &str) -> Result<()> {
    for (name, t) in tensors {
        if t.is_floating_point() && !bool::try_from(t.isfinite().all()).unwrap_or(false) {
            return Err(Error::Model(format!(
                "{source}: tensor '{name}' holds NaN or infinite values"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::network::ParameterGroup;

    /// The physical-prior group is exactly the volume prior's parameters,
    /// for either kind of prior, and empty without one.
    #[test]
    fn the_physical_prior_group_is_the_volume_priors_parameters() {
        for bond in [false, true] {
            let config = ModelConfig {
                volume_prior: true,
                bond_volume_prior: bond,
                ..ModelConfig::with_size(8, 2, 4)
            };
            let model = Model::new(&config, 1).unwrap();
            let group = model.parameter_names(ParameterGroup::PhysicalPrior);
            let by_name: std::collections::BTreeSet<String> = model
                .named_parameters()
                .into_keys()
                .filter(|n| n.starts_with("volume_prior."))
                .collect();
            assert_eq!(group, by_name);
            assert_eq!(group.len(), 2, "{group:?}");
        }
        let model = Model::new(&ModelConfig::with_size(8, 2, 4), 1).unwrap();
        assert!(model
            .parameter_names(ParameterGroup::PhysicalPrior)
            .is_empty());
    }

    /// A model directory whose surface_trust.json names a reader: loading
    /// it brings the reader along, the surface is read by the reader's heads
    /// (not the model's own; with two readers, their mean), copies keep
    /// them, and a reader that builds another graph is refused.
    #[test]
    fn a_surface_reader_named_by_the_model_directory_reads_the_surface() {
        use crate::model::batch::Batch;
        let config = ModelConfig {
            surface_heads: true,
            ..ModelConfig::with_size(8, 2, 4)
        };
        let dir = tempfile::tempdir().unwrap();
        let main = Model::new(&config, 1).unwrap();
        let reader = Model::new(&config, 2).unwrap();
        main.save(dir.path()).unwrap();
        reader.save(&dir.path().join("surface-reader")).unwrap();
        let a = 4.1;
        let rock_salt = crate::Structure::new(
            [
                [0.0, a / 2.0, a / 2.0],
                [a / 2.0, 0.0, a / 2.0],
                [a / 2.0, a / 2.0, 0.0],
            ],
            vec![[0.0; 3], [a / 2.0 + 0.07, 0.0, 0.03]],
            vec![11, 17],
        )
        .unwrap();
        let forces = |m: &Model| -> Vec<f64> {
            let batch = Batch::new(&[&rock_salt], m.config(), m.device(), m.kind(), false).unwrap();
            let _guard = tch::no_grad_guard();
            Vec::try_from(m.surface(&batch).unwrap().forces.flatten(0, -1)).unwrap()
        };
        let own = forces(&Model::load(dir.path(), tch::Device::Cpu).unwrap());
        assert_eq!(own, forces(&main));
        std::fs::write(
            dir.path().join(crate::trust::SURFACE_TRUST_FILE),
            r#"{"force": 0.6, "virial": 0.3, "structures": 5, "data": [], "reader": "surface-reader"}"#,
        )
        .unwrap();
        let loaded = Model::load(dir.path(), tch::Device::Cpu).unwrap();
        assert!(loaded.has_surface_reader());
        let read = forces(&loaded);
        assert_eq!(read, forces(&reader));
        assert_ne!(read, own);
        assert_eq!(forces(&loaded.duplicate().unwrap()), read);
        // Two readers: the surface is their mean (the slow, obvious
        // average of the two readers read alone).
        let second = Model::new(&config, 4).unwrap();
        second.save(&dir.path().join("surface-reader-2")).unwrap();
        std::fs::write(
            dir.path().join(crate::trust::SURFACE_TRUST_FILE),
            r#"{"force": 0.6, "virial": 0.3, "structures": 5, "data": [], "reader": ["surface-reader", "surface-reader-2"]}"#,
        )
        .unwrap();
        let both = Model::load(dir.path(), tch::Device::Cpu).unwrap();
        assert_eq!(both.surface_reader_count(), 2);
        let mean: Vec<f64> = forces(&reader)
            .iter()
            .zip(forces(&second))
            .map(|(a, b)| (a + b) / 2.0)
            .collect();
        let averaged = forces(&both);
        assert_ne!(averaged, read);
        for (x, y) in averaged.iter().zip(&mean) {
            assert!((x - y).abs() < 1e-6, "{averaged:?} against {mean:?}");
        }
        assert_eq!(forces(&both.duplicate().unwrap()), averaged);
        assert_eq!(forces(&both.without_surface_readers()), own);
        std::fs::write(
            dir.path().join(crate::trust::SURFACE_TRUST_FILE),
            r#"{"force": 0.6, "virial": 0.3, "structures": 5, "data": [], "reader": "surface-reader"}"#,
        )
        .unwrap();
        // The relaxation itself is the model's own.
        let batch = Batch::new(
            &[&rock_salt],
            &config,
            tch::Device::Cpu,
            loaded.kind(),
            false,
        )
        .unwrap();
        let _guard = tch::no_grad_guard();
        let last = |m: &Model| -> Vec<f64> {
            Vec::try_from(
                m.network
                    .forward(&batch)
                    .last()
                    .unwrap()
                    .positions
                    .flatten(0, -1),
            )
            .unwrap()
        };
        assert_eq!(last(&loaded), last(&main));
        // A reader with another graph radius cannot read the model's
        // batch, and one without heads reads nothing.
        let other_graph = ModelConfig {
            graph_radius: 5.0,
            ..config.clone()
        };
        for (reader_config, why) in [
            (other_graph, "must build the model's graph"),
            (
                ModelConfig::with_size(8, 2, 4),
                "needs energy-surface heads",
            ),
        ] {
            Model::new(&reader_config, 3)
                .unwrap()
                .save_replacing(&dir.path().join("surface-reader"))
                .unwrap();
            let error = Model::load(dir.path(), tch::Device::Cpu)
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{error}");
        }
    }
}
