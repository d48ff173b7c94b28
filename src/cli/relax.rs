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
    /// Output file (format from its name; `-` for standard output with
    /// --format), or a folder when INPUT is a folder. Written only when
    /// everything succeeded: all outputs of a run appear together or none
    #[arg(short, long)]
    output: PathBuf,
    /// Allow an output to replace an input file
    #[arg(long)]
    overwrite_input: bool,
    /// Model directory (config.json + model.safetensors) [default: the shipped model]
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// cpu, cuda, cuda:K or auto
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Threads [default: E3RELAX_NUM_THREADS, else OMP_NUM_THREADS, else 1,
    /// which never oversubscribes a busy node]. With several batches each
    /// thread relaxes its own share of them; with one, libtorch uses them
    #[arg(long, value_name = "N")]
    threads: Option<i32>,
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
    /// No progress on stderr (a bar on a terminal, otherwise a line every
    /// 10 s of a long run)
    #[arg(short, long)]
    quiet: bool,
    /// Trust policy: shrink each crystal's predicted cell strain and atom
    /// moves towards the input where they are not much larger than these
    /// error scales (e.g. 0.061,0.092: the shipped model's root-mean-square
    /// change of already relaxed crystals, the "size of the change"
    /// `e3relax eval` prints for any model); fewer crystals pushed away from a
    /// minimum they are already at, at some cost in accuracy elsewhere
    /// (see the model card)
    #[arg(long, value_name = "STRAIN,DISPLACEMENT", value_parser = super::eval::parse_trust)]
    trust: Option<e3relax::trust::Trust>,
    /// Relax with the model's ensemble (its ensemble.json): the members'
    /// mean is the prediction, their spread is written as a per-atom
    /// `uncertainty` column (Å) and per-frame `cell_uncertainty`,
    /// `volume_uncertainty` (Å^3) and `coordinate_uncertainty` (Å: the atoms'
    /// and the cell's spread on the scale of the coordinate error) in
    /// extended XYZ, or as OUTPUT.uncertainty.csv beside a POSCAR or CIF
    /// output
    #[arg(long)]
    uncertainty: bool,
    /// With --uncertainty: shrink each crystal's mean predicted change where
    /// it is not much larger than K times the members' spread of it (with
    /// the shipped ensemble, 1 moves already relaxed crystals about a fifth
    /// less; its accuracy is in the model card)
    #[arg(long, value_name = "K", requires = "uncertainty")]
    spread_trust: Option<f64>,
    /// Surface trust: shrink each crystal's predicted change where the
    /// model's surface reader (or its own energy-surface heads) finds the
    /// input at rest (forces and virial no larger than K times their
    /// typical output on relaxed crystals, the model's surface_trust.json);
    /// 1 is the measured scale. Leaves relaxed and experimental inputs
    /// nearly alone (see the model card). Needs a model with a surface
    /// reader or surface heads [default: the model's own default, if its
    /// surface_trust.json has one]
    #[arg(long, value_name = "K", value_parser = parse_positive)]
    surface_trust: Option<f64>,
    /// The raw prediction, also for a model whose default is the surface
    /// trust
    #[arg(long, conflicts_with = "surface_trust")]
    no_surface_trust: bool,
    /// Energy-surface line search: go along each crystal's predicted move
    /// only as far as the model's surface reader (or its own
    /// energy-surface heads) finds the energy falling (forces and virial
    /// integrated along the path), so an input near its minimum moves
    /// less. Writes each step as info `e3relax_line_search_step` (0: the
    /// input, 1: the prediction). Needs a model with a surface reader or
    /// surface heads; costs five passes of them (see the model card)
    #[arg(long)]
    line_search: bool,
    /// Relax only shard K of N (K from 0 to N-1, e.g. `--shard
    /// $SLURM_ARRAY_TASK_ID/8` in a Slurm array): the serial run's batches
    /// are dealt out in N contiguous ranges; each shard writes the frames
    /// (of a file) or the files (of a folder) that start in its batches, so
    /// the shards' outputs together (`cat` for extended XYZ, the folders'
    /// files for a folder) are the serial output bit for bit. Give each
    /// shard of a single file its own -o
    #[arg(long, value_name = "K/N", value_parser = super::shard::parse_shard)]
    shard: Option<super::shard::Shard>,
}

/// What `--surface-trust K` / `--no-surface-trust` ask for (see
/// `Relaxer::chosen_surface_trust`).
pub fn surface_trust_choice(k: Option<f64>, off: bool) -> Option<Option<f64>> {
    if off {
        Some(None)
    } else {
        k.map(Some)
    }
}

/// A finite number > 0.
pub fn parse_positive(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!("must be a finite number above 0, got {v}")),
        Err(e) => Err(format!("{text}: {e}")),
    }
}

/// The relaxed structure with its ensemble spread as extended XYZ data.
fn with_uncertainty(r: &e3relax::Relaxation) -> Structure {
    let mut s = r.relaxed.clone();
    if let Some(u) = &r.uncertainty {
        s.atom_properties.retain(|p| p.name != "uncertainty");
        s.atom_properties.push(e3relax::structure::AtomProperty {
            name: "uncertainty".into(),
            kind: 'R',
            columns: 1,
            values: u.atoms.iter().map(|v| v.to_string()).collect(),
        });
        s.set_info("cell_uncertainty", u.cell.to_string());
        s.set_info("volume_uncertainty", u.volume.to_string());
        s.set_info(
            "coordinate_uncertainty",
            u.coordinates(r.relaxed.volume()).to_string(),
        );
    }
    s
}

/// The side table of a POSCAR or CIF output: one row per atom.
fn uncertainty_table(results: &[e3relax::Relaxation]) -> String {
    let mut out = String::from(
        "frame,id,atom,element,uncertainty_angstrom,cell_uncertainty,volume_uncertainty_angstrom3\n",
    );
    for (frame, r) in results.iter().enumerate() {
        let Some(u) = &r.uncertainty else { continue };
        for (atom, (value, z)) in u.atoms.iter().zip(&r.relaxed.numbers).enumerate() {
            out += &format!(
                "{},{},{},{},{value},{},{}\n",
                frame + 1,
                r.relaxed.id.as_deref().unwrap_or(""),
                atom + 1,
                e3relax::elements::symbol(*z).unwrap_or("X"),
                u.cell,
                u.volume
            );
        }
    }
    out
}

/// Stages the side table of `results` beside `out` when its format has no
/// place for per-atom data.
fn stage_uncertainty(
    writes: &mut io::StagedWrites,
    out: &Path,
    format: Option<Format>,
    results: &[e3relax::Relaxation],
) -> Result<()> {
    let format = format.or(Format::from_path(out).ok());
    if format == Some(Format::ExtXyz) || results.iter().all(|r| r.uncertainty.is_none()) {
        return Ok(());
    }
    if out.as_os_str() == io::output::STDOUT {
        return Err(Error::InvalidArgument(
            "--uncertainty with standard output needs --format extxyz (other formats get a side table file)".into(),
        ));
    }
    let mut name = out.as_os_str().to_os_string();
    name.push(".uncertainty.csv");
    writes.stage(Path::new(&name), uncertainty_table(results).into_bytes())
}

/// The model used when `--model` is not given (see
/// [`e3relax::relax::default_model_dir`]).
pub fn default_model_dir() -> Result<PathBuf> {
    e3relax::relax::default_model_dir()
}

/// Structure files of a folder, sorted by name. Files of unknown format
/// are left out, and said so on stderr.
fn folder_files(dir: &Path, format: Option<Format>) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut unknown = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io(dir.display().to_string(), e))?
            .path();
        if !path.is_file() {
            continue;
        }
        if format.is_some() || Format::from_path(&path).is_ok() {
            files.push(path);
        } else {
            unknown.push(path);
        }
    }
    files.sort();
    if !unknown.is_empty() {
        unknown.sort();
        let names: Vec<String> = unknown.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "note: left out {} file(s) of unknown format (give --from to read them): {}",
            unknown.len(),
            names.join(", ")
        );
    }
    if files.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no structure files in this folder",
            dir.display()
        )));
    }
    Ok(files)
}

/// The MPI job this run is part of (build feature `mpi`).
#[cfg(feature = "mpi")]
type MpiJob = super::mpi::Job;

/// Without the `mpi` feature there is never an MPI job.
#[cfg(not(feature = "mpi"))]
enum MpiJob {}

#[cfg(not(feature = "mpi"))]
impl MpiJob {
    fn rank(&self) -> usize {
        match *self {}
    }
    fn size(&self) -> usize {
        match *self {}
    }
    fn share(&self, _: Result<Vec<e3relax::Relaxation>>) -> Result<Vec<e3relax::Relaxation>> {
        match *self {}
    }
    fn send_share(&self, _: &Result<Vec<e3relax::Relaxation>>) {
        match *self {}
    }
    fn receive_shares(&self, _: &[&[Structure]]) -> Result<Vec<Vec<e3relax::Relaxation>>> {
        match *self {}
    }
}

pub fn run(args: RelaxArgs) -> Result<()> {
    #[cfg(feature = "mpi")]
    if let Some(job) = super::mpi::Job::join() {
        // A failed rank ends the job: the others may be waiting for it.
        return run_in(args, Some(&job)).or_else(|e| job.abort(&e));
    }
    run_in(args, None)
}

fn run_in(args: RelaxArgs, mpi_job: Option<&MpiJob>) -> Result<()> {
    let input_format = super::format_option(&args.input_format)?;
    let output_format = super::format_option(&args.format)?;
    let device = args.device.parse::<DeviceRequest>()?;
    let threads = match args.threads {
        Some(n) => n,
        None => e3relax::runtime::default_threads()?,
    };
    // libtorch's threads; the relaxer gives several batches one worker
    // per thread.
    e3relax::runtime::set_threads(threads, 0)?;
    // Read everything first: a bad input fails before the model is loaded.
    let read = |p: &Path| {
        if args.skip_invalid {
            // Validated one by one below, against the model.
            io::read_file_unvalidated(p, input_format)
        } else {
            io::read_file(p, input_format)
        }
    };
    if args.output.as_os_str() == io::output::STDOUT && args.input.is_dir() {
        return Err(Error::InvalidArgument(
            "-o -: a folder of inputs needs an output folder, not standard output".into(),
        ));
    }
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
    let relaxer = if args.uncertainty {
        Relaxer::load_ensemble(&model_dir, device)?
    } else {
        Relaxer::load(&model_dir, device)?
    };
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
    if args.line_search {
        relaxer.check_line_search()?;
    }
    let options = RelaxOptions {
        fixed_cell: args.fixed_cell,
        batch_size: args.batch_size,
        keep_trajectory: args.trajectory.is_some(),
        symmetry_tolerance: (!args.no_symmetrize).then_some(args.symprec),
        trust: args.trust,
        spread_trust: args.spread_trust,
        surface_trust: relaxer.chosen_surface_trust(
            &model_dir,
            surface_trust_choice(args.surface_trust, args.no_surface_trust),
        )?,
        line_search: args.line_search,
    };
    // Checked where every caller's options are (RelaxOptions::validate),
    // before any work; the message gets the flag's name.
    options.validate().map_err(|e| match e {
        Error::InvalidArgument(m) => {
            Error::InvalidArgument(m.replacen("symmetry_tolerance", "--symprec", 1).replacen(
                "batch_size",
                "--batch-size",
                1,
            ))
        }
        other => other,
    })?;
    let mut all: Vec<Structure> = jobs.iter().flat_map(|(_, s)| s.iter().cloned()).collect();
    // The relaxed frames this run writes (all of them unless sharded).
    let mut written = 0..all.len();
    // Under mpirun every rank takes the share `--shard rank/size` would.
    let shard = match mpi_job {
        Some(job) => {
            if args.shard.is_some() {
                return Err(Error::InvalidArgument(
                    "--shard: under mpirun the ranks share the work already; give one or the other"
                        .into(),
                ));
            }
            Some(super::shard::Shard {
                index: job.rank(),
                count: job.size(),
            })
        }
        None => args.shard,
    };
    let folder = args.input.is_dir();
    let unit_frames: Vec<usize> = if folder {
        jobs.iter().map(|(_, frames)| frames.len()).collect()
    } else {
        vec![1; all.len()]
    };
    // Rank 0 of an MPI job writes everything: it keeps the whole input.
    let whole = match mpi_job {
        Some(job) if job.rank() == 0 => Some((jobs.clone(), all.clone())),
        _ => None,
    };
    if let Some(shard) = shard {
        let plan = super::shard::plan(&unit_frames, args.batch_size, shard)?;
        if plan.units.is_empty() && mpi_job.is_none() {
            eprintln!(
                "shard {}/{}: nothing to relax ({} structure(s) make {} batch(es) of {}); wrote nothing",
                shard.index,
                shard.count,
                all.len(),
                all.len().div_ceil(args.batch_size),
                args.batch_size
            );
            return Ok(());
        }
        written = plan.written.start - plan.frames.start..plan.written.end - plan.frames.start;
        all = all[plan.frames].to_vec();
        if folder {
            jobs = jobs.drain(plan.units).collect();
        } else {
            jobs[0].1 = jobs[0].1[plan.written].to_vec();
        }
    }
    let start = std::time::Instant::now();
    // The relaxer spreads several batches over the threads (one worker
    // each); one batch gets all threads inside libtorch.
    let quiet = args.quiet || mpi_job.is_some_and(|job| job.rank() > 0);
    let progress = super::progress::Progress::new("relax", all.len(), quiet);
    let results = relaxer.relax_many_with_progress(&all, &options, &|done| progress.update(done));
    progress.finish();
    let mut results: Result<Vec<e3relax::Relaxation>> =
        results.map(|mut r| r.drain(written).collect());
    if let Some(job) = mpi_job {
        results = job.share(results);
        if job.rank() > 0 {
            job.send_share(&results);
            return results.map(|_| ());
        }
        let mut mine = results?;
        let (all_jobs, all_frames) = whole.expect("rank 0 keeps the whole input");
        let mut inputs = Vec::with_capacity(job.size());
        for rank in 0..job.size() {
            let share = super::shard::Shard {
                index: rank,
                count: job.size(),
            };
            let plan = super::shard::plan(&unit_frames, args.batch_size, share)?;
            inputs.push(&all_frames[plan.written]);
        }
        for share in job.receive_shares(&inputs)? {
            mine.extend(share);
        }
        results = Ok(mine);
        jobs = all_jobs;
    }
    let results = results?;
    let seconds = start.elapsed().as_secs_f64();

    let input_files: Vec<PathBuf> = jobs.iter().map(|(p, _)| p.clone()).collect();
    // Everything is rendered and staged first; nothing appears unless all
    // outputs (the trajectory included) could be written.
    let mut writes = io::StagedWrites::new();
    let mut next = 0;
    if args.input.is_dir() {
        writes.create_folder(&args.output)?;
        let mut names = std::collections::BTreeMap::new();
        for (path, frames) in &jobs {
            let these = &results[next..next + frames.len()];
            let relaxed: Vec<Structure> = these.iter().map(with_uncertainty).collect();
            next += frames.len();
            let input_name = path.file_name().expect("folder entries have names");
            let name = match output_format {
                Some(format) => format.output_name(input_name),
                None => input_name.to_os_string(),
            };
            if let Some(other) = names.insert(name.clone(), path.clone()) {
                return Err(Error::InvalidArgument(format!(
                    "{} and {} would both be written to {}; give --format to keep their formats or rename one",
                    other.display(),
                    path.display(),
                    args.output.join(&name).display()
                )));
            }
            let out = args.output.join(&name);
            super::refuse_overwriting_inputs(&out, &input_files, args.overwrite_input)?;
            let format = output_format
                .or(input_format)
                .or(Format::from_path(path).ok());
            writes.stage(&out, io::file_bytes(&out, &relaxed, format)?)?;
            stage_uncertainty(&mut writes, &out, format, these)?;
        }
    } else {
        let relaxed: Vec<Structure> = results.iter().map(with_uncertainty).collect();
        super::refuse_overwriting_inputs(&args.output, &input_files, args.overwrite_input)?;
        writes.stage(
            &args.output,
            io::file_bytes(&args.output, &relaxed, output_format)?,
        )?;
        stage_uncertainty(&mut writes, &args.output, output_format, &results)?;
    }
    if let Some(path) = &args.trajectory {
        let frames: Vec<Structure> = results
            .iter()
            .flat_map(|r| r.trajectory.iter().cloned())
            .collect();
        super::refuse_overwriting_inputs(path, &input_files, false)?;
        writes.stage(path, io::file_bytes(path, &frames, None)?)?;
    }
    writes.commit()?;
    eprintln!(
        "relaxed {} structure(s) with {} in {:.2} s; wrote {}{}",
        results.len(),
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
