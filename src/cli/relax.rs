use std::path::{Path, PathBuf};

use clap::Args;

use e3relax::io::{self, Format};
use e3relax::relax::{RelaxOptions, Relaxer};
use e3relax::runtime::DeviceRequest;
use e3relax::{Error, Result, Structure};

#[derive(Args, Debug)]
pub struct RelaxArgs {
    /// Structure file (all frames), or a folder of structure files
    input: PathBuf,
    /// Output file (format from its name), or a folder when INPUT is a folder
    #[arg(short, long)]
    output: PathBuf,
    /// Model directory (config.json + model.safetensors) [default: the shipped model]
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// cpu, cuda, cuda:K or auto
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Structures per forward pass
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Keep the input lattice and only move atoms (defects, slabs)
    #[arg(long)]
    fixed_cell: bool,
    /// Tolerance (Å) of the search for the input's space group, which the
    /// prediction keeps
    #[arg(long, default_value_t = e3relax::relax::DEFAULT_SYMMETRY_TOLERANCE, value_name = "Å")]
    symprec: f64,
    /// Return the network's raw output, without keeping the input's symmetry
    #[arg(long)]
    no_symmetrize: bool,
    /// Also write every layer's structure to this multi-frame file
    #[arg(long, value_name = "FILE")]
    trajectory: Option<PathBuf>,
    /// Format of the input files (poscar, extxyz, cif) instead of guessing
    #[arg(long = "from", value_name = "FORMAT")]
    input_format: Option<String>,
    /// Format of the output (poscar, extxyz, cif) instead of guessing
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Leave out structures the model cannot take (overlapping atoms,
    /// unknown elements, ...), naming each on stderr, instead of stopping;
    /// files that cannot be parsed still stop the run
    #[arg(long)]
    skip_invalid: bool,
}

/// The model used when `--model` is not given: `$E3RELAX_MODEL`, else
/// `models/default` of the source tree this binary was built from.
pub fn default_model_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("E3RELAX_MODEL") {
        return Ok(PathBuf::from(dir));
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    if built.is_dir() {
        return Ok(built);
    }
    Err(Error::InvalidArgument(
        "no --model given, E3RELAX_MODEL is not set and the shipped models/default is missing"
            .into(),
    ))
}

/// Structure files of a folder, sorted by name (unknown extensions skipped).
fn folder_files(dir: &Path, format: Option<Format>) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", dir.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && (format.is_some() || Format::from_path(p).is_ok()))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no structure files in this folder",
            dir.display()
        )));
    }
    Ok(files)
}

pub fn run(args: RelaxArgs) -> Result<()> {
    let input_format = super::format_option(&args.input_format)?;
    let output_format = super::format_option(&args.format)?;
    let device = DeviceRequest::parse(&args.device)?;
    // Read everything first: a bad input fails before the model is loaded.
    let read = |p: &Path| {
        if args.skip_invalid {
            // Validated one by one below, against the model.
            io::read_file_unvalidated(p, input_format)
        } else {
            io::read_file(p, input_format)
        }
    };
    let mut jobs: Vec<(PathBuf, Vec<Structure>)> = if args.input.is_dir() {
        folder_files(&args.input, input_format)?
            .into_iter()
            .map(|p| read(&p).map(|s| (p, s)))
            .collect::<Result<_>>()?
    } else {
        vec![(args.input.clone(), read(&args.input)?)]
    };
    let model_dir = match &args.model {
        Some(dir) => dir.clone(),
        None => default_model_dir()?,
    };
    let relaxer = Relaxer::load(&model_dir, device)?;
    let mut skipped = 0;
    if args.skip_invalid {
        for (path, frames) in &mut jobs {
            let mut index = 0;
            frames.retain(|s| {
                let verdict = relaxer.check(s);
                if let Err(e) = &verdict {
                    eprintln!("skipped {}: {}: {e}", path.display(), s.label(index));
                    skipped += 1;
                }
                index += 1;
                verdict.is_ok()
            });
        }
        jobs.retain(|(_, frames)| !frames.is_empty());
        if jobs.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{}: no structure the model can take ({skipped} skipped)",
                args.input.display()
            )));
        }
    }
    if !(args.symprec > 0.0 && args.symprec < 0.5) {
        return Err(Error::InvalidArgument(format!(
            "--symprec must be in (0, 0.5) Å, got {}",
            args.symprec
        )));
    }
    let options = RelaxOptions {
        fixed_cell: args.fixed_cell,
        batch_size: args.batch_size,
        keep_trajectory: args.trajectory.is_some(),
        symmetry_tolerance: (!args.no_symmetrize).then_some(args.symprec),
    };
    let all: Vec<Structure> = jobs.iter().flat_map(|(_, s)| s.iter().cloned()).collect();
    let start = std::time::Instant::now();
    let results = relaxer.relax_many(&all, &options)?;
    let seconds = start.elapsed().as_secs_f64();

    let mut next = 0;
    if args.input.is_dir() {
        std::fs::create_dir_all(&args.output)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", args.output.display())))?;
        for (path, frames) in &jobs {
            let relaxed: Vec<Structure> = results[next..next + frames.len()]
                .iter()
                .map(|r| r.relaxed.clone())
                .collect();
            next += frames.len();
            let out = args.output.join(path.file_name().unwrap());
            io::write_file(&out, &relaxed, output_format.or(input_format))?;
        }
    } else {
        let relaxed: Vec<Structure> = results.iter().map(|r| r.relaxed.clone()).collect();
        io::write_file(&args.output, &relaxed, output_format)?;
    }
    if let Some(path) = &args.trajectory {
        let frames: Vec<Structure> = results
            .iter()
            .flat_map(|r| r.trajectory.iter().cloned())
            .collect();
        io::write_file(path, &frames, None)?;
    }
    eprintln!(
        "relaxed {} structure(s) with {} in {:.2} s; wrote {}{}",
        all.len(),
        model_dir.display(),
        seconds,
        args.output.display(),
        if skipped > 0 {
            format!("; skipped {skipped} (listed above)")
        } else {
            String::new()
        }
    );
    Ok(())
}
