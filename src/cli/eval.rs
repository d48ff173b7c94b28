use std::path::PathBuf;

use clap::Args;

use e3relax::dataset::Dataset;
use e3relax::evaluate::evaluate;
use e3relax::relax::{RelaxOptions, Relaxer};
use e3relax::runtime::DeviceRequest;
use e3relax::{Error, Result};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model directory [default: the shipped model]
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Dataset folder(s) with unrelaxed.extxyz + relaxed.extxyz
    #[arg(long, value_name = "DIR", required = true)]
    data: Vec<PathBuf>,
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
}

pub fn run(args: EvalArgs) -> Result<()> {
    let mut pairs = Vec::new();
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
    let relaxer = Relaxer::load(&dir, DeviceRequest::parse(&args.device)?)?;
    let options = RelaxOptions {
        fixed_cell: args.fixed_cell,
        batch_size: args.batch_size,
        keep_trajectory: false,
    };
    let report = evaluate(relaxer.model(), &pairs, &options)?;
    if let Some(path) = &args.csv {
        e3relax::io::write_atomically(path, report.csv().as_bytes())?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"model": report.model, "dummy": report.dummy, "structures": report.rows.len(), "seconds": report.seconds})
        );
    } else {
        println!("{}", report.table());
    }
    Ok(())
}
