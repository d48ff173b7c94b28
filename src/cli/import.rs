use std::path::PathBuf;

use clap::Args;

use e3relax::model::authors::import_authors_checkpoint;
use e3relax::model::ModelConfig;
use e3relax::{Error, Result};

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The authors' state dict written to safetensors (tools/generate/export_pytorch_checkpoint.py)
    state: PathBuf,
    /// Model config (JSON with the fields of a model directory's config.json)
    #[arg(long, value_name = "CONFIG.json")]
    config: PathBuf,
    /// Output model directory
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
}

pub fn run(args: ImportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", args.config.display())))?;
    let config = ModelConfig::from_json(&text).map_err(|e| match e {
        Error::Model(m) => Error::Model(format!("{}: {m}", args.config.display())),
        other => other,
    })?;
    let model = import_authors_checkpoint(&args.state, &config)?;
    model.save(&args.output)?;
    eprintln!(
        "converted {} parameters into {}",
        model.named_parameters().len(),
        args.output.display()
    );
    Ok(())
}
