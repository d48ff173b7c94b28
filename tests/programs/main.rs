//! Tests of the programs and interfaces users run: the CLI, the C ABI, C/C++/Fortran programs, the installed package, LAMMPS and Quantum ESPRESSO: one binary.
//!
//! Each module was its own test binary; together they link libtorch once.

#[path = "../common/mod.rs"]
mod common;

mod c_abi;
mod c_programs;
mod cli;
mod lammps;
mod outputs;
mod packaging;
mod qe;
