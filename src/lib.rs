//! # e3relax
//!
//! Relaxed crystal structures in one forward pass of E3Relax, an
//! SE(3)-equivariant graph network whose nodes are atoms and the three
//! lattice vectors.
//!
//! Conventions everywhere: lengths in Å, lattice rows are lattice vectors,
//! Cartesian positions, atomic numbers for species.
//!
//! Layout: [`structure`] (the crystal and its validation), [`io`] (POSCAR,
//! extended XYZ, CIF), [`dataset`] (relaxation pairs), [`graph`] (periodic
//! neighbour graph), [`metrics`] (the paper's evaluation), [`runtime`]
//! (libtorch start-up and devices), [`model`] (the network in tch),
//! [`relax`] (the prediction API), [`mod@bench`] (benchmarks).

pub mod baseline;
pub mod bench;
pub mod dataset;
pub mod elements;
pub mod error;
pub mod evaluate;
pub mod ffi;
pub mod graph;
pub mod io;
pub mod linalg;
pub mod metrics;
pub mod model;
pub mod profile;
pub mod relax;
pub mod rng;
pub mod runtime;
pub mod structure;
pub mod symmetry;
pub mod train;
pub mod units;

pub use error::{Error, Result};
pub use structure::Structure;

/// Version of the C ABI (`e3relax_abi_version()`, `E3RELAX_ABI_VERSION`).
pub const ABI_VERSION: i32 = 1;

/// Version of this library.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
