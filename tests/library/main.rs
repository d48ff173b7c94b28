//! Library-level integration tests (the Rust API on libtorch): one binary.
//!
//! Each module was its own test binary; together they link libtorch once.

#[path = "../common/mod.rs"]
mod common;

mod checkpoint;
mod fixtures_ase_pymatgen;
mod gradients;
mod invariance;
mod network;
mod reference;
mod separation;
mod training;
