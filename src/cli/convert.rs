use std::path::PathBuf;

use clap::Args;

use e3relax::structure::Structure;
use e3relax::units::LengthUnit;
use e3relax::{io, Result};

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Input structure file (all frames are read)
    input: PathBuf,
    /// Output structure file (format from the extension; `-` for standard
    /// output with --format)
    output: PathBuf,
    /// Format of the input (poscar, extxyz, cif) instead of guessing from the name
    #[arg(long = "from", value_name = "FORMAT")]
    input_format: Option<String>,
    /// Format of the output (poscar, extxyz, cif) instead of guessing from the name
    #[arg(long = "format", visible_alias = "to", value_name = "FORMAT")]
    output_format: Option<String>,
    /// Length unit of the input file's numbers (angstrom or bohr); output is in Å
    #[arg(long, default_value = "angstrom", value_name = "UNIT")]
    input_unit: String,
    /// Allow the output to replace the input file
    #[arg(long)]
    overwrite_input: bool,
}

/// Rescales lengths given in `unit` to Å.
fn to_angstrom(mut s: Structure, unit: LengthUnit) -> Structure {
    let f = unit.in_angstrom();
    for v in s.lattice.iter_mut().flatten() {
        *v *= f;
    }
    for v in s.positions.iter_mut().flatten() {
        *v *= f;
    }
    s
}

pub fn run(args: ConvertArgs) -> Result<()> {
    let unit = super::unit_option(&args.input_unit)?;
    let input_format = super::format_option(&args.input_format)?;
    let output_format = super::format_option(&args.output_format)?;
    let frames = io::read_file(&args.input, input_format)?;
    let frames: Vec<Structure> = frames.into_iter().map(|s| to_angstrom(s, unit)).collect();
    super::refuse_overwriting_inputs(
        &args.output,
        std::slice::from_ref(&args.input),
        args.overwrite_input,
    )?;
    io::write_file(&args.output, &frames, output_format)?;
    eprintln!(
        "wrote {} structure(s) to {}",
        frames.len(),
        args.output.display()
    );
    Ok(())
}
