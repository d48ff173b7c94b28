//! Training and evaluation as a user runs them: a run that learns, a killed
//! run resumed bit for bit, the eval table.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pairs")
        .join(name)
}

fn e3relax() -> Command {
    Command::new(env!("CARGO_BIN_EXE_e3relax"))
}

fn write_config(dir: &Path, epochs: usize) -> PathBuf {
    let model = r#"{"hidden_channels": 8, "num_layers": 2, "num_rbf": 8, "rbf_cutoff": 30.0,
        "envelope_exponent": 5, "num_elements": 118, "graph_radius": 5.0, "max_neighbors": 20}"#;
    let config = format!(
        r#"{{"data": [{:?}], "validation_fraction": 0.25, "model": {model}, "batch_size": 4,
            "lr": 0.002, "ema_decay": 0.5, "max_epochs": {epochs}, "threads": 1, "seed": 3,
            "early_stop_patience": 100, "rotation_augmentation": true,
            "position_noise": 0.03}}"#,
        fixture("bulk-small")
    );
    let path = dir.join("train.json");
    std::fs::write(&path, config).unwrap();
    path
}

/// The weights file of a run's last committed checkpoint.
fn latest_weights_file(run: &Path) -> PathBuf {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap())
            .unwrap();
    let step = state["files_step"].as_i64().unwrap();
    run.join(format!("checkpoint/weights-{step}.safetensors"))
}

fn weights(run: &Path) -> Vec<u8> {
    std::fs::read(latest_weights_file(run)).unwrap()
}

/// `|w_a - w_b| / |w_a|` over all weights of two runs' last checkpoints
/// (the same parameter names in both).
fn relative_weight_difference(a: &Path, b: &Path) -> f64 {
    let read = |run: &Path| {
        let mut weights = tch::Tensor::read_safetensors(latest_weights_file(run)).unwrap();
        weights.sort_by(|x, y| x.0.cmp(&y.0));
        weights
    };
    let (a, b) = (read(a), read(b));
    assert_eq!(a.len(), b.len());
    let (mut diff, mut norm) = (0.0, 0.0);
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        diff += (ta - tb).square().sum(tch::Kind::Double).double_value(&[]);
        norm += ta.square().sum(tch::Kind::Double).double_value(&[]);
    }
    (diff / norm).sqrt()
}

#[test]
fn a_killed_run_resumes_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 6);
    let straight = dir.path().join("straight");
    let out = e3relax()
        .args([
            "train",
            "--config",
            config.to_str().unwrap(),
            "-o",
            straight.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(straight.join("metrics.csv")).unwrap();
    assert_eq!(log.lines().count(), 7, "{log}");
    assert!(straight.join("best/model.safetensors").is_file());

    // Same run, killed once its second round is checkpointed (the test
    // hook aborts the process there: no clean-up, as SIGKILL, at the same
    // point however fast the machine is).
    let killed = dir.path().join("killed");
    let out = e3relax()
        .args([
            "train",
            "--config",
            config.to_str().unwrap(),
            "-o",
            killed.to_str().unwrap(),
        ])
        .env("E3RELAX_TEST_ABORT_AFTER_ROUND", "2")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the run was not killed after its second round"
    );
    let rounds = std::fs::read_to_string(killed.join("metrics.csv")).unwrap();
    assert_eq!(rounds.lines().count(), 3, "{rounds}");
    // What other kills leave behind: temporary files, best/ moved aside
    // in the middle of its replacement, a log row of a round whose
    // checkpoint never committed.
    std::fs::write(
        killed.join("checkpoint/.weights-9.safetensors.x1y2.tmp"),
        "junk",
    )
    .unwrap();
    std::fs::write(killed.join(".metrics.csv.a1b2.tmp"), "junk").unwrap();
    if killed.join("best").exists() {
        std::fs::rename(killed.join("best"), killed.join(".best.old")).unwrap();
    }
    std::fs::create_dir(killed.join(".best.q7.new")).unwrap();
    let mut rows = std::fs::read_to_string(killed.join("metrics.csv")).unwrap();
    rows.push_str("99,0,0,0,0,0,0,0,0,0,0\n");
    std::fs::write(killed.join("metrics.csv"), rows).unwrap();
    let out = e3relax()
        .args([
            "train",
            "--config",
            config.to_str().unwrap(),
            "-o",
            killed.to_str().unwrap(),
            "--resume",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed at epoch"));
    assert_eq!(
        weights(&straight),
        weights(&killed),
        "resumed weights differ from the uninterrupted run"
    );
    // Every round logged once, in order; nothing temporary left; best/
    // complete.
    for file in ["metrics.csv", "metrics.jsonl"] {
        let text = std::fs::read_to_string(killed.join(file)).unwrap();
        let epochs: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with("epoch"))
            .map(|l| {
                l.trim_start_matches("{\"epoch\":")
                    .split(',')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(epochs, ["0", "1", "2", "3", "4", "5"], "{file}: {text}");
    }
    for folder in [
        killed.clone(),
        killed.join("checkpoint"),
        killed.join("best"),
    ] {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with('.'),
                "{} left in {}",
                name,
                folder.display()
            );
        }
    }
    assert!(killed.join("best/model.safetensors").is_file());
    assert!(killed.join("best/config.json").is_file());
}

#[test]
fn training_lowers_the_loss_and_eval_prints_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 12);
    let run = dir.path().join("run");
    let out = e3relax()
        .args([
            "train",
            "--config",
            config.to_str().unwrap(),
            "-o",
            run.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = lines[0]["train_loss"].as_f64().unwrap();
    let last = lines.last().unwrap()["train_loss"].as_f64().unwrap();
    assert!(last < first, "train loss went from {first} to {last}");

    let csv = dir.path().join("per-structure.csv");
    let out = e3relax()
        .args([
            "eval",
            "--model",
            run.join("best").to_str().unwrap(),
            "--data",
            fixture("bulk-small").to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
            "--group-by",
            "source",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Dummy") && table.contains("E3Relax") && table.contains("coord MAE"),
        "{table}"
    );
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 25);
    // Per source, each line with its count; the counts add up.
    let by_source = table.split("by source").nth(1).expect("a per-source table");
    let counts: usize = by_source
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            ["aflow", "perturb", "random", "xmno"]
                .contains(&cells.first()?.trim())
                .then(|| cells[1].parse::<usize>().unwrap())
        })
        .sum();
    assert_eq!(counts, 24, "{table}");
    assert!(
        table.contains("fixed point: relaxed structures as inputs"),
        "{table}"
    );

    // The fixed-point report: the relaxed structures fed back, as they are
    // and rattled by 0.01 Å (whose Dummy error is then 0.01 sqrt(2/pi)).
    let out = e3relax()
        .args([
            "eval",
            "--model",
            run.join("best").to_str().unwrap(),
            "--data",
            fixture("bulk-small").to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fixed = &json["fixed_point"];
    let get = |key: &str| {
        fixed[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {fixed}"))
    };
    let rattle = fixed["rattled_dummy"]["coordinate_mae"].as_f64().unwrap();
    let expected = 0.01 * (2.0 / std::f64::consts::PI).sqrt();
    assert!(
        (rattle - expected).abs() < 0.15 * expected,
        "{rattle} vs {expected}"
    );
    assert_eq!(fixed["rattled_dummy"]["volume_error"].as_f64(), Some(0.0));
    assert!(get("volume_change_median") <= get("volume_change_p95"));
    assert!(get("volume_change_p95") <= get("volume_change_max"));
    assert!((0.0..=1.0).contains(&get("share_over_3_percent")));
    assert!(get("share_over_5_percent") <= get("share_over_3_percent"));
    assert!(fixed["exact"]["coordinate_mae"].as_f64().unwrap() >= 0.0);

    // Bad settings are one clear line.
    let out = e3relax()
        .args([
            "train",
            "--data",
            "/nonexistent",
            "-o",
            run.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("model config"),
        "{err}"
    );
}

/// Issue 23.11 and 23.9: `-o` of an existing run without `--resume` is
/// refused (unless `--overwrite`), and a run that cannot start (no data)
/// leaves no run folder.
#[test]
fn an_existing_run_is_never_replaced_silently() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1);
    let run = dir.path().join("run");
    let train = |extra: &[&str]| {
        let mut command = e3relax();
        command.args([
            "train",
            "--config",
            config.to_str().unwrap(),
            "-o",
            run.to_str().unwrap(),
        ]);
        command.args(extra).output().unwrap()
    };
    let out = train(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = weights(&run);
    let metrics = std::fs::read(run.join("metrics.csv")).unwrap();
    let out = train(&["--seed", "9"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("holds a training run already") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(weights(&run), before, "the refused run changed the weights");
    assert_eq!(std::fs::read(run.join("metrics.csv")).unwrap(), metrics);
    let out = train(&["--seed", "9", "--overwrite"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(weights(&run), before, "--overwrite did not replace the run");

    let missing = dir.path().join("no-data-run");
    let out = e3relax()
        .args([
            "train",
            "--config",
            config.to_str().unwrap(),
            "--data",
            dir.path().join("no-such-data").to_str().unwrap(),
            "-o",
            missing.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !missing.exists(),
        "a run that never started left its folder"
    );
}

/// Single-point labels train the energy-surface heads beside the
/// relaxation loss (`--set` reaches the nested model field), the heads are
/// part of the exported model, and a config that asks for labels without
/// heads is refused by name.
#[test]
fn single_point_labels_train_the_surface_heads() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 2);
    let labels = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/single-points");
    let run = dir.path().join("run");
    let single_points = format!("single_points=[{:?}]", labels.to_str().unwrap());
    let out = e3relax()
        .args([
            "train",
            "--config",
            config.to_str().unwrap(),
            "-o",
            run.to_str().unwrap(),
            "--set",
            "model.surface_heads=true",
            "--set",
            &single_points,
            "--set",
            "single_point_batch_size=4",
            "-q",
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("20 single-point labels"), "{log}");
    let weights = std::fs::read(run.join("best/model.safetensors")).unwrap();
    // safetensors: an 8-byte little-endian length, then the JSON header.
    let length = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8_lossy(&weights[8..8 + length]);
    assert!(
        header.contains("surface_heads.force_vector.weight"),
        "{header}"
    );
    // The exported model relaxes as any other.
    let relaxed = dir.path().join("out.extxyz");
    let out = e3relax()
        .args([
            "relax",
            fixture("bulk-small")
                .join("unrelaxed.extxyz")
                .to_str()
                .unwrap(),
            "-o",
            relaxed.to_str().unwrap(),
            "--model",
            run.join("best").to_str().unwrap(),
            "-q",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The surface trust: refused, by name, until the heads' scales are
    // measured; with scales far above anything the heads say (K huge) every
    // crystal stays where it was, with tiny ones it gets the raw prediction.
    let best = run.join("best");
    let relax_with_trust = |k: &str, output: &Path| {
        e3relax()
            .args([
                "relax",
                fixture("bulk-small")
                    .join("unrelaxed.extxyz")
                    .to_str()
                    .unwrap(),
                "-o",
                output.to_str().unwrap(),
                "--model",
                best.to_str().unwrap(),
                "--surface-trust",
                k,
                "-q",
            ])
            .output()
            .unwrap()
    };
    let trusted = dir.path().join("trusted.extxyz");
    let out = relax_with_trust("1", &trusted);
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !trusted.exists());
    assert!(
        error.contains("surface_trust.json") && error.contains("e3relax calibrate"),
        "{error}"
    );
    let out = e3relax()
        .args([
            "calibrate",
            "--model",
            best.to_str().unwrap(),
            "--data",
            fixture("bulk-small").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scales: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("surface_trust.json")).unwrap())
            .unwrap();
    assert!(scales["force"].as_f64().unwrap() > 0.0, "{scales}");
    assert!(scales["virial"].as_f64().unwrap() > 0.0, "{scales}");
    let inputs =
        e3relax::io::read_file(fixture("bulk-small").join("unrelaxed.extxyz"), None).unwrap();
    let raw = e3relax::io::read_file(&relaxed, None).unwrap();
    for (k, expected) in [("1e12", &inputs), ("1e-12", &raw)] {
        let out = relax_with_trust(k, &trusted);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = e3relax::io::read_file(&trusted, None).unwrap();
        let factors: Vec<f64> = got
            .iter()
            .map(|s| {
                s.info_value("e3relax_surface_factor")
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(
            factors
                .iter()
                .all(|&f| if k == "1e12" { f == 0.0 } else { f == 1.0 }),
            "K {k}: {factors:?}"
        );
        for (g, e) in got.iter().zip(expected.iter()) {
            let rows = g.positions.iter().chain(&g.lattice);
            let want = e.positions.iter().chain(&e.lattice);
            for (a, b) in rows.zip(want) {
                assert!(
                    (0..3).all(|c| (a[c] - b[c]).abs() < 1e-6),
                    "K {k}: {a:?} vs {b:?}"
                );
            }
        }
    }
    // A default K in the scales file: used unless the caller says
    // otherwise.
    let out = e3relax()
        .args([
            "calibrate",
            "--model",
            best.to_str().unwrap(),
            "--data",
            fixture("bulk-small").to_str().unwrap(),
            "--default",
            "1e12",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (flag, expected) in [(None, &inputs), (Some("--no-surface-trust"), &raw)] {
        let mut command = e3relax();
        command.args([
            "relax",
            fixture("bulk-small")
                .join("unrelaxed.extxyz")
                .to_str()
                .unwrap(),
            "-o",
            trusted.to_str().unwrap(),
            "--model",
            best.to_str().unwrap(),
            "-q",
        ]);
        command.args(flag);
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = e3relax::io::read_file(&trusted, None).unwrap();
        for (g, e) in got.iter().zip(expected.iter()) {
            for (a, b) in g.positions.iter().zip(&e.positions) {
                assert!((0..3).all(|c| (a[c] - b[c]).abs() < 1e-6), "{flag:?}");
            }
        }
    }
    // A model without the heads has nothing to read.
    let plain = dir.path().join("plain-model");
    crate::common::small_model(&crate::common::small_config().invariant(), 1)
        .save(&plain)
        .unwrap();
    let out = e3relax()
        .args([
            "relax",
            fixture("bulk-small")
                .join("unrelaxed.extxyz")
                .to_str()
                .unwrap(),
            "-o",
            trusted.to_str().unwrap(),
            "--model",
            plain.to_str().unwrap(),
            "--surface-trust",
            "1",
        ])
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && error.contains("surface_heads"),
        "{error}"
    );

    let out = e3relax()
        .args([
            "train",
            "--config",
            config.to_str().unwrap(),
            "-o",
            dir.path().join("refused").to_str().unwrap(),
            "--set",
            &single_points,
        ])
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(error.contains("model.surface_heads"), "{error}");
    assert!(!dir.path().join("refused").exists());
}

/// Data-parallel training (two processes, here two threads of one process
/// sharing every batch through `ThreadGroup`) takes the single process's
/// steps: the same weights after 20 steps within 1e-5 (relative, over all
/// weights), only rank 0 writes, and the run resumes on one process.
#[test]
fn two_processes_take_the_single_process_steps() {
    use e3relax::train::{train, train_shared, ThreadGroup, TrainConfig};
    use std::ops::ControlFlow;
    let dir = tempfile::tempdir().unwrap();
    let labels = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/single-points");
    let config_for = |output: &Path, epochs: usize| {
        let text = std::fs::read_to_string(write_config(dir.path(), epochs)).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["output"] = output.to_str().unwrap().into();
        json["model"]["surface_heads"] = true.into();
        json["single_points"] = serde_json::json!([labels.to_str().unwrap()]);
        json["single_point_batch_size"] = 4.into();
        TrainConfig::from_json(&json.to_string()).unwrap()
    };
    let quiet = |_: &e3relax::train::Progress| ControlFlow::Continue(());
    let single = dir.path().join("single");
    let shared = dir.path().join("shared");
    // 18 training pairs in batches of 4: 5 steps per round (the last of 2
    // pairs, one per process), 4 rounds.
    let summary = train(&config_for(&single, 4), false, &mut { quiet }, &mut |_| {}).unwrap();
    assert_eq!(summary.steps, 20);
    let group = ThreadGroup::new(2);
    let config = config_for(&shared, 4);
    std::thread::scope(|scope| {
        for member in &group {
            let config = &config;
            scope.spawn(move || {
                train_shared(config, false, &mut { quiet }, &mut |_| {}, Some(member)).unwrap()
            });
        }
    });
    let after_20 = relative_weight_difference(&single, &shared);
    eprintln!("relative difference of the weights after 20 steps: {after_20:e}");
    assert!(after_20 < 1e-5, "relative difference {after_20:e}");
    // Rank 0 wrote the folder as a single process would; the validation
    // pass, split between the processes, gives the same numbers.
    for name in ["checkpoint", "best", "metrics.csv", "train_config.json"] {
        assert!(shared.join(name).exists(), "{name}");
    }
    let validation = |run: &Path| -> Vec<f64> {
        let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
        let last = text.lines().last().unwrap().to_string();
        last.split(',')
            .skip(4)
            .take(6)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    for (a, b) in validation(&single).iter().zip(validation(&shared)) {
        assert!((a - b).abs() <= 1e-5 * a.abs(), "{a} vs {b}");
    }
    // Both continue for a round on one process: still the same.
    train(&config_for(&single, 5), true, &mut { quiet }, &mut |_| {}).unwrap();
    let resumed = train(&config_for(&shared, 5), true, &mut { quiet }, &mut |_| {}).unwrap();
    assert_eq!(resumed.steps, 25);
    let after_25 = relative_weight_difference(&single, &shared);
    assert!(after_25 < 1e-5, "relative difference {after_25:e}");
}

/// `mpirun -np 2 e3relax train` (the `mpi` feature): the single process's
/// weights after 20 steps within 1e-5 (relative), a run folder as a single
/// process writes it, and a resume on one process.
#[cfg(feature = "mpi")]
#[test]
fn mpirun_training_takes_the_single_process_steps() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 4);
    let run = |output: &Path, ranks: Option<usize>, extra: &[&str]| {
        let mut command = match ranks {
            Some(n) => {
                let mut c = Command::new("mpirun");
                c.args([
                    "--allow-run-as-root",
                    "--oversubscribe",
                    "-np",
                    &n.to_string(),
                ])
                .arg(env!("CARGO_BIN_EXE_e3relax"));
                c
            }
            None => e3relax(),
        };
        let out = command
            .args(["train", "--config", config.to_str().unwrap(), "-o"])
            .arg(output)
            .arg("-q")
            .args(extra)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{log}");
        log
    };
    let single = dir.path().join("single");
    let shared = dir.path().join("shared");
    run(&single, None, &[]);
    let log = run(&shared, Some(2), &[]);
    // Rank 0 alone reports: one line per round.
    assert_eq!(log.matches("epoch    3 step").count(), 1, "{log}");
    assert!(shared.join("checkpoint/weights-20.safetensors").exists());
    let after_20 = relative_weight_difference(&single, &shared);
    assert!(after_20 < 1e-5, "{after_20:e}");
    run(&shared, None, &["--resume", "--epochs", "5"]);
    assert!(shared.join("checkpoint/weights-25.safetensors").exists());

    // Ranks that die after round 2 (the kill hook, as SIGKILL would) end
    // the job; its last committed checkpoint resumes on one process to the
    // same weights as the run that was never killed.
    let killed = dir.path().join("killed");
    let out = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        .args(["-x", "E3RELAX_TEST_ABORT_AFTER_ROUND"])
        .env("E3RELAX_TEST_ABORT_AFTER_ROUND", "2")
        .arg(env!("CARGO_BIN_EXE_e3relax"))
        .args(["train", "--config", config.to_str().unwrap(), "-o"])
        .arg(&killed)
        .arg("-q")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(killed.join("checkpoint/weights-10.safetensors").exists());
    run(&killed, None, &["--resume"]);
    assert!(killed.join("checkpoint/weights-20.safetensors").exists());
    let resumed = relative_weight_difference(&single, &killed);
    assert!(resumed < 1e-5, "{resumed:e}");
}

/// The volume prior's tensors in a run's exported best model.
fn volume_prior_of(run: &Path) -> Vec<(String, Vec<f64>)> {
    let mut tensors = tch::Tensor::read_safetensors(run.join("best/model.safetensors")).unwrap();
    tensors.retain(|(name, _)| name.starts_with("volume_prior."));
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
        .into_iter()
        .map(|(name, t)| {
            let values = Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1));
            (name, values.unwrap())
        })
        .collect()
}

#[test]
fn a_held_volume_prior_stays_at_the_volume_baselines_fit() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1);
    let train = |name: &str, epochs: &str, hold: &str| {
        let run = dir.path().join(name);
        let out = e3relax()
            .args(["train", "--config", config.to_str().unwrap()])
            .args(["-o", run.to_str().unwrap(), "-q"])
            .args(["--set", "model.volume_prior=true"])
            .args(["--set", &format!("max_epochs={epochs}")])
            .args(["--set", &format!("hold_volume_prior={hold}")])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{log}");
        (volume_prior_of(&run), log)
    };
    let (held_short, log) = train("held-1", "1", "true");
    assert!(log.contains("volume prior held at its start"), "{log}");
    let (held_long, _) = train("held-3", "3", "true");
    let (trained, _) = train("trained-3", "3", "false");
    let names: Vec<&str> = held_long.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["volume_prior.log_volume", "volume_prior.weight"]);
    // Held: the weight g is the baseline's 0.5, and three epochs leave the
    // per-element volumes exactly where one epoch left them: the fit on
    // the training pairs, not the untrained default.
    assert_eq!(held_long, held_short);
    assert_eq!(held_long[1].1, vec![0.5]);
    let oxygen = held_long[0].1[8];
    let untrained = e3relax::model::network::DEFAULT_ATOM_VOLUME.ln();
    assert!((oxygen - untrained).abs() > 1e-3, "{oxygen}");
    // Trained, the same three epochs move them.
    assert_ne!(trained[1].1, vec![0.5]);
    assert_ne!(trained[0].1[8], oxygen);
}

#[test]
fn holding_a_volume_prior_the_model_has_not_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1);
    let out = e3relax()
        .args(["train", "--config", config.to_str().unwrap()])
        .args(["-o", dir.path().join("run").to_str().unwrap(), "-q"])
        .args(["--set", "hold_volume_prior=true"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        log.contains("hold_volume_prior needs a model with a volume prior"),
        "{log}"
    );
    assert!(!dir.path().join("run").exists());
}

/// Surface pre-training steps through the single-point labels alone: the
/// relaxation loss is off (the volume prior, which only the relaxation
/// reaches, stays at the baseline's fit while the heads move), an epoch is
/// one pass of label batches, the newest weights are always `best`, and a
/// second run trains the relaxation from them with `init_from`.
#[test]
fn surface_pretraining_trains_on_single_points_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 1);
    let labels = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/single-points");
    let single_points = format!("single_points=[{:?}]", labels.to_str().unwrap());
    let pretrain = |name: &str, epochs: &str| {
        let run = dir.path().join(name);
        let out = e3relax()
            .args(["train", "--config", config.to_str().unwrap()])
            .args(["-o", run.to_str().unwrap(), "-q"])
            .args(["--set", "model.volume_prior=true"])
            .args(["--set", "model.surface_heads=true"])
            .args(["--set", &single_points])
            .args(["--set", "single_point_batch_size=4"])
            .args(["--set", "surface_pretraining=true"])
            .args(["--set", &format!("max_epochs={epochs}")])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{log}");
        (run, log)
    };
    let (short, log) = pretrain("pre-1", "1");
    // 20 labels in batches of 4.
    assert!(
        log.contains("surface pre-training: 5 single-point batches per epoch"),
        "{log}"
    );
    let (long, _) = pretrain("pre-3", "3");
    assert_eq!(volume_prior_of(&short), volume_prior_of(&long));
    let head = |run: &Path| {
        let mut tensors =
            tch::Tensor::read_safetensors(run.join("best/model.safetensors")).unwrap();
        tensors.retain(|(name, _)| name == "surface_heads.force_vector.weight");
        Vec::<f64>::try_from(tensors[0].1.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap()
    };
    assert_ne!(head(&short), head(&long));
    // Three rounds of five steps; the best is the newest round's.
    let metrics = std::fs::read_to_string(long.join("metrics.csv")).unwrap();
    let rounds: Vec<Vec<&str>> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let steps: Vec<&str> = rounds.iter().map(|r| r[1]).collect();
    assert_eq!(steps, ["5", "10", "15"]);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(long.join("checkpoint/state.json")).unwrap())
            .unwrap();
    let last: f64 = rounds[2][4].parse().unwrap();
    let best = state["best_coordinate_mae"].as_f64().unwrap();
    assert!((best - last).abs() < 1e-9, "{best} against {last}");
    // The relaxation, trained from the pre-trained weights.
    let run = dir.path().join("after");
    let out = e3relax()
        .args(["train", "--config", config.to_str().unwrap()])
        .args(["-o", run.to_str().unwrap(), "-q"])
        .args([
            "--set",
            &format!("init_from={:?}", long.join("best").to_str().unwrap()),
        ])
        .args(["--set", &single_points])
        .args(["--set", "single_point_batch_size=4"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(run.join("best/model.safetensors").exists());
    // Pre-training without labels is refused by name.
    let out = e3relax()
        .args(["train", "--config", config.to_str().unwrap()])
        .args(["-o", dir.path().join("none").to_str().unwrap(), "-q"])
        .args(["--set", "surface_pretraining=true"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(log.contains("surface_pretraining"), "{log}");
    assert!(!dir.path().join("none").exists());
}
