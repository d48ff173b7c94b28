use std::path::PathBuf;

use clap::Args;

use e3relax::baseline::ElementVolumes;
use e3relax::dataset::Dataset;
use e3relax::evaluate::{evaluate_grouped, fixed_point};
use e3relax::relax::{RelaxOptions, Relaxer};
use e3relax::runtime::DeviceRequest;
use e3relax::{Error, Result};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model directory [default: the shipped model]
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Dataset folder(s) with unrelaxed.extxyz + relaxed.extxyz
    #[arg(long, value_name = "DIR", required_unless_present = "validation_of")]
    data: Vec<PathBuf>,
    /// Evaluate on the validation pairs of this training config (the same
    /// split the training used), e.g. RUN/train_config.json
    #[arg(long, value_name = "TRAIN_CONFIG", conflicts_with = "data")]
    validation_of: Option<PathBuf>,
    /// Fit the volume baseline's per-element volumes on these dataset
    /// folders (with --validation-of: on that run's training pairs)
    #[arg(long, value_name = "DIR")]
    baseline_data: Vec<PathBuf>,
    /// Write per-structure metrics to this CSV file
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Keep cells fixed (fixed-cell datasets)
    #[arg(long)]
    fixed_cell: bool,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    /// Also print the numbers per value of this info key of the pairs
    /// (e.g. `source`: which kinds of crystals the model helps)
    #[arg(long, value_name = "KEY")]
    group_by: Option<String>,
    /// Leave out the fixed-point report (the pairs' relaxed structures fed
    /// back as inputs, as they are and rattled by 0.01 Å)
    #[arg(long)]
    no_fixed_point: bool,
    /// No progress on stderr
    #[arg(short, long)]
    quiet: bool,
    /// Shrink each prediction towards its input with these error scales
    /// (cell strain, dimensionless; atom displacement, Å): the trust policy
    #[arg(long, value_name = "STRAIN,DISPLACEMENT", value_parser = parse_trust)]
    trust: Option<e3relax::trust::Trust>,
    /// Also relax with the model's ensemble (ensemble.json) and print how
    /// well its spread tells its error (Spearman correlations, deciles)
    #[arg(long)]
    uncertainty: bool,
    /// With --uncertainty: shrink the ensemble's mean change of each crystal
    /// where it is not much larger than K times the members' spread
    #[arg(long, value_name = "K", requires = "uncertainty")]
    spread_trust: Option<f64>,
    /// Shrink each prediction where the model's surface reader (or its
    /// energy-surface heads) finds the input at rest, with K times the model's surface_trust.json
    /// scales (see `e3relax relax --surface-trust`)
    #[arg(long, value_name = "K", value_parser = super::relax::parse_positive)]
    surface_trust: Option<f64>,
    /// The raw prediction, also for a model whose default is the surface
    /// trust
    #[arg(long, conflicts_with = "surface_trust")]
    no_surface_trust: bool,
    /// Go along each predicted move only as far as the model's surface
    /// reader (or its energy-surface heads) finds the energy falling (see `e3relax relax
    /// --line-search`)
    #[arg(long)]
    line_search: bool,
}

pub fn parse_trust(text: &str) -> std::result::Result<e3relax::trust::Trust, String> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("{text}: {e}"))?;
    match values[..] {
        [strain, displacement]
            if strain.is_finite()
                && strain >= 0.0
                && displacement.is_finite()
                && displacement >= 0.0 =>
        {
            Ok(e3relax::trust::Trust {
                strain,
                displacement,
            })
        }
        _ => Err(format!(
            "{text}: expected two non-negative numbers STRAIN,DISPLACEMENT (e.g. 0.02,0.05)"
        )),
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    let mut pairs = Vec::new();
    let mut fit_pairs = Vec::new();
    if let Some(path) = &args.validation_of {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
        let config = e3relax::train::TrainConfig::from_json(&text)?;
        let e3relax::dataset::DataSplit { train, validation } =
            e3relax::dataset::DataSplit::load(&config.split_spec(), &mut |m| eprintln!("{m}"))?;
        pairs = validation;
        fit_pairs = train;
    }
    for dir in &args.baseline_data {
        fit_pairs.extend(Dataset::from_dir(dir)?.pairs);
    }
    for dir in &args.data {
        let d = Dataset::from_dir(dir)?;
        for s in &d.skipped {
            eprintln!("{}: skipped pair {}: {}", dir.display(), s.id, s.reason);
        }
        pairs.extend(d.pairs);
    }
    if pairs.is_empty() {
        return Err(Error::InvalidArgument("no usable pairs to evaluate".into()));
    }
    let dir = match &args.model {
        Some(d) => d.clone(),
        None => super::relax::default_model_dir()?,
    };
    let relaxer = Relaxer::load(&dir, args.device.parse::<DeviceRequest>()?)?;
    if args.line_search {
        relaxer.check_line_search()?;
    }
    let options = RelaxOptions {
        fixed_cell: args.fixed_cell,
        batch_size: args.batch_size,
        keep_trajectory: false,
        trust: args.trust,
        surface_trust: relaxer.chosen_surface_trust(
            &dir,
            super::relax::surface_trust_choice(args.surface_trust, args.no_surface_trust),
        )?,
        line_search: args.line_search,
        ..Default::default()
    };
    // A fixed-cell set has no cell to scale: the volume baseline would only
    // move atoms that the relaxation left in place.
    let volumes = (!fit_pairs.is_empty() && !args.fixed_cell)
        .then(|| ElementVolumes::fit(&fit_pairs, relaxer.model().config().num_elements as usize));
    if volumes.is_none() && !args.fixed_cell {
        eprintln!("volume baseline: not evaluated (give --validation-of or --baseline-data to fit its volumes)");
    }
    // One count over the run: the pairs, then twice as many fixed-point
    // inputs.
    let total = pairs.len() * if args.no_fixed_point { 1 } else { 3 };
    let progress = super::progress::Progress::new("eval", total, args.quiet);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let count = |n: usize| {
        progress.update(done.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n);
    };
    let report = evaluate_grouped(
        relaxer.model(),
        &pairs,
        &options,
        volumes.as_ref(),
        args.group_by.as_deref(),
        &count,
    );
    let fixed = match (&report, args.no_fixed_point) {
        (Ok(_), false) => Some(fixed_point(
            relaxer.model(),
            &pairs,
            &options,
            args.group_by.as_deref(),
            &count,
        )),
        _ => None,
    };
    let calibration = match (&report, args.uncertainty) {
        (Ok(_), true) => Some(
            Relaxer::load_ensemble(&dir, args.device.parse::<DeviceRequest>()?).and_then(
                |ensemble| {
                    let options = RelaxOptions {
                        spread_trust: args.spread_trust,
                        ..options
                    };
                    e3relax::evaluate::calibration(&ensemble, &pairs, &options, &|_| {})
                },
            ),
        ),
        _ => None,
    };
    progress.finish();
    let report = report?;
    let fixed = fixed.transpose()?;
    let calibration = calibration.transpose()?;
    if let Some(path) = &args.csv {
        e3relax::io::write_atomically(path, report.csv(calibration.as_ref()).as_bytes())?;
    }
    if args.json {
        let mut json = serde_json::json!({"model": report.model, "error_split": report.error_split, "dummy": report.dummy, "volume_baseline": report.baseline, "structures": report.rows.len(), "seconds": report.seconds});
        if args.group_by.is_some() {
            json["groups"] = serde_json::json!(report.by_group());
        }
        if let Some(fixed) = &fixed {
            json["fixed_point"] = serde_json::json!({
                "exact": fixed.exact,
                "rattle_angstrom": e3relax::evaluate::NEAR_EQUILIBRIUM_RATTLE,
                "rattled": fixed.rattled,
                "rattled_dummy": fixed.rattled_dummy,
                "volume_change_mean": fixed.volume_change_mean,
                "volume_change_median": fixed.volume_change_median,
                "volume_change_p95": fixed.volume_change_p95,
                "volume_change_max": fixed.volume_change_max,
                "share_over_3_percent": fixed.share_over_3_percent,
                "share_over_5_percent": fixed.share_over_5_percent,
            });
        }
        if let Some(calibration) = &calibration {
            json["calibration"] = serde_json::json!({
                "members": calibration.members,
                "mean": calibration.mean,
                "spearman_coordinates": calibration.spearman_coordinates,
                "spearman_shape": calibration.spearman_shape,
                "spearman_volume": calibration.spearman_volume,
                "deciles": calibration.deciles,
                "fixed_point_spearman_coordinates": calibration.fixed_point_spearman_coordinates,
                "fixed_point_spearman_volume": calibration.fixed_point_spearman_volume,
            });
        }
        if let Some(t) = options.surface_trust {
            json["surface_trust"] = serde_json::json!({"force": t.force, "virial": t.virial, "sharpness": t.sharpness, "reader": relaxer.model().has_surface_reader(), "readers": relaxer.model().surface_reader_count()});
        }
        json["line_search"] = serde_json::json!(options.line_search);
        println!("{json}");
    } else {
        println!("{}", report.table());
        if let Some(t) = options.surface_trust {
            println!(
                "with the surface trust: force scale {:.4} eV/Å, virial scale {:.4} eV/atom, sharpness {} (--no-surface-trust: the raw prediction)",
                t.force, t.virial, t.sharpness
            );
        }
        let readers = relaxer.model().surface_reader_count();
        if readers > 0 && (options.surface_trust.is_some() || options.line_search) {
            match readers {
                1 => println!("the energy surface is read by the model's surface reader (surface_trust.json: reader)"),
                n => println!("the energy surface is read by the model's {n} surface readers, their readings averaged (surface_trust.json: reader)"),
            }
        }
        if options.line_search {
            println!("with the energy-surface line search along each predicted move");
        }
        if let Some(key) = &args.group_by {
            println!("\nby {key} (/D: ratio to Dummy, /B: to the volume baseline)");
            print!("{}", report.group_table(key));
        }
        if let Some(calibration) = &calibration {
            print!("\n{}", calibration.table());
        }
        if let Some(fixed) = &fixed {
            println!("\n{}", fixed.table());
            if let Some(key) = &args.group_by {
                println!("\nfixed point by {key}");
                print!("{}", fixed.group_table(key));
            }
        }
    }
    Ok(())
}
