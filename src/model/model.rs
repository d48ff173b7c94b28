//! The [`Model`] type: a network with its parameters and config, on one
//! device. Reading and writing model directories is in
//! [`super::checkpoint`].

use std::collections::BTreeMap;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::config::ModelConfig;
use crate::model::network::E3Relax;

/// A network with its parameters, on one device.
#[derive(Debug)]
pub struct Model {
    pub vs: VarStore,
    pub network: E3Relax,
}

impl Model {
    /// A freshly initialised model (CPU, f32) with a seeded RNG.
    pub fn new(config: &ModelConfig, seed: i64) -> Result<Model> {
        config.validate()?;
        // libtorch's generator is global: hold a lock from seeding to the last
        // draw so that concurrent constructions stay reproducible.
        static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _lock = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // Seeding asks libtorch whether CUDA exists, and libtorch remembers
        // the first answer: load the CUDA backend first, or a model created
        // before the device is resolved leaves CUDA unusable for the process.
        crate::runtime::load_cuda_backend();
        tch::manual_seed(seed);
        let vs = VarStore::new(Device::Cpu);
        let network = E3Relax::new(&vs.root(), config);
        Ok(Model { vs, network })
    }

    pub fn config(&self) -> &ModelConfig {
        self.network.config()
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn kind(&self) -> Kind {
        self.network.kind()
    }

    /// The names of a group's parameters (the group is declared where its
    /// parameters are created; names are matched by storage).
    pub fn parameter_names(
        &self,
        group: crate::model::network::ParameterGroup,
    ) -> std::collections::BTreeSet<String> {
        let members: Vec<usize> = self
            .network
            .group(group)
            .iter()
            .map(|t| t.data_ptr() as usize)
            .collect();
        self.named_parameters()
            .into_iter()
            .filter(|(_, t)| members.contains(&(t.data_ptr() as usize)))
            .map(|(name, _)| name)
            .collect()
    }

    /// Every parameter, sorted by name.
    pub fn named_parameters(&self) -> BTreeMap<String, Tensor> {
        self.vs.variables().into_iter().collect()
    }

    /// Copies named tensors into the parameters. Every parameter must be
    /// present with its exact shape, and nothing else may be: the error
    /// names the first (alphabetical) mismatch. `source` names the origin.
    pub fn assign(&self, tensors: BTreeMap<String, Tensor>, source: &str) -> Result<()> {
        self.assign_naming(tensors, source, &|name| name.to_string())
    }

    /// [`Model::assign`], with errors naming tensors as `shown_name` maps
    /// our parameter names (the converter shows the authors' names).
    pub(super) fn assign_naming(
        &self,
        tensors: BTreeMap<String, Tensor>,
        source: &str,
        shown_name: &dyn Fn(&str) -> String,
    ) -> Result<()> {
        let expected = self.named_parameters();
        for (ours, param) in &expected {
            let name = shown_name(ours);
            match tensors.get(ours) {
                None => {
                    return Err(Error::Model(format!(
                        "{source}: missing tensor '{name}' (expected shape {:?})",
                        param.size()
                    )))
                }
                Some(t) if t.size() != param.size() => {
                    return Err(Error::Model(format!(
                        "{source}: tensor '{name}' has shape {:?}, expected {:?}",
                        t.size(),
                        param.size()
                    )))
                }
                Some(t) if !t.is_floating_point() => {
                    return Err(Error::Model(format!(
                        "{source}: tensor '{name}' is {:?}, not floating point",
                        t.kind()
                    )))
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = tensors.keys().find(|k| !expected.contains_key(*k)) {
            return Err(Error::Model(format!(
                "{source}: unexpected tensor '{extra}' (not a parameter of this config)"
            )));
        }
        tch::no_grad(|| -> Result<()> {
            for (name, param) in &expected {
                let value = tensors[name]
                    .to_kind(param.kind())
                    .to_device(param.device());
                param.shallow_clone().f_copy_(&value)?;
            }
            Ok(())
        })
    }

    /// An independent copy (its own parameters, same device and values),
    /// for running predictions on another thread.
    pub fn duplicate(&self) -> Result<Model> {
        let copy = Model::new(self.config(), 0)?.to_device(self.device())?;
        copy.assign(self.named_parameters(), "model copy")?;
        Ok(copy)
    }

    /// Moves the parameters to a device.
    pub fn to_device(mut self, device: Device) -> Result<Model> {
        if device != self.vs.device() {
            self.vs.set_device(device);
        }
        Ok(self)
    }
}
