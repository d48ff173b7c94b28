//! `e3relax calibrate`: the surface trust's scales of a model, measured on
//! relaxed crystals it was not trained on.

use std::path::PathBuf;

use clap::Args;

use e3relax::dataset::Dataset;
use e3relax::relax::read_surface;
use e3relax::runtime::DeviceRequest;
use e3relax::trust::{SurfaceCalibration, SURFACE_TRUST_FILE};
use e3relax::{Error, Model, Result};

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// Model directory (with energy-surface heads); surface_trust.json is
    /// written into it
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Dataset folder(s) with relaxed.extxyz (+ unrelaxed.extxyz): their
    /// relaxed structures, which the model must not have been trained on
    #[arg(long, value_name = "DIR", required = true)]
    data: Vec<PathBuf>,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Make the surface trust with this K the model's default (what
    /// `relax` and the libraries use unless told otherwise)
    #[arg(long, value_name = "K", value_parser = super::relax::parse_positive)]
    default: Option<f64>,
}

pub fn run(args: CalibrateArgs) -> Result<()> {
    let device = args.device.parse::<DeviceRequest>()?.resolve()?;
    let model = Model::load(&args.model, device)?;
    if !model.config().surface_heads {
        return Err(Error::Model(format!(
            "{}: this model has no energy-surface heads (config.json: surface_heads), so it has no surface trust to calibrate",
            args.model.display()
        )));
    }
    let mut relaxed = Vec::new();
    for dir in &args.data {
        let dataset = Dataset::from_dir(dir)?;
        relaxed.extend(dataset.pairs.iter().map(|p| p.relaxed_as_input()));
    }
    let readings = read_surface(&model, &relaxed, args.batch_size, false)?;
    let data = args.data.iter().map(|d| d.display().to_string()).collect();
    let mut calibration = SurfaceCalibration::measure(&readings, data)?;
    calibration.default = args.default;
    let path = args.model.join(SURFACE_TRUST_FILE);
    let text = serde_json::to_string_pretty(&calibration)
        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
    e3relax::io::write_atomically(&path, format!("{text}\n").as_bytes())?;
    println!(
        "{}: force scale {:.4} eV/Å, virial scale {:.4} eV/atom (root mean square over {} relaxed structures)",
        path.display(),
        calibration.scales.force,
        calibration.scales.virial,
        calibration.structures
    );
    if let Some(k) = calibration.default {
        println!(
            "the model's predictions use the surface trust with K = {k} unless told otherwise"
        );
    }
    Ok(())
}
