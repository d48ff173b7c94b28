//! The network, training and the C ABI on a CUDA device, checked against the
//! CPU. These tests need a GPU, so they are `#[ignore]`d on the CPU-only CI
//! and run by `scripts/gpu-check.sh` on a GPU machine
//! (`cuda-<hash> --include-ignored`); there a missing CUDA device is a
//! failure, never a skip.
//!
//! Tolerances: the CPU and CUDA kernels sum in different orders (and CUDA's
//! `index_add` uses atomics, so two CUDA runs differ too), so equality is to
//! f32 rounding amplified by four layers, not bit for bit.

mod common;

use std::ffi::CString;
use std::path::Path;

use common::c_api::*;
use common::c_decl::e3relax_status_t::*;
use common::c_decl::*;
use common::*;
use e3relax::model::{Model, ModelConfig};
use e3relax::relax::{RelaxOptions, Relaxer};
use e3relax::runtime::{cuda_unavailable_reason, DeviceRequest};
use e3relax::train::{train, TrainConfig};
use e3relax::Structure;

/// Largest difference CPU vs CUDA, Å, for the shipped (F=64) model.
const DEFAULT_TOLERANCE: f64 = 1e-4;

fn require_cuda() {
    if let Some(reason) = cuda_unavailable_reason() {
        panic!("these tests need CUDA: {reason}");
    }
}

/// Inputs of every kind the library meets: the shipped examples (a
/// triclinic cell, a 192-site MoS2 supercell with vacuum) and random
/// crystals of mixed sizes.
fn inputs() -> Vec<Structure> {
    let mut all = Vec::new();
    for file in [
        "examples/structures/triclinic-K4P4Te8.extxyz",
        "examples/structures/mos2-defects.extxyz",
    ] {
        all.extend(e3relax::io::read_file(Path::new(file), None).unwrap());
    }
    all.extend((0..6).map(|seed| random_crystal(500 + seed, 3 + 4 * seed as usize)));
    all
}

fn relax_all(relaxer: &Relaxer, structures: &[Structure], batch_size: usize) -> Vec<Structure> {
    relaxer
        .relax_many(
            structures,
            &RelaxOptions {
                batch_size,
                keep_trajectory: true,
                ..Default::default()
            },
        )
        .unwrap()
        .into_iter()
        .flat_map(|r| {
            let mut layers = r.trajectory;
            layers.push(r.relaxed);
            layers
        })
        .collect()
}

/// Worst coordinate and lattice difference (Å) between two lists of
/// structures (same atoms, same order).
fn worst_difference(a: &[Structure], b: &[Structure]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            max_abs_diff(&x.positions, &y.positions).max(max_abs_diff(&x.lattice, &y.lattice))
        })
        .fold(0.0, f64::max)
}

#[test]
#[ignore = "needs a CUDA device: run scripts/gpu-check.sh on a GPU machine"]
fn shipped_model_on_cuda_matches_the_cpu_layer_by_layer() {
    require_cuda();
    let structures = inputs();
    let cpu = Relaxer::load(Path::new("models/default"), DeviceRequest::Cpu).unwrap();
    let gpu = Relaxer::load(Path::new("models/default"), DeviceRequest::Cuda(0)).unwrap();
    assert!(gpu.model().device().is_cuda());
    let on_cpu = relax_all(&cpu, &structures, 4);
    let on_gpu = relax_all(&gpu, &structures, 4);
    let worst = worst_difference(&on_cpu, &on_gpu);
    println!("shipped model, CPU vs CUDA, all layers: worst {worst:.2e} Å");
    assert!(worst < DEFAULT_TOLERANCE, "CPU vs CUDA: {worst:e} Å");
    // `auto` picks the GPU when there is one.
    let auto = Relaxer::load(Path::new("models/default"), DeviceRequest::Auto).unwrap();
    assert!(auto.model().device().is_cuda());
}

#[test]
#[ignore = "needs a CUDA device: run scripts/gpu-check.sh on a GPU machine"]
fn published_size_on_cuda_matches_the_cpu() {
    require_cuda();
    let dir = tempfile::tempdir().unwrap();
    Model::new(&ModelConfig::published(), 11)
        .unwrap()
        .save(dir.path())
        .unwrap();
    let structures = inputs();
    let cpu = Relaxer::load(dir.path(), DeviceRequest::Cpu).unwrap();
    let gpu = Relaxer::load(dir.path(), DeviceRequest::Cuda(0)).unwrap();
    let on_cpu = relax_all(&cpu, &structures, 3);
    let on_gpu = relax_all(&gpu, &structures, 3);
    // Random F=512 weights move atoms by ~1 Å, so relative f32 error is the
    // scale here.
    let worst = worst_difference(&on_cpu, &on_gpu);
    println!("published size, CPU vs CUDA, all layers: worst {worst:.2e} Å");
    assert!(worst < 1e-3, "CPU vs CUDA: {worst:e} Å");
}

#[test]
#[ignore = "needs a CUDA device: run scripts/gpu-check.sh on a GPU machine"]
fn on_cuda_rotations_rotate_and_batches_do_not_leak() {
    require_cuda();
    let gpu = Relaxer::load(Path::new("models/default"), DeviceRequest::Cuda(0)).unwrap();
    let structures = inputs();
    let mut worst_rotation: f64 = 0.0;
    for (k, s) in structures.iter().enumerate() {
        let r = random_rotation(900 + k as u64);
        let a = rotate(&gpu.relax(s).unwrap(), &r);
        let b = gpu.relax(&rotate(s, &r)).unwrap();
        worst_rotation = worst_rotation
            .max(max_abs_diff(&a.positions, &b.positions))
            .max(max_abs_diff(&a.lattice, &b.lattice));
    }
    println!("CUDA rotation error: {worst_rotation:.2e} Å");
    assert!(worst_rotation < 1e-4, "rotation error {worst_rotation:e} Å");

    let alone = relax_all(&gpu, &structures, 1);
    let batched = relax_all(&gpu, &structures, structures.len());
    let worst = worst_difference(&alone, &batched);
    println!("CUDA batch vs alone: {worst:.2e} Å");
    // cuBLAS picks its kernel by matrix size, so a batch sums in another
    // order than one structure alone (1.1e-5 Å measured on an H200); a
    // structure leaking into another would show up orders of magnitude above.
    assert!(worst < 1e-4, "batch vs alone {worst:e} Å");
}

fn train_config(dir: &Path, device: &str, epochs: usize) -> TrainConfig {
    TrainConfig::from_json(&format!(
        r#"{{"data": ["tests/fixtures/pairs/bulk-small"], "validation_fraction": 0.25,
            "model": {{"hidden_channels": 16, "num_layers": 2, "num_rbf": 8, "rbf_cutoff": 30.0,
                       "envelope_exponent": 5, "num_elements": 118, "graph_radius": 5.0,
                       "max_neighbors": 20}},
            "batch_size": 4, "lr": 0.002, "ema_decay": 0.5, "max_epochs": {epochs},
            "threads": 2, "seed": 3, "early_stop_patience": 100, "device": "{device}",
            "position_noise": 0.02, "output": {:?}}}"#,
        dir.join(device)
    ))
    .unwrap()
}

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

#[test]
#[ignore = "needs a CUDA device: run scripts/gpu-check.sh on a GPU machine"]
fn training_on_cuda_follows_the_cpu_and_resumes() {
    require_cuda();
    let dir = tempfile::tempdir().unwrap();
    let mut summaries = Vec::new();
    for device in ["cpu", "cuda"] {
        let config = train_config(dir.path(), device, 3);
        summaries.push(
            train(
                &config,
                false,
                &mut |_| std::ops::ControlFlow::Continue(()),
                &mut |_: &str| {},
            )
            .unwrap(),
        );
    }
    let (cpu, gpu) = (
        losses(&dir.path().join("cpu")),
        losses(&dir.path().join("cuda")),
    );
    println!("train loss per epoch, CPU {cpu:?}, CUDA {gpu:?}");
    assert_eq!(cpu.len(), 3);
    for (a, b) in cpu.iter().zip(&gpu) {
        assert!((a - b).abs() < 1e-3 * a.abs(), "loss CPU {a} vs CUDA {b}");
    }
    let mae = |s: &e3relax::train::TrainSummary| s.best_coordinate_mae;
    assert!(
        (mae(&summaries[0]) - mae(&summaries[1])).abs() < 1e-3,
        "validation coordinate MAE CPU {} vs CUDA {}",
        mae(&summaries[0]),
        mae(&summaries[1])
    );
    // Resume on CUDA: optimizer and EMA state go back onto the device.
    let more = train_config(dir.path(), "cuda", 5);
    let resumed = train(
        &more,
        true,
        &mut |_| std::ops::ControlFlow::Continue(()),
        &mut |_: &str| {},
    )
    .unwrap();
    assert_eq!(resumed.epochs, 5);
    assert_eq!(losses(&dir.path().join("cuda")).len(), 5);
    let relaxer = Relaxer::load(&resumed.best_model, DeviceRequest::Cuda(0)).unwrap();
    relaxer.relax(&inputs()[0]).unwrap();
}

#[test]
#[ignore = "needs a CUDA device: run scripts/gpu-check.sh on a GPU machine"]
fn c_abi_loads_on_cuda_and_agrees_with_the_cpu() {
    require_cuda();
    let path = CString::new("models/default").unwrap();
    let load_ok = |options: &str| {
        let (status, model) = load(&path, Some(options));
        assert_eq!(status, E3RELAX_SUCCESS, "{}", last_error());
        model
    };
    let (cpu, gpu) = (
        load_ok(r#"{"device": "cpu"}"#),
        load_ok(r#"{"device": "cuda:0"}"#),
    );
    let mut count = 0;
    assert_eq!(
        unsafe { e3relax_cuda_device_count(&mut count) },
        E3RELAX_SUCCESS
    );
    assert!(count >= 1);
    let (numbers, positions, lattice) = arrays(&inputs()[0]);
    let mut outputs = Vec::new();
    for model in [cpu, gpu] {
        let (status, pos, lat) = predict(model, &numbers, &positions, &lattice);
        assert_eq!(status, E3RELAX_SUCCESS);
        outputs.push((pos, lat));
        unsafe { e3relax_free(model) };
    }
    let worst = outputs[0]
        .0
        .iter()
        .chain(&outputs[0].1)
        .zip(outputs[1].0.iter().chain(&outputs[1].1))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < DEFAULT_TOLERANCE, "C ABI CPU vs CUDA: {worst:e} Å");
    // A device index past the last one is an error naming the count.
    let (status, model) = load(&path, Some(r#"{"device": "cuda:99"}"#));
    assert_ne!(status, E3RELAX_SUCCESS);
    assert!(model.is_null());
    let message = last_error();
    assert!(message.contains("cuda:99"), "{message}");
}
