use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use e3relax::model::ModelConfig;
use e3relax::train::{Progress, TrainConfig};
use e3relax::{Error, Result};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training settings (JSON); --set and the flags below override its fields
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set any field of the training config, with its own name (repeatable,
    /// applied in order after --config): e.g. --set max_epochs=20 --set
    /// model.surface_heads=true --set 'single_points=["data/sp"]'. Values
    /// are JSON, or plain strings
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Dataset folder(s) with unrelaxed.extxyz + relaxed.extxyz (repeatable)
    #[arg(long, value_name = "DIR")]
    data: Vec<PathBuf>,
    /// Validation dataset folder (repeatable: their pairs together; default: hold out
    /// --validation-fraction by prototype)
    #[arg(long, value_name = "DIR")]
    validation: Vec<PathBuf>,
    #[arg(long)]
    validation_fraction: Option<f64>,
    /// Model config JSON for a new model
    #[arg(long, value_name = "FILE")]
    model_config: Option<PathBuf>,
    /// Fine-tune this model directory instead of starting from scratch
    #[arg(long, value_name = "DIR")]
    init_from: Option<PathBuf>,
    /// Run directory (checkpoints, logs, best model)
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Continue the checkpoint in the run directory
    #[arg(long)]
    resume: bool,
    /// Replace the run already in the run directory (without this or
    /// --resume, an existing run is refused)
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// The same as --set max_epochs=N
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    max_minutes: Option<f64>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// cpu, cuda, cuda:K or auto
    #[arg(long)]
    device: Option<String>,
    /// libtorch intra-op threads
    #[arg(long)]
    threads: Option<i32>,
    /// Randomly rotate training structures
    #[arg(long)]
    augment_rotations: bool,
    /// Keep cells fixed (fixed-cell datasets)
    #[arg(long)]
    fixed_cell: bool,
    /// Gaussian noise (Å, standard deviation) added to training inputs' positions
    #[arg(long, value_name = "ANGSTROM")]
    position_noise: Option<f64>,
    /// No live progress bar (the per-round lines are still printed)
    #[arg(short, long)]
    quiet: bool,
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))
}

pub fn run(args: TrainArgs) -> Result<()> {
    let text = args.config.as_ref().map(read).transpose()?;
    let mut config = TrainConfig::with_settings(text.as_deref(), &args.settings).map_err(|e| {
        match &args.config {
            Some(p) => Error::InvalidArgument(format!("{}: {e}", p.display())),
            None => e,
        }
    })?;
    if !args.data.is_empty() {
        config.data = args.data.clone();
    }
    if !args.validation.is_empty() {
        config.validation = args.validation.clone();
    }
    if let Some(f) = args.validation_fraction {
        config.validation_fraction = f;
    }
    if let Some(p) = &args.model_config {
        config.model = Some(ModelConfig::from_json(&read(p)?)?);
    }
    if args.init_from.is_some() {
        config.init_from = args.init_from.clone();
    }
    if let Some(o) = &args.output {
        config.output = o.clone();
    }
    config.overwrite |= args.overwrite;
    if let Some(v) = args.epochs {
        config.max_epochs = v;
    }
    if args.max_minutes.is_some() {
        config.max_minutes = args.max_minutes;
    }
    if let Some(v) = args.batch_size {
        config.batch_size = v;
    }
    if let Some(v) = args.lr {
        config.lr = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = &args.device {
        config.device = v.clone();
    }
    if args.threads.is_some() {
        config.threads = args.threads;
    }
    config.rotation_augmentation |= args.augment_rotations;
    config.fixed_cell |= args.fixed_cell;
    if let Some(sigma) = args.position_noise {
        config.position_noise = sigma;
    }

    // Under mpirun (build feature `mpi`) the ranks share every batch; rank
    // 0 alone prints and writes, and a failing rank ends the job.
    #[cfg(feature = "mpi")]
    if let Some(job) = super::mpi::Job::join() {
        if config.device == "cuda" {
            let visible = tch::Cuda::device_count().max(1) as usize;
            config.device = format!("cuda:{}", job.local_rank() % visible);
        }
        let quiet = args.quiet || job.rank() > 0;
        let start = std::time::Instant::now();
        if let Err(e) = run_config(&config, args.resume, quiet, Some(&job)) {
            job.abort(&e);
        }
        if job.rank() == 0 {
            let total = start.elapsed().as_secs_f64();
            eprintln!(
                "MPI: {} ranks; rank 0 spent {:.1} s of {total:.1} s ({:.1} %) in the sums over the ranks (gradients, losses, validation), waiting for the slowest rank included",
                job.size(),
                job.summing_seconds(),
                100.0 * job.summing_seconds() / total.max(1e-9)
            );
        }
        return Ok(());
    }
    run_config(&config, args.resume, args.quiet, None)
}

/// Trains with `config` (printing progress unless `quiet`), shared with
/// the other processes of `collective` if any.
fn run_config(
    config: &TrainConfig,
    resume: bool,
    quiet: bool,
    collective: Option<&dyn e3relax::train::Collective>,
) -> Result<()> {
    let root = collective.is_none_or(|c| c.rank() == 0);
    let bar = if std::io::stderr().is_terminal() && !quiet {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    let mut on_progress = |p: &Progress| {
        match p {
            Progress::Step {
                epoch,
                batch,
                batches,
                loss,
                ..
            } => {
                if let Some(bar) = &bar {
                    bar.set_length(*batches as u64);
                    bar.set_position(*batch as u64);
                    bar.set_prefix(epoch.to_string());
                    bar.set_message(format!("loss {loss:.4}"));
                }
            }
            Progress::Round(_) if !root => {}
            Progress::Round(r) => {
                let line = format!(
                "epoch {:>4} step {:>7} lr {:.2e} train loss {:.4} | val coord MAE {:.4} Å (dummy {:.4}) shape {:.3} Å^2 ({:.3}) volume {:.3} Å^3 ({:.3}) | {:.0} s",
                r.epoch, r.step, r.lr, r.train_loss, r.validation.coordinate_mae, r.dummy.coordinate_mae,
                r.validation.shape_deviation, r.dummy.shape_deviation, r.validation.volume_error, r.dummy.volume_error, r.seconds
            );
                match &bar {
                    Some(bar) => bar.println(line),
                    None => eprintln!("{line}"),
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    };
    let mut on_log = |m: &str| {
        if root {
            eprintln!("{m}")
        }
    };
    let summary =
        e3relax::train::train_shared(config, resume, &mut on_progress, &mut on_log, collective)?;
    if !root {
        return Ok(());
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    eprintln!(
        "done: {} epochs, {} steps in {:.0} s{}; best validation coordinate MAE {:.4} Å; best EMA model in {}",
        summary.epochs,
        summary.steps,
        summary.seconds,
        if summary.stopped_early { " (early stop)" } else { "" },
        summary.best_coordinate_mae,
        summary.best_model.display()
    );
    Ok(())
}
