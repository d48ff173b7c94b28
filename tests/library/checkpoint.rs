//! Model directories, the converter of the authors' checkpoints, and the
//! `relax` / `import-pytorch` commands.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use e3relax::model::authors::{import_authors_checkpoint, name_to_authors};
use e3relax::model::{Model, ModelConfig};
use e3relax::relax::Relaxer;
use e3relax::runtime::DeviceRequest;
use tch::Tensor;

/// Writes a model's parameters under the authors' names (plus their radial
/// basis buffer), as their checkpoint would hold them.
fn write_authors_checkpoint(model: &Model, path: &Path, skip: Option<&str>, reshape: Option<&str>) {
    let mut named: Vec<(String, Tensor)> = model
        .named_parameters()
        .into_iter()
        .map(|(k, t)| (name_to_authors(&k).unwrap(), t))
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .map(|(k, t)| {
            if Some(k.as_str()) == reshape {
                (k, t.narrow(0, 0, 1))
            } else {
                (k, t)
            }
        })
        .collect();
    let k = model.config().num_rbf;
    named.push((
        "radial_basis.rbf.offset".into(),
        Tensor::linspace(0.0, 1.0, k, (tch::Kind::Float, tch::Device::Cpu)),
    ));
    Tensor::write_safetensors(&named, path).unwrap();
}

fn e3relax(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_e3relax"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn authors_checkpoint_converts_to_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let original = small_model(&config, 77);
    let path = dir.path().join("theirs.safetensors");
    write_authors_checkpoint(&original, &path, None, None);
    let converted = import_authors_checkpoint(&path, &config).unwrap();
    let crystal = random_crystal(3, 6);
    let a = Relaxer::from_model(original).relax(&crystal).unwrap();
    let b = Relaxer::from_model(converted).relax(&crystal).unwrap();
    assert_eq!(a.positions, b.positions);
    assert_eq!(a.lattice, b.lattice);
}

#[test]
fn converter_names_the_first_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let model = small_model(&config, 1);
    let path = dir.path().join("theirs.safetensors");
    write_authors_checkpoint(
        &model,
        &path,
        Some("message_passing_layers.1.edge_proj.bias"),
        None,
    );
    let e = import_authors_checkpoint(&path, &config)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing tensor 'message_passing_layers.1.edge_proj.bias'"),
        "{e}"
    );
    write_authors_checkpoint(
        &model,
        &path,
        None,
        Some("lattice_l2_layers.0.mlp_scalar_local.0.weight"),
    );
    let e = import_authors_checkpoint(&path, &config)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tensor 'lattice_l2_layers.0.mlp_scalar_local.0.weight' has shape [1, 32], expected [16, 32]"),
        "{e}"
    );
    // A config of another width: the first mismatch is named.
    write_authors_checkpoint(&model, &path, None, None);
    let wider = ModelConfig {
        hidden_channels: 32,
        ..config.clone()
    };
    let e = import_authors_checkpoint(&path, &wider)
        .unwrap_err()
        .to_string();
    assert!(e.contains("has shape") && e.contains("expected"), "{e}");
    // Not a safetensors file at all, and a truncated one.
    std::fs::write(&path, b"PK\x03\x04 this is a zip").unwrap();
    assert!(import_authors_checkpoint(&path, &config)
        .unwrap_err()
        .to_string()
        .contains("not a readable safetensors file"));
    write_authors_checkpoint(&model, &path, None, None);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(import_authors_checkpoint(&path, &config)
        .unwrap_err()
        .to_string()
        .contains("not a readable safetensors file"));
}

#[test]
fn model_directory_errors_name_the_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_model(&small_config(), 2);
    model.save(dir.path()).unwrap();
    let load = |d: &Path| Model::load(d, tch::Device::Cpu).unwrap_err().to_string();

    // Config and weights of different widths.
    let config_path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        text.replace("\"hidden_channels\": 16", "\"hidden_channels\": 8"),
    )
    .unwrap();
    let e = load(dir.path());
    assert!(e.contains("model.safetensors: tensor 'atom_embedding.weight' has shape [118, 16], but config.json asks for [num_elements, hidden_channels] = [118, 8]"), "{e}");
    // A typo in the config.
    std::fs::write(&config_path, text.replace("num_layers", "num_layer")).unwrap();
    assert!(load(dir.path()).contains("unknown field `num_layer`"));
    // One layer fewer in the config: the weights hold an unexpected tensor.
    std::fs::write(
        &config_path,
        text.replace("\"num_layers\": 2", "\"num_layers\": 1"),
    )
    .unwrap();
    let e = load(dir.path());
    assert!(
        e.contains("the weights hold 2 layers, but config.json asks for num_layers = 1"),
        "{e}"
    );
    // Sizes far beyond any model are refused from the config alone, and
    // sizes that disagree with the weights before anything is allocated
    // for them (these once panicked inside libtorch or allocated for
    // minutes).
    for (field, value, needle) in [
        (
            "hidden_channels",
            "1000000000",
            "hidden_channels must be an even number in 2..=4096",
        ),
        ("hidden_channels", "1e9", "hidden_channels"),
        ("num_layers", "1000000", "num_layers must be in 1..=64"),
        ("num_layers", "64", "the weights hold 2 layers"),
        (
            "hidden_channels",
            "4096",
            "asks for [num_elements, hidden_channels] = [118, 4096]",
        ),
        ("num_rbf", "100000", "num_rbf must be in 2..=1024"),
        (
            "max_neighbors",
            "100000000",
            "max_neighbors must be in 1..=1000",
        ),
        ("graph_radius", "1e300", "graph_radius must be in (0, 30] Å"),
    ] {
        let original = text
            .lines()
            .find(|l| l.contains(&format!("\"{field}\"")))
            .unwrap()
            .to_string();
        let changed = format!("  \"{field}\": {value},");
        std::fs::write(&config_path, text.replace(&original, &changed)).unwrap();
        let e = load(dir.path());
        assert!(e.contains(needle), "{field} = {value}: {e}");
    }
    // Weights holding NaN: refused at load, naming the tensor.
    std::fs::write(&config_path, &text).unwrap();
    let weights = dir.path().join("model.safetensors");
    let good_weights = std::fs::read(&weights).unwrap();
    let mut tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(&weights).unwrap();
    let victim = tensors
        .iter()
        .position(|(k, _)| k.starts_with("layers.1.position_update"))
        .unwrap();
    let _ = tensors[victim].1.fill_(f64::NAN);
    Tensor::write_safetensors(&tensors, &weights).unwrap();
    let e = load(dir.path());
    assert!(
        e.contains(&format!(
            "tensor '{}' holds NaN or infinite values",
            tensors[victim].0
        )),
        "{e}"
    );
    // Finite weights that overflow: the prediction is refused, never
    // returned as NaN.
    // Wp, the last map to the displacement: huge weights give an infinite
    // displacement whatever the features (a bias elsewhere could cancel in
    // a softmax).
    let _ = tensors[victim].1.fill_(0.0);
    let displacement = tensors
        .iter()
        .position(|(k, _)| k == "layers.1.position_update.pos_mlp.weight")
        .expect("the position head's weight");
    let _ = tensors[displacement].1.fill_(1e38);
    Tensor::write_safetensors(&tensors, &weights).unwrap();
    let relaxer = Relaxer::load(dir.path(), DeviceRequest::Cpu).unwrap();
    let e = relaxer
        .relax(&random_crystal(3, 5))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the prediction for frame 1 is out of range (an atom moved"),
        "{e}"
    );
    std::fs::write(&weights, good_weights).unwrap();
    // Missing files.
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    std::fs::write(&config_path, &text).unwrap();
    assert!(load(dir.path()).contains("model.safetensors: no such file"));
    assert!(load(&dir.path().join("nope")).contains("not a model directory"));
}

#[test]
fn relax_and_import_commands() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let model = small_model(&config, 5);
    let model_dir = dir.path().join("model");
    model.save(&model_dir).unwrap();

    // A multi-frame file in, the relaxed frames out, plus the trajectory.
    let crystals = vec![random_crystal(1, 4), random_crystal(2, 7)];
    let input = dir.path().join("in.extxyz");
    e3relax::io::write_file(&input, &crystals, None).unwrap();
    let output = dir.path().join("out.extxyz");
    let traj = dir.path().join("traj.extxyz");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = e3relax(&[
        "relax",
        &s(&input),
        "-o",
        &s(&output),
        "--model",
        &s(&model_dir),
        "--trajectory",
        &s(&traj),
        "--batch-size",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let relaxed = e3relax::io::read_file(&output, None).unwrap();
    let expected = Relaxer::from_model(model).relax(&crystals[1]).unwrap();
    assert_eq!(relaxed.len(), 2);
    // The CLI runs one libtorch thread by default and this process
    // libtorch's own count: f32 sums in another order, equal to 1e-5 Å.
    assert!(max_abs_diff(&relaxed[1].positions, &expected.positions) < 1e-5);
    assert_eq!(
        e3relax::io::read_file(&traj, None).unwrap().len(),
        2 * config.num_layers
    );

    // A folder in, a folder out, fixed cell.
    let folder = dir.path().join("inputs");
    std::fs::create_dir(&folder).unwrap();
    e3relax::io::write_file(&folder.join("POSCAR_a"), &crystals[..1], None).unwrap();
    e3relax::io::write_file(&folder.join("b.cif"), &crystals[1..], None).unwrap();
    let results = dir.path().join("results");
    let out = e3relax(&[
        "relax",
        &s(&folder),
        "-o",
        &s(&results),
        "--model",
        &s(&model_dir),
        "--fixed-cell",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = e3relax::io::read_file(results.join("POSCAR_a"), None)
        .unwrap()
        .remove(0);
    assert!(max_abs_diff(&a.lattice, &crystals[0].lattice) < 1e-12);
    assert!(results.join("b.cif").is_file());

    // A frame the model cannot take: stop (naming it), or with
    // --skip-invalid leave it out, name it, and relax the rest.
    let bad = e3relax::Structure::new_unchecked(
        [[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]],
        vec![[1.0, 1.0, 1.0], [1.2, 1.0, 1.0]],
        vec![8, 8],
    );
    let mixed = dir.path().join("mixed.extxyz");
    let text = e3relax::io::render(
        &[crystals[0].clone(), bad, crystals[1].clone()],
        e3relax::io::Format::ExtXyz,
    )
    .unwrap();
    std::fs::write(&mixed, text).unwrap();
    let kept = dir.path().join("kept.extxyz");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "relax".to_string(),
            s(&mixed),
            "-o".into(),
            s(&kept),
            "--model".into(),
            s(&model_dir),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        e3relax(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("frame 2") && err.contains("0.2000 Å apart"),
        "{err}"
    );
    assert!(!kept.exists());
    let out = run(&["--skip-invalid"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("skipped") && err.contains("frame 2") && err.contains("skipped 1"),
        "{err}"
    );
    let relaxed_kept = e3relax::io::read_file(&kept, None).unwrap();
    assert_eq!(relaxed_kept.len(), 2);
    // Batched with another crystal: equal to f32 rounding.
    assert!(max_abs_diff(&relaxed_kept[1].positions, &expected.positions) < 1e-5);

    // CUDA asked for without CUDA: one clear line, no fall-back.
    if !e3relax::runtime::cuda_available() {
        let out = e3relax(&[
            "relax",
            &s(&input),
            "-o",
            &s(&output),
            "--model",
            &s(&model_dir),
            "--device",
            "cuda",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("cuda:0 was requested but"),
            "{err}"
        );
    }
    let out = e3relax(&[
        "relax",
        &s(&input),
        "-o",
        &s(&output),
        "--model",
        &s(&dir.path().join("missing")),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a model directory"));

    // import-pytorch end to end.
    let theirs = dir.path().join("theirs.safetensors");
    write_authors_checkpoint(
        &Model::load(&model_dir, tch::Device::Cpu).unwrap(),
        &theirs,
        None,
        None,
    );
    let config_file = dir.path().join("config.json");
    std::fs::write(&config_file, config.to_json()).unwrap();
    let converted = dir.path().join("converted");
    let out = e3relax(&[
        "import-pytorch",
        &s(&theirs),
        "--config",
        &s(&config_file),
        "-o",
        &s(&converted),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = Relaxer::load(&converted, DeviceRequest::Cpu)
        .unwrap()
        .relax(&crystals[1])
        .unwrap();
    assert_eq!(again.positions, expected.positions);
}

/// Every config in the repository passes the typed check: the shipped
/// model directories' `config.json` and every training config's model
/// (and the training config itself), so a new rule about impossible
/// combinations never strands a committed recipe.
#[test]
fn every_committed_config_passes_the_typed_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut folders = vec![root.join("models")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    let (mut models, mut recipes) = (0, 0);
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        if name == "config.json" {
            let config =
                ModelConfig::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            e3relax::model::Architecture::try_from(&config).unwrap();
            models += 1;
        } else if path.parent().unwrap().ends_with("default-training")
            || path.parent().unwrap().ends_with("gpu")
            || name == "train.json"
        {
            let config = e3relax::train::TrainConfig::from_json(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            config.device_request().unwrap();
            if let Some(model) = &config.model {
                model
                    .validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            recipes += 1;
        }
    }
    assert!(
        models >= 5 && recipes >= 40,
        "{models} models, {recipes} recipes"
    );
}
