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

/// Version of the C ABI (`e3relax_abi_version()`, `E3RELAX_ABI_VERSION`),
/// from `[package.metadata.e3relax]` in Cargo.toml.
pub const ABI_VERSION: i32 = parse_decimal(env!("E3RELAX_ABI_VERSION"));

/// A decimal number at compile time (build.rs hands versions over as text).
const fn parse_decimal(text: &str) -> i32 {
    let bytes = text.as_bytes();
    let mut value = 0;
    let mut k = 0;
    while k < bytes.len() {
        assert!(bytes[k].is_ascii_digit(), "not a decimal number");
        value = value * 10 + (bytes[k] - b'0') as i32;
        k += 1;
    }
    value
}

/// Version of this library.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
