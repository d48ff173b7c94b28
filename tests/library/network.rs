//! Properties of the network that would fail if a formula were wrong:
//! rotation equivariance (and why FIX 1 exists), permutation, periodic
//! images (FIX 2), batching, save/load, the published size.

use crate::common::*;
use e3relax::linalg;
use e3relax::model::{Model, ModelConfig};
use e3relax::relax::{RelaxOptions, Relaxer};

fn relax_all(
    model: Model,
    structures: &[e3relax::Structure],
    batch_size: usize,
) -> (Relaxer, Vec<e3relax::Structure>) {
    let relaxer = Relaxer::from_model(model);
    let out = relaxer
        .relax_many(
            structures,
            &RelaxOptions {
                batch_size,
                ..Default::default()
            },
        )
        .unwrap()
        .into_iter()
        .map(|r| r.relaxed)
        .collect();
    (relaxer, out)
}

fn rotation_error(config: &ModelConfig) -> f64 {
    let mut worst: f64 = 0.0;
    for seed in 0..4 {
        let crystal = random_crystal(seed, 5 + seed as usize);
        let rotation = random_rotation(100 + seed);
        let relaxer = Relaxer::from_model(small_model(config, seed as i64));
        let a = relaxer.relax(&crystal).unwrap();
        let b = relaxer.relax(&rotate(&crystal, &rotation)).unwrap();
        let a_rotated = rotate(&a, &rotation);
        worst = worst
            .max(max_abs_diff(&a_rotated.positions, &b.positions))
            .max(max_abs_diff(&a_rotated.lattice, &b.lattice));
        // The network must actually move things for the test to mean anything.
        assert!(max_abs_diff(&a.positions, &crystal.positions) > 1e-3);
    }
    worst
}

#[test]
fn rotating_the_input_rotates_the_output_with_fix1() {
    let err = rotation_error(&small_config());
    assert!(err < 1e-4, "rotation error {err} Å");
}

#[test]
fn without_fix1_the_authors_lattice_update_is_not_equivariant() {
    // Adding dl_c to column c mixes Cartesian components with lattice
    // indices: a rotated input no longer gives the rotated output.
    let config = ModelConfig {
        lattice_delta_as_columns: true,
        ..small_config()
    };
    let err = rotation_error(&config);
    assert!(
        err > 1e-3,
        "expected a visible error without FIX 1, got {err}"
    );
}

#[test]
fn permuting_atoms_permutes_outputs() {
    let crystal = random_crystal(7, 9);
    let order = [4usize, 0, 8, 2, 6, 1, 3, 7, 5];
    let mut permuted = crystal.clone();
    permuted.positions = order.iter().map(|&i| crystal.positions[i]).collect();
    permuted.numbers = order.iter().map(|&i| crystal.numbers[i]).collect();
    let relaxer = Relaxer::from_model(small_model(&small_config(), 3));
    let a = relaxer.relax(&crystal).unwrap();
    let b = relaxer.relax(&permuted).unwrap();
    let a_perm: Vec<[f64; 3]> = order.iter().map(|&i| a.positions[i]).collect();
    assert!(max_abs_diff(&a_perm, &b.positions) < 1e-5);
    assert!(max_abs_diff(&a.lattice, &b.lattice) < 1e-5);
}

#[test]
fn periodic_images_of_the_input_do_not_change_the_crystal_with_fix2() {
    let crystal = random_crystal(11, 6);
    let shifts = [
        [1, 0, -2],
        [0, 0, 0],
        [-1, 3, 1],
        [2, 2, 2],
        [0, -1, 0],
        [5, 0, 0],
    ];
    let mut moved = crystal.clone();
    for (p, n) in moved.positions.iter_mut().zip(shifts) {
        *p = linalg::add(*p, linalg::vec_mat(n.map(f64::from), &crystal.lattice));
    }
    let relaxer = Relaxer::from_model(small_model(&small_config(), 5));
    let a = relaxer.relax(&crystal).unwrap();
    let b = relaxer.relax(&moved).unwrap();
    assert!(max_abs_diff(&a.lattice, &b.lattice) < 1e-5);
    // Same crystal, each atom in the image it was given in.
    let expected: Vec<[f64; 3]> = a
        .positions
        .iter()
        .zip(shifts)
        .map(|(p, n)| linalg::add(*p, linalg::vec_mat(n.map(f64::from), &a.lattice)))
        .collect();
    assert!(max_abs_diff(&expected, &b.positions) < 1e-4);

    // Without FIX 2 the network sees a different input and answers differently.
    let config = ModelConfig {
        wrap_positions: false,
        ..small_config()
    };
    let relaxer = Relaxer::from_model(small_model(&config, 5));
    let a = relaxer.relax(&crystal).unwrap();
    let b = relaxer.relax(&moved).unwrap();
    assert!(max_abs_diff(&a.lattice, &b.lattice) > 1e-4);
}

fn mean_fractional(s: &e3relax::Structure) -> [f64; 3] {
    let f = s.fractional_positions();
    [0, 1, 2].map(|a| f.iter().map(|p| p[a]).sum::<f64>() / f.len() as f64)
}

/// FIX 3 by hand: the outputs without it, each layer shifted rigidly so its
/// mean fractional coordinate is the input's.
#[test]
fn fix3_shifts_every_layer_to_the_inputs_mean_fractional_coordinate() {
    let crystals: Vec<_> = (0..3)
        .map(|k| random_crystal(40 + k, 4 + 3 * k as usize))
        .collect();
    let options = RelaxOptions {
        keep_trajectory: true,
        batch_size: 3,
        ..Default::default()
    };
    let run = |remove: bool, fixed_cell: bool| {
        let config = ModelConfig {
            remove_net_translation: remove,
            ..small_config()
        };
        Relaxer::from_model(small_model(&config, 21))
            .relax_many(
                &crystals,
                &RelaxOptions {
                    fixed_cell,
                    ..options
                },
            )
            .unwrap()
    };
    for fixed_cell in [false, true] {
        let with = run(true, fixed_cell);
        let without = run(false, fixed_cell);
        let mut largest_shift: f64 = 0.0;
        for ((input, a), b) in crystals.iter().zip(&with).zip(&without) {
            assert_eq!(a.trajectory.len(), 2);
            for (layer_a, layer_b) in a.trajectory.iter().zip(&b.trajectory) {
                assert_eq!(layer_a.lattice, layer_b.lattice);
                let f_in = mean_fractional(input);
                let f_out = mean_fractional(layer_b);
                let shift = linalg::vec_mat(
                    [f_in[0] - f_out[0], f_in[1] - f_out[1], f_in[2] - f_out[2]],
                    &layer_b.lattice,
                );
                largest_shift = largest_shift.max(linalg::norm(shift));
                let expected: Vec<[f64; 3]> = layer_b
                    .positions
                    .iter()
                    .map(|&p| linalg::add(p, shift))
                    .collect();
                assert!(max_abs_diff(&expected, &layer_a.positions) < 1e-5);
                let kept = mean_fractional(layer_a);
                assert!((0..3).all(|k| (kept[k] - f_in[k]).abs() < 1e-6));
            }
            if fixed_cell {
                // A fixed cell keeps the Cartesian centre of the atoms.
                let centre = |p: &[[f64; 3]]| {
                    [0, 1, 2].map(|k| p.iter().map(|x| x[k]).sum::<f64>() / p.len() as f64)
                };
                assert!(
                    max_abs_diff(&[centre(&a.relaxed.positions)], &[centre(&input.positions)])
                        < 1e-5
                );
            }
        }
        // The untreated network does translate crystals (else this tests nothing).
        assert!(largest_shift > 1e-3, "net translation {largest_shift}");
    }
}

#[test]
fn a_batch_equals_each_crystal_alone() {
    let crystals: Vec<_> = (0..4)
        .map(|k| random_crystal(20 + k, 3 + 4 * k as usize))
        .collect();
    let (relaxer, together) = relax_all(small_model(&small_config(), 9), &crystals, 4);
    let alone: Vec<_> = crystals.iter().map(|c| relaxer.relax(c).unwrap()).collect();
    for (a, b) in together.iter().zip(&alone) {
        assert!(max_abs_diff(&a.positions, &b.positions) < 1e-5);
        assert!(max_abs_diff(&a.lattice, &b.lattice) < 1e-5);
    }
}

#[test]
fn fixed_cell_keeps_the_lattice_and_moves_atoms() {
    let crystal = random_crystal(31, 7);
    let relaxer = Relaxer::from_model(small_model(&small_config(), 2));
    let out = relaxer
        .relax_many(
            std::slice::from_ref(&crystal),
            &RelaxOptions {
                fixed_cell: true,
                keep_trajectory: true,
                ..Default::default()
            },
        )
        .unwrap()
        .remove(0);
    assert_eq!(out.relaxed.lattice, crystal.lattice);
    assert!(max_abs_diff(&out.relaxed.positions, &crystal.positions) > 1e-3);
    assert_eq!(out.trajectory.len(), 2);
    assert_eq!(out.trajectory[1].positions, out.relaxed.positions);
    assert_eq!(out.trajectory[0].info_value("e3relax_layer"), Some("1"));
}

#[test]
fn save_then_load_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let crystal = random_crystal(41, 8);
    let model = small_model(&small_config(), 13);
    model.save(dir.path()).unwrap();
    let before = Relaxer::from_model(model).relax(&crystal).unwrap();
    let loaded = Relaxer::load(dir.path(), e3relax::runtime::DeviceRequest::Cpu).unwrap();
    let after = loaded.relax(&crystal).unwrap();
    assert_eq!(before.positions, after.positions);
    assert_eq!(before.lattice, after.lattice);
}

#[test]
fn element_features_embed_elements_by_their_descriptors() {
    let config = ModelConfig {
        element_features: true,
        ..small_config().invariant()
    };
    let model = small_model(&config, 5);
    let params = model.named_parameters();
    assert_eq!(
        params["element_features.weight"].size(),
        [16, e3relax::model::element_features::NUM_FEATURES as i64]
    );
    // The descriptor part is all a fresh model knows of an element: its
    // own row starts at zero.
    assert_eq!(
        params["atom_embedding.weight"]
            .abs()
            .sum(None)
            .double_value(&[]),
        0.0
    );
    // Elements differ through their descriptors: swapping Mg for Ca and
    // Sr for Ba moves the prediction; the model saves and loads with them.
    let crystal = random_crystal(41, 8);
    let mut swapped = crystal.clone();
    for z in swapped.numbers.iter_mut() {
        *z = match *z {
            12 => 20,
            38 => 56,
            other => other,
        };
    }
    assert_ne!(swapped.numbers, crystal.numbers);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let relaxer = Relaxer::from_model(model);
    let (a, b) = (
        relaxer.relax(&crystal).unwrap(),
        relaxer.relax(&swapped).unwrap(),
    );
    let moved = (0..3)
        .flat_map(|i| (0..3).map(move |j| (i, j)))
        .map(|(i, j)| (a.lattice[i][j] - b.lattice[i][j]).abs())
        .fold(0.0, f64::max);
    assert!(moved > 1e-6, "lattice moved by {moved}");
    let loaded = Relaxer::load(dir.path(), e3relax::runtime::DeviceRequest::Cpu).unwrap();
    assert_eq!(loaded.relax(&crystal).unwrap().positions, a.positions);
}

#[test]
fn published_size_constructs_and_runs() {
    let config = ModelConfig::published();
    let model = Model::new(&config, 0).unwrap();
    let params = model.named_parameters();
    assert_eq!(params.len(), 332);
    let count: i64 = params.values().map(|t| t.numel() as i64).sum();
    assert_eq!(count, 74_636_800);
    let relaxer = Relaxer::from_model(model);
    let out = relaxer.relax(&random_crystal(1, 8)).unwrap();
    assert!(out.positions.iter().flatten().all(|v| v.is_finite()));
}

#[test]
fn ablation_without_refinement_moves_only_in_the_last_layer() {
    let config = ModelConfig {
        refinement: false,
        ..small_config()
    };
    assert_eq!(config.loss_weights(&[]), vec![0.0, 1.0]);
    let crystal = random_crystal(61, 6);
    let relaxer = Relaxer::from_model(small_model(&config, 8));
    let out = relaxer
        .relax_many(
            std::slice::from_ref(&crystal),
            &RelaxOptions {
                keep_trajectory: true,
                ..Default::default()
            },
        )
        .unwrap()
        .remove(0);
    assert!(max_abs_diff(&out.trajectory[0].positions, &crystal.positions) < 1e-5);
    assert!(max_abs_diff(&out.trajectory[0].lattice, &crystal.lattice) < 1e-5);
    assert!(max_abs_diff(&out.relaxed.positions, &crystal.positions) > 1e-3);
}

#[test]
fn ablation_without_lattice_nodes_has_a_lattice_head_instead() {
    let config = ModelConfig {
        lattice_nodes: false,
        ..small_config()
    };
    let model = small_model(&config, 8);
    let names: Vec<String> = model.named_parameters().into_keys().collect();
    assert!(names.iter().any(|n| n == "layers.1.lattice_head.weight"));
    assert!(!names.iter().any(|n| n.contains("lattice_embedding")
        || n.contains("lattice_to_atom")
        || n.contains("atom_to_lattice")));
    let crystal = random_crystal(62, 5);
    let out = Relaxer::from_model(model).relax(&crystal).unwrap();
    assert!(max_abs_diff(&out.lattice, &crystal.lattice) > 1e-4);
}

#[test]
fn parallel_workers_give_the_serial_answer_in_order() {
    let config = small_config();
    let crystals: Vec<e3relax::Structure> = (0..23)
        .map(|k| random_crystal(100 + k, 2 + (k as usize % 6)))
        .collect();
    let relaxer = Relaxer::from_model(small_model(&config, 9));
    let options = RelaxOptions {
        batch_size: 4,
        ..Default::default()
    };
    let threads_before = tch::get_num_threads();
    // The workers run single-threaded: so does the serial reference, for
    // the same reductions bit for bit.
    let serial = {
        let _one_thread = e3relax::runtime::OneThreadPerWorker::enter();
        relaxer
            .relax_many_on(&crystals, &options, 1, &|_| {})
            .unwrap()
    };
    assert_eq!(tch::get_num_threads(), threads_before);
    for workers in [1, 2, 3, 7, 100] {
        let parallel = {
            // One worker runs with the caller's threads: one, here.
            let _one_thread = (workers == 1).then(e3relax::runtime::OneThreadPerWorker::enter);
            relaxer
                .relax_many_on(&crystals, &options, workers, &|_| {})
                .unwrap()
        };
        assert_eq!(parallel.len(), crystals.len());
        for (k, (a, b)) in serial.iter().zip(&parallel).enumerate() {
            // Same batches, so the same numbers bit for bit.
            assert_eq!(
                a.relaxed.positions, b.relaxed.positions,
                "{workers} workers, crystal {k}"
            );
            assert_eq!(
                a.relaxed.lattice, b.relaxed.lattice,
                "{workers} workers, crystal {k}"
            );
        }
        // The workers' single-threaded section ends with the run.
        assert_eq!(tch::get_num_threads(), threads_before, "{workers} workers");
    }
    // The policy every caller gets: one worker per libtorch thread on the
    // CPU (at most one per batch), one worker for a single batch.
    let threads = tch::get_num_threads() as usize;
    assert_eq!(relaxer.workers_for(23, 4), threads.min(6));
    assert_eq!(relaxer.workers_for(4, 4), 1);
    assert_eq!(relaxer.workers_for(0, 4), 1);
    if threads > 1 {
        let automatic = relaxer.relax_many(&crystals, &options).unwrap();
        for (a, b) in serial.iter().zip(&automatic) {
            assert_eq!(a.relaxed.positions, b.relaxed.positions);
        }
    }
}

/// An ensemble whose first member has energy-surface heads and whose
/// other members have none: it loads, the surface trust acts once on the
/// mean (huge scales give the input back, with its factor on record), and
/// the model directory's default applies through `Relaxer::relax`.
#[test]
fn surface_trust_on_an_ensemble_reads_the_first_members_heads() {
    let dir = tempfile::tempdir().unwrap();
    let with_heads = ModelConfig {
        surface_heads: true,
        ..small_config()
    };
    small_model(&with_heads, 3).save(dir.path()).unwrap();
    small_model(&small_config(), 4)
        .save(&dir.path().join("members/plain"))
        .unwrap();
    std::fs::write(
        dir.path().join("ensemble.json"),
        r#"{"members": ["members/plain"]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("surface_trust.json"),
        r#"{"force": 1e12, "virial": 1e12, "structures": 1, "data": [], "default": 1}"#,
    )
    .unwrap();
    let crystal = random_crystal(6, 11);
    let ensemble = Relaxer::load_ensemble(dir.path(), e3relax::DeviceRequest::Cpu).unwrap();
    let options = ensemble.default_options();
    assert!(options.surface_trust.is_some());
    let out = ensemble
        .relax_many(std::slice::from_ref(&crystal), &options)
        .unwrap()
        .remove(0);
    assert!(out.uncertainty.is_some());
    assert_eq!(
        out.relaxed.info_value("e3relax_surface_factor"),
        Some("0.0000")
    );
    for (a, b) in out.relaxed.positions.iter().zip(&crystal.positions) {
        assert!((0..3).all(|k| (a[k] - b[k]).abs() < 1e-9));
    }
    // The single model: its default through relax().
    let single = Relaxer::load(dir.path(), e3relax::DeviceRequest::Cpu).unwrap();
    let relaxed = single.relax(&crystal).unwrap();
    for (a, b) in relaxed.lattice.iter().zip(&crystal.lattice) {
        assert!((0..3).all(|k| (a[k] - b[k]).abs() < 1e-9));
    }
    // Without heads on the first member, the surface trust is refused.
    let raw = RelaxOptions {
        surface_trust: options.surface_trust,
        ..Default::default()
    };
    let plain = Relaxer::load(
        dir.path().join("members/plain"),
        e3relax::DeviceRequest::Cpu,
    )
    .unwrap();
    let error = plain.relax_many(&[crystal], &raw).unwrap_err().to_string();
    assert!(error.contains("surface_heads"), "{error}");
}

/// The line search puts each crystal on the straight path from its input
/// to the raw prediction (the step it took on record, between 0 and 1),
/// honours frozen atoms, gives the same answer batched and alone, and is
/// refused for a model without energy-surface heads.
#[test]
fn the_line_search_stays_on_the_path_to_the_prediction() {
    use e3relax::trust::{shrink_by, Change};
    let with_heads = ModelConfig {
        surface_heads: true,
        ..small_config()
    };
    let relaxer = Relaxer::from_model(small_model(&with_heads, 3));
    let mut crystals: Vec<e3relax::Structure> = (0..5)
        .map(|k| random_crystal(40 + k, 3 + k as usize))
        .collect();
    crystals[2].selective_dynamics = Some(
        (0..crystals[2].natoms())
            .map(|i| if i == 0 { [false; 3] } else { [true; 3] })
            .collect(),
    );
    let raw = relaxer
        .relax_many(&crystals, &RelaxOptions::default())
        .unwrap();
    let options = RelaxOptions {
        line_search: true,
        batch_size: 2,
        ..Default::default()
    };
    let searched = relaxer.relax_many(&crystals, &options).unwrap();
    let mut steps = Vec::new();
    for ((input, raw), searched) in crystals.iter().zip(&raw).zip(&searched) {
        let t: f64 = searched
            .relaxed
            .info_value("e3relax_line_search_step")
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.0..=1.0).contains(&t), "{t}");
        steps.push(t);
        let change = Change::of(input, &raw.relaxed);
        let on_path =
            e3relax::frozen::honour(input, shrink_by(input, &raw.relaxed, &change, t, t), false);
        // The step is written with four decimals.
        assert!(max_abs_diff(&on_path.lattice, &searched.relaxed.lattice) < 1e-3);
        for (a, b) in on_path.positions.iter().zip(&searched.relaxed.positions) {
            assert!((0..3).all(|k| (a[k] - b[k]).abs() < 1e-3));
        }
        // Alone, the same step.
        let alone = relaxer
            .relax_many(std::slice::from_ref(input), &options)
            .unwrap()
            .remove(0);
        assert_eq!(
            alone.relaxed.info_value("e3relax_line_search_step"),
            searched.relaxed.info_value("e3relax_line_search_step")
        );
    }
    // A frozen atom keeps its fractional coordinates (it follows the cell).
    let kept = searched[2].relaxed.fractional_positions()[0];
    let given = crystals[2].fractional_positions()[0];
    assert!(
        (0..3).all(|k| (kept[k] - given[k]).abs() < 1e-9),
        "{kept:?} {given:?}"
    );
    // A random network's heads do not agree with its moves everywhere.
    assert!(steps.iter().any(|&t| t < 1.0), "{steps:?}");

    let plain = Relaxer::from_model(small_model(&small_config(), 4));
    let error = plain
        .relax_many(&crystals[..1], &options)
        .unwrap_err()
        .to_string();
    assert!(error.contains("surface_heads"), "{error}");
    assert!(plain.check_line_search().is_err());
}

/// With a fixed cell every option returns the input's lattice bit for bit:
/// the trust policies and the line search rebuild the cell from the input
/// and a strain that is zero only up to round-off. The shipped model
/// (it has the surface readers) on a stretched perovskite (Sr at the
/// origin, O on the face centres), with and without a frozen atom.
#[test]
fn fixed_cell_keeps_the_lattice_bit_for_bit_with_every_option() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("models/default");
    let relaxer = Relaxer::load(&dir, e3relax::runtime::DeviceRequest::Cpu).unwrap();
    let (a, c) = (3.95, 4.25);
    let mut perovskite = e3relax::Structure::new(
        [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, c]],
        vec![
            [0.0, 0.0, 0.0],
            [0.5 * a, 0.5 * a, 0.5 * c + 0.05],
            [0.5 * a, 0.5 * a, 0.0],
            [0.5 * a, 0.0, 0.5 * c],
            [0.0, 0.5 * a, 0.5 * c],
        ],
        vec![38, 22, 8, 8, 8],
    )
    .unwrap();
    let free = perovskite.clone();
    let mut mask = vec![[true; 3]; 5];
    mask[2] = [false, false, false];
    perovskite.selective_dynamics = Some(mask);
    let surface = Some(relaxer.surface_trust(&dir, 1.0).unwrap());
    let options = [
        RelaxOptions::default(),
        RelaxOptions {
            trust: Some(e3relax::trust::Trust {
                strain: 0.087,
                displacement: 0.167,
            }),
            ..Default::default()
        },
        RelaxOptions {
            surface_trust: surface,
            ..Default::default()
        },
        RelaxOptions {
            line_search: true,
            ..Default::default()
        },
        RelaxOptions {
            line_search: true,
            surface_trust: surface,
            ..Default::default()
        },
    ];
    for input in [&free, &perovskite] {
        for (k, options) in options.iter().enumerate() {
            let options = RelaxOptions {
                fixed_cell: true,
                ..*options
            };
            let out = relaxer
                .relax_many(std::slice::from_ref(input), &options)
                .unwrap()
                .remove(0)
                .relaxed;
            assert_eq!(out.lattice, input.lattice, "option set {k}");
            if input.selective_dynamics.is_some() {
                assert_eq!(out.positions[2], input.positions[2], "option set {k}");
            }
        }
    }
}
