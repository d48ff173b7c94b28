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
//! (libtorch start-up and devices), [`model`] (the network in tch, described
//! in `docs/model.md`), [`relax`] (the prediction API), [`train`],
//! [`symmetry`], [`baseline`] (the volume baseline), [`profile`] (stage
//! timing). The main types are re-exported here: [`Relaxer`],
//! [`RelaxOptions`], [`DeviceRequest`], [`Model`], [`ModelConfig`],
//! [`Format`], [`Structure`], [`Error`].
//!
//! ```no_run
//! let relaxer = e3relax::Relaxer::load("models/default", e3relax::DeviceRequest::Cpu)?;
//! let crystal = e3relax::io::read_file("POSCAR", None)?.remove(0);
//! let relaxed = relaxer.relax(&crystal)?;
//! # Ok::<(), e3relax::Error>(())
//! ```

/// `Deserialize` through `FromStr`, so that an option reads the same from
/// the command line, the C ABI's JSON options and the Python package.
macro_rules! deserialize_from_str {
    ($type:ty) => {
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod baseline;
pub mod dataset;
pub mod elements;
pub mod ensemble;
pub mod error;
pub mod evaluate;
/// The C ABI (`include/e3relax.h`): exported symbols of the shared
/// library, not part of the Rust API (Rust tests declare it as C code does,
/// `tests/common/c_decl.rs`).
mod ffi;
pub mod frozen;
pub mod graph;
pub mod io;
pub mod linalg;
pub mod line_search;
pub mod metrics;
pub mod model;
pub mod profile;
pub mod relax;
pub mod rng;
pub mod runtime;
pub mod separation;
pub mod structure;
pub mod symmetry;
pub mod train;
pub mod trust;
pub mod units;

pub use error::{Error, Result};
pub use io::Format;
pub use model::{Model, ModelConfig};
pub use relax::{RelaxOptions, Relaxation, Relaxer};
pub use runtime::DeviceRequest;
pub use structure::Structure;

/// The README's Rust example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

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
