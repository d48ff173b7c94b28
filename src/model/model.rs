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
    /// Networks whose energy-surface heads read the inputs in this model's
    /// place (the surface trust and the line search), their readings
    /// averaged, where the model directory names them
    /// (`surface_trust.json`: `reader`): a network trained on the
    /// labeller's single points alone reads them more truly than heads
    /// that share a trunk with the relaxation, and the mean of several
    /// independently trained ones more truly than one.
    surface_readers: Vec<Model>,
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
        Ok(Model {
            vs,
            network,
            surface_readers: Vec::new(),
        })
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

    /// An independent copy (its own parameters, same device and values,
    /// its own copies of the surface readers), for running predictions on
    /// another thread.
    pub fn duplicate(&self) -> Result<Model> {
        let mut copy = Model::new(self.config(), 0)?.to_device(self.device())?;
        copy.assign(self.named_parameters(), "model copy")?;
        copy.surface_readers = self
            .surface_readers
            .iter()
            .map(Model::duplicate)
            .collect::<Result<_>>()?;
        Ok(copy)
    }

    /// Moves the parameters (and the surface readers') to a device.
    pub fn to_device(mut self, device: Device) -> Result<Model> {
        if device != self.vs.device() {
            self.vs.set_device(device);
        }
        self.surface_readers = std::mem::take(&mut self.surface_readers)
            .into_iter()
            .map(|reader| reader.to_device(device))
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// This model with `reader`'s energy-surface heads reading its inputs,
    /// beside the readers it has (see [`Model::surface`]). The reader must
    /// have heads and take the same batches (graph, element table,
    /// wrapping), since it reads the batch this model was given; `source`
    /// names it in errors. Readers of the reader are not followed (dropped
    /// here, so no caller keeps them).
    pub fn with_surface_reader(mut self, mut reader: Model, source: &str) -> Result<Model> {
        reader.surface_readers.clear();
        if !reader.config().surface_heads {
            return Err(Error::Model(format!(
                "{source}: a surface reader needs energy-surface heads (config.json: surface_heads)"
            )));
        }
        let (ours, theirs) = (self.config(), reader.config());
        if ours.graph_settings() != theirs.graph_settings()
            || ours.wrap_positions != theirs.wrap_positions
            || ours.max_atomic_number() != theirs.max_atomic_number()
        {
            return Err(Error::Model(format!(
                "{source}: a surface reader must build the model's graph (graph_radius, max_neighbors, symmetric_graph, shell_tolerance, wrap_positions and num_elements as in the model's config.json)"
            )));
        }
        let reader = reader.to_device(self.device())?;
        self.surface_readers.push(reader);
        Ok(self)
    }

    /// This model reading the surface with its own heads (its surface
    /// readers dropped).
    pub fn without_surface_readers(mut self) -> Model {
        self.surface_readers.clear();
        self
    }

    /// Whether this model can read the energy surface of its inputs: its
    /// own heads or a surface reader's.
    pub fn reads_surface(&self) -> bool {
        !self.surface_readers.is_empty() || self.config().surface_heads
    }

    /// Whether the surface is read by separate reader networks.
    pub fn has_surface_reader(&self) -> bool {
        !self.surface_readers.is_empty()
    }

    /// How many reader networks read the surface (0: the model's own
    /// heads, if it has them).
    pub fn surface_reader_count(&self) -> usize {
        self.surface_readers.len()
    }

    /// The energy-surface heads on the input as given (the readers' mean
    /// where there are readers); `None` for a model that cannot read the
    /// surface.
    pub fn surface(
        &self,
        batch: &crate::model::batch::Batch,
    ) -> Option<crate::model::surface_heads::SurfacePrediction> {
        let Some((first, others)) = self.surface_readers.split_first() else {
            return self.network.surface(batch);
        };
        let mut sum = first.network.surface(batch)?;
        for reader in others {
            let reading = reader.network.surface(batch)?;
            sum.energy_per_atom += reading.energy_per_atom;
            sum.forces += reading.forces;
            sum.virial_per_atom += reading.virial_per_atom;
        }
        let count = self.surface_readers.len() as f64;
        Some(crate::model::surface_heads::SurfacePrediction {
            energy_per_atom: sum.energy_per_atom / count,
            forces: sum.forces / count,
            virial_per_atom: sum.virial_per_atom / count,
        })
    }
}
