//! Subcommands of the `e3relax` tool. Each returns a library error, which
//! `main` prints as one line.

mod bench;
mod calibrate;
mod convert;
mod eval;
mod import;
mod info;
mod measure;
#[cfg(feature = "mpi")]
mod mpi;
mod progress;
mod relax;
mod shard;
mod train;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use e3relax::io::Format;
use e3relax::units::LengthUnit;
use e3relax::{Error, Result};

#[derive(Parser, Debug)]
#[command(
    name = "e3relax",
    version,
    about = "Relaxed crystal structures in one forward pass of an E(3)-equivariant graph network",
    long_about = "e3relax predicts the relaxed lattice and atomic positions of a crystal in one \
forward pass of E3Relax, so that a DFT or MD optimiser starts from a much better geometry.\n\n\
Structure files: VASP POSCAR/CONTCAR (*.vasp, POSCAR*, CONTCAR*), extended XYZ (*.xyz, \
*.extxyz, multi-frame) and CIF (*.cif); any of them may be gzip-compressed (*.gz). \
Lengths are in Å unless an option says otherwise."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Predict relaxed structures with an E3Relax model
    Relax(relax::RelaxArgs),
    /// Train or fine-tune a model on relaxation pairs
    Train(train::TrainArgs),
    /// Evaluate a model on relaxation pairs (the paper's table, with the Dummy baseline)
    Eval(eval::EvalArgs),
    /// Measure the surface trust's scales of a model on relaxed crystals it
    /// was not trained on (writes MODEL/surface_trust.json)
    Calibrate(calibrate::CalibrateArgs),
    /// Summarise structures: formula, cell, volume, density, neighbour counts
    Info(info::InfoArgs),
    /// Convert structure files between POSCAR, extended XYZ and CIF
    Convert(convert::ConvertArgs),
    /// Measure performance (neighbour graph, optionally against pymatgen)
    Bench(bench::BenchArgs),
    /// Convert the authors' PyTorch checkpoint (as safetensors) into a model directory
    #[command(name = "import-pytorch")]
    ImportPytorch(import::ImportArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Relax(args) => relax::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => {
            e3relax::runtime::apply_default_threads()?;
            eval::run(args)
        }
        Command::Calibrate(args) => {
            e3relax::runtime::apply_default_threads()?;
            calibrate::run(args)
        }
        Command::Info(args) => info::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Bench(args) => {
            e3relax::runtime::apply_default_threads()?;
            bench::run(args)
        }
        Command::ImportPytorch(args) => import::run(args),
    }
}

/// Parses an optional `--format` value.
pub(crate) fn format_option(name: &Option<String>) -> Result<Option<Format>> {
    name.as_deref().map(str::parse).transpose()
}

/// Parses a `--unit` value.
pub(crate) fn unit_option(name: &str) -> Result<LengthUnit> {
    name.parse()
}

/// Refuses an output that is one of the inputs (after links), unless the
/// user asked for it.
pub fn refuse_overwriting_inputs(output: &Path, inputs: &[PathBuf], allowed: bool) -> Result<()> {
    if allowed {
        return Ok(());
    }
    match inputs
        .iter()
        .find(|input| e3relax::io::output::same_file(output, input))
    {
        Some(input) => Err(Error::InvalidArgument(format!(
            "{}: this output is the input {}; give another output or --overwrite-input",
            output.display(),
            input.display()
        ))),
        None => Ok(()),
    }
}
