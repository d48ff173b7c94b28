//! `e3relax calibrate`: the surface trust's scales of a model, measured on
//! relaxed crystals it was not trained on.

use std::path::PathBuf;

use clap::Args;

use e3relax::dataset::Dataset;
use e3relax::relax::read_surface;
use e3relax::runtime::DeviceRequest;
use e3relax::trust::{SurfaceCalibration, SurfaceTrust, SURFACE_TRUST_FILE};
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
    /// The gate's sharpness p: a crystal's change is scaled by
    /// r^2p / (1 + r^2p); 1 is the gentlest gate, larger values hold back
    /// crystals the heads read as at rest more firmly
    #[arg(long, value_name = "P", default_value_t = 1.0, value_parser = parse_sharpness)]
    sharpness: f64,
    /// A model directory inside --model (e.g. `surface-reader`) whose
    /// energy-surface heads read the inputs in the model's place: the
    /// scales are measured with it and surface_trust.json names it. Given
    /// more than once, the readers' readings are averaged. Without it the
    /// readers the present surface_trust.json names, if any, stay
    /// (otherwise the model's own heads read)
    #[arg(long = "reader", value_name = "NAME", value_parser = parse_reader)]
    readers: Vec<String>,
}

fn parse_reader(text: &str) -> std::result::Result<String, String> {
    if SurfaceCalibration::reader_name_is_valid(text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "expected a folder inside the model directory (a relative path without `..`), got {text:?}"
        ))
    }
}

fn parse_sharpness(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if SurfaceTrust::sharpness_is_valid(p) => Ok(p),
        _ => Err(format!(
            "expected a finite number of at least 1, got {text}"
        )),
    }
}

pub fn run(args: CalibrateArgs) -> Result<()> {
    let device = args.device.parse::<DeviceRequest>()?.resolve()?;
    let mut model = Model::load(&args.model, device)?;
    let readers = if args.readers.is_empty() {
        // Model::load read the present file: keep the readers it named.
        match model.has_surface_reader() {
            true => SurfaceCalibration::load(&args.model)?.readers,
            false => Vec::new(),
        }
    } else {
        if let Some(problem) = SurfaceCalibration::readers_problem(&args.readers) {
            return Err(Error::InvalidArgument(format!("--reader: {problem}")));
        }
        model = model.without_surface_readers();
        for name in &args.readers {
            let dir = args.model.join(name);
            let reader = Model::load(&dir, device)?;
            model = model.with_surface_reader(reader, &dir.display().to_string())?;
        }
        args.readers.clone()
    };
    if !model.reads_surface() {
        return Err(Error::Model(format!(
            "{}: this model has no energy-surface heads (config.json: surface_heads), so it has no surface trust to calibrate (or name a surface reader with --reader)",
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
    calibration.scales.sharpness = args.sharpness;
    calibration.readers = readers;
    let path = args.model.join(SURFACE_TRUST_FILE);
    let text = serde_json::to_string_pretty(&calibration)
        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
    e3relax::io::write_atomically(&path, format!("{text}\n").as_bytes())?;
    println!(
        "{}: force scale {:.4} eV/Å, virial scale {:.4} eV/atom (root mean square over {} relaxed structures), sharpness {}",
        path.display(),
        calibration.scales.force,
        calibration.scales.virial,
        calibration.structures,
        calibration.scales.sharpness
    );
    match calibration.readers.as_slice() {
        [] => {}
        [reader] => println!(
            "the surface is read by {reader} (a network of its own, inside the model directory)"
        ),
        readers => println!(
            "the surface is read by {} (networks of their own, inside the model directory; their readings averaged)",
            readers.join(", ")
        ),
    }
    if let Some(k) = calibration.default {
        println!(
            "the model's predictions use the surface trust with K = {k} unless told otherwise"
        );
    }
    Ok(())
}
