//! The E3Relax network in tch, one module per block of docs/model.md.
//!
//! * [`config`]  hyper-parameters (`config.json`)
//! * [`radial`]  radial basis with envelope
//! * [`lattice_to_atom`] (step 2), [`message_passing`] (3),
//!   [`self_update`] (4), [`position_update`] (5), [`atom_to_lattice`] (6),
//!   [`lattice_update`] (7), composed with the geometry (1) and recording
//!   (8) in [`network`]
//! * [`element_features`]  physical descriptors of the elements
//!   ([`element_table`]) for the atom embedding
//! * [`surface_heads`]  energy, forces and virial of the input (an
//!   auxiliary training task on single-point labels)
//! * [`batch`]  crystals of mixed sizes as tensors
//! * [`checkpoint`]  model directories and the [`Model`] type
//! * [`authors`]  parameter names and the converter of the authors'
//!   checkpoints

pub mod architecture;
pub mod atom_to_lattice;
pub mod authors;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod element_features;
pub mod element_table;
pub mod lattice_to_atom;
pub mod lattice_update;
pub mod loss;
// The type a model directory holds; the module is named for it.
pub mod message_passing;
#[allow(clippy::module_inception)]
pub mod model;
pub mod network;
pub mod nn;
pub mod position_update;
pub mod radial;
pub mod self_update;
pub mod surface_heads;
pub mod virial_strain;

pub use architecture::Architecture;
pub use batch::Batch;
pub use config::ModelConfig;
pub use model::Model;
pub use network::{E3Relax, LayerOutput};

#[cfg(test)]
mod block_tests;
