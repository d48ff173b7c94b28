//! Invariance of the prediction to how a crystal is written down, on real
//! high-symmetry crystals with atoms at the origin and on cell faces (where
//! wrapping and the paper's lattice-as-point geometry fail): rotation,
//! another origin, single atoms moved by lattice vectors, a face atom nudged
//! across its face by 1e-7, permutation. A relaxation is exactly equivariant
//! to all of these; the invariant model (`ModelConfig::invariant`) must be
//! too, to within f32 round-off (1e-4 Å), and the paper's must visibly not.

use crate::common::*;
use e3relax::linalg::{self, Mat3, Vec3};
use e3relax::model::{Model, ModelConfig};
use e3relax::relax::{RelaxOptions, Relaxer};

/// The network's output as it is (no symmetrisation).
const RAW: RelaxOptions = RelaxOptions {
    fixed_cell: false,
    batch_size: 1,
    keep_trajectory: false,
    symmetry_tolerance: None,
    trust: None,
    spread_trust: None,
    surface_trust: None,
    line_search: false,
};
use e3relax::Structure;

/// A crystal from lattice rows and fractional coordinates.
fn crystal(lattice: Mat3, sites: &[(u32, Vec3)]) -> Structure {
    Structure::new(
        lattice,
        sites
            .iter()
            .map(|(_, f)| linalg::vec_mat(*f, &lattice))
            .collect(),
        sites.iter().map(|(z, _)| *z).collect(),
    )
    .unwrap()
}

fn cubic(a: f64) -> Mat3 {
    [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]]
}

fn hexagonal(a: f64, c: f64) -> Mat3 {
    [
        [a, 0.0, 0.0],
        [-a / 2.0, a * 3f64.sqrt() / 2.0, 0.0],
        [0.0, 0.0, c],
    ]
}

/// Rock salt, CsCl, fcc, diamond, perovskite, wurtzite and rutile, as ASE
/// builds them (conventional cells, first atom at the origin).
pub fn symmetric_crystals() -> Vec<(&'static str, Structure)> {
    let fcc_sites = [
        [0.0, 0.0, 0.0],
        [0.0, 0.5, 0.5],
        [0.5, 0.0, 0.5],
        [0.5, 0.5, 0.0],
    ];
    let rocksalt: Vec<(u32, Vec3)> = fcc_sites
        .iter()
        .map(|&f| (11, f))
        .chain(fcc_sites.iter().map(|f| (17, [f[0] + 0.5, f[1], f[2]])))
        .collect();
    let diamond: Vec<(u32, Vec3)> = fcc_sites
        .iter()
        .flat_map(|&f| [(14, f), (14, [f[0] + 0.25, f[1] + 0.25, f[2] + 0.25])])
        .collect();
    let u = 0.3821;
    let x = 0.3049;
    vec![
        ("rock salt NaCl", crystal(cubic(5.64), &rocksalt)),
        (
            "CsCl",
            crystal(cubic(4.12), &[(55, [0.0; 3]), (17, [0.5, 0.5, 0.5])]),
        ),
        ("fcc Cu", crystal(cubic(3.61), &fcc_sites.map(|f| (29, f)))),
        ("diamond Si", crystal(cubic(5.43), &diamond)),
        (
            "perovskite SrTiO3",
            crystal(
                cubic(3.905),
                &[
                    (38, [0.0; 3]),
                    (22, [0.5, 0.5, 0.5]),
                    (8, [0.5, 0.5, 0.0]),
                    (8, [0.5, 0.0, 0.5]),
                    (8, [0.0, 0.5, 0.5]),
                ],
            ),
        ),
        (
            "wurtzite ZnO",
            crystal(
                hexagonal(3.25, 5.21),
                &[
                    (30, [1.0 / 3.0, 2.0 / 3.0, 0.0]),
                    (30, [2.0 / 3.0, 1.0 / 3.0, 0.5]),
                    (8, [1.0 / 3.0, 2.0 / 3.0, u]),
                    (8, [2.0 / 3.0, 1.0 / 3.0, 0.5 + u]),
                ],
            ),
        ),
        (
            "rutile TiO2",
            crystal(
                [[4.59, 0.0, 0.0], [0.0, 4.59, 0.0], [0.0, 0.0, 2.96]],
                &[
                    (22, [0.0; 3]),
                    (22, [0.5, 0.5, 0.5]),
                    (8, [x, x, 0.0]),
                    (8, [1.0 - x, 1.0 - x, 0.0]),
                    (8, [0.5 + x, 0.5 - x, 0.5]),
                    (8, [0.5 - x, 0.5 + x, 0.5]),
                ],
            ),
        ),
    ]
}

/// A small invariant network with weights large enough to move atoms and
/// cell visibly (so that a broken invariance cannot hide in tiny outputs).
fn invariant_model(seed: i64) -> Model {
    small_model(&small_config().invariant(), seed)
}

fn shifted(s: &Structure, cartesian: Vec3) -> Structure {
    let mut out = s.clone();
    for p in &mut out.positions {
        *p = linalg::add(*p, cartesian);
    }
    out
}

/// The largest difference between `b` and `a` moved as the operation that
/// turned `a`'s input into `b`'s would move a relaxation: a rigid shift by
/// the input shift's fractional coordinates in the predicted cell (the mean
/// fractional coordinate is conserved), plus any per-atom lattice moves.
fn shift_error(a: &Structure, b: &Structure, input: &Structure, shift: Vec3) -> f64 {
    let inverse = linalg::inverse(&input.lattice).unwrap();
    let moved = linalg::vec_mat(linalg::vec_mat(shift, &inverse), &a.lattice);
    let expected: Vec<Vec3> = a.positions.iter().map(|&p| linalg::add(p, moved)).collect();
    max_abs_diff(&expected, &b.positions).max(max_abs_diff(&a.lattice, &b.lattice))
}

/// Every transformation on every crystal, for one model: the worst error.
fn worst_invariance_error(model: Model, options: RelaxOptions) -> Vec<(String, f64)> {
    let relaxer = Relaxer::from_model(model);
    let relax = |s: &Structure| -> Structure {
        relaxer
            .relax_many(std::slice::from_ref(s), &options)
            .unwrap()
            .remove(0)
            .relaxed
    };
    let mut report = Vec::new();
    for (name, s) in symmetric_crystals() {
        let base = relax(&s);
        let mut worst = |what: &str, e: f64| report.push((format!("{name}: {what}"), e));

        // Rotation.
        let r = random_rotation(7);
        let rotated = relax(&rotate(&s, &r));
        let back = rotate(&base, &r);
        worst(
            "rotation",
            max_abs_diff(&back.positions, &rotated.positions)
                .max(max_abs_diff(&back.lattice, &rotated.lattice)),
        );

        // Another origin (as two CIF settings of one crystal differ).
        let t = [0.37, -1.21, 0.58];
        let moved = relax(&shifted(&s, t));
        worst("origin shift", shift_error(&base, &moved, &s, t));

        // Single atoms moved by lattice vectors.
        let mut images = s.clone();
        for (k, p) in images.positions.iter_mut().enumerate() {
            let n = [(k % 3) as f64 - 1.0, 1.0, -((k % 2) as f64)];
            *p = linalg::add(*p, linalg::vec_mat(n, &s.lattice));
        }
        let out = relax(&images);
        let expected: Vec<Vec3> = base
            .positions
            .iter()
            .enumerate()
            .map(|(k, &p)| {
                let n = [(k % 3) as f64 - 1.0, 1.0, -((k % 2) as f64)];
                linalg::add(p, linalg::vec_mat(n, &out.lattice))
            })
            .collect();
        worst(
            "lattice-vector moves",
            max_abs_diff(&expected, &out.positions).max(max_abs_diff(&base.lattice, &out.lattice)),
        );

        // The atom at the origin nudged by 1e-7 (fractional) across the
        // faces, both ways.
        for sign in [1.0, -1.0] {
            let mut nudged = s.clone();
            let step = linalg::vec_mat([sign * 1e-7; 3], &s.lattice);
            nudged.positions[0] = linalg::add(nudged.positions[0], step);
            let out = relax(&nudged);
            worst(
                "face nudge",
                max_abs_diff(&base.positions, &out.positions)
                    .max(max_abs_diff(&base.lattice, &out.lattice)),
            );
        }

        // Permutation (reversed order).
        let mut reversed = s.clone();
        reversed.positions.reverse();
        reversed.numbers.reverse();
        let out = relax(&reversed);
        let mut back = out.positions.clone();
        back.reverse();
        worst(
            "permutation",
            max_abs_diff(&base.positions, &back).max(max_abs_diff(&base.lattice, &out.lattice)),
        );
    }
    report
}

fn assert_all_below(report: &[(String, f64)], limit: f64) {
    let bad: Vec<_> = report
        .iter()
        .filter(|(_, e)| e.is_nan() || *e >= limit)
        .collect();
    assert!(bad.is_empty(), "above {limit} Å: {bad:?}");
}

#[test]
fn the_invariant_model_is_invariant_on_symmetric_crystals() {
    // The network's raw output and the symmetrised prediction; the last
    // model also embeds elements by descriptors and fits its bond strain.
    let with_options = ModelConfig {
        element_features: true,
        bond_strain_fit: true,
        ..small_config().invariant()
    };
    let with_bond_prior = ModelConfig {
        bond_volume_prior: true,
        ..with_options.clone()
    };
    let configs = [
        (small_config().invariant(), 0),
        (small_config().invariant(), 1),
        (with_options, 2),
        (with_bond_prior, 3),
    ];
    for (config, seed) in &configs {
        for options in [RAW, RelaxOptions::default()] {
            assert_all_below(
                &worst_invariance_error(small_model(config, *seed), options),
                1e-4,
            );
        }
    }
}

/// The test can fail: the paper's geometry (lattice vectors as points,
/// wrapping) moves its answer with the origin on these crystals.
#[test]
fn the_papers_geometry_depends_on_the_origin() {
    let report = worst_invariance_error(small_model(&small_config(), 0), RAW);
    let origin: f64 = report
        .iter()
        .filter(|(what, _)| what.ends_with("origin shift"))
        .map(|(_, e)| *e)
        .fold(0.0, f64::max);
    assert!(
        origin > 1e-3,
        "origin shift changed the answer by {origin} Å"
    );
}

/// The model moves things (the invariances above would hold trivially for a
/// network that returned its input).
#[test]
fn the_invariant_model_moves_atoms_and_cell() {
    let relaxer = Relaxer::from_model(invariant_model(0));
    let (_, s) = &symmetric_crystals()[6];
    let mut rattled = s.clone();
    rattled.positions[2][0] += 0.1;
    let out = relaxer.relax(&rattled).unwrap();
    assert!(max_abs_diff(&out.lattice, &rattled.lattice) > 1e-3);
    assert!(max_abs_diff(&out.positions, &rattled.positions) > 1e-3);
}

/// The invariant options each keep the output a valid function of the
/// config (a config written with them loads back the same).
#[test]
fn invariant_config_round_trips() {
    let c = small_config().invariant();
    assert_eq!(ModelConfig::from_json(&c.to_json()).unwrap(), c);
}

/// The prediction keeps the input's space group (found at 1e-3 Å, as
/// spglib would), and the symmetrisation is what makes it so: the raw
/// output of the per-axis lattice nodes lowers the symmetry of cubic and
/// hexagonal crystals.
#[test]
fn predictions_keep_the_space_group_of_the_input() {
    use e3relax::symmetry::SpaceGroup;
    let relaxer = Relaxer::from_model(invariant_model(1));
    let mut lowered_raw = 0;
    for (name, s) in symmetric_crystals() {
        let expected = SpaceGroup::find(&s, 1e-3).unwrap().number;
        let out = relaxer.relax(&s).unwrap();
        let got = SpaceGroup::find(&out, 1e-3).map_or(1, |g| g.number);
        assert_eq!(got, expected, "{name}");
        let unsymmetrised = &relaxer.relax_many(std::slice::from_ref(&s), &RAW).unwrap()[0];
        let raw_group = SpaceGroup::find(&unsymmetrised.relaxed, 1e-3).map_or(1, |g| g.number);
        lowered_raw += usize::from(raw_group != expected);
    }
    assert!(lowered_raw > 0, "the raw network kept every space group");
}

/// The shipped models pass the same checks (raw network and symmetrised
/// prediction), and keep the space groups.
#[test]
fn the_shipped_models_are_invariant() {
    use e3relax::symmetry::SpaceGroup;
    for name in ["default", "mos2-defects"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(name);
        let load = || Model::load(&dir, tch::Device::Cpu).unwrap();
        for options in [RAW, RelaxOptions::default()] {
            let report = worst_invariance_error(load(), options);
            assert_all_below(&report, 1e-4);
        }
        let relaxer = Relaxer::from_model(load());
        for (crystal, s) in symmetric_crystals() {
            let expected = SpaceGroup::find(&s, 1e-3).unwrap().number;
            let out = relaxer.relax(&s).unwrap();
            let got = SpaceGroup::find(&out, 1e-3).map_or(1, |g| g.number);
            assert_eq!(got, expected, "{name}: {crystal}");
        }
    }
}

/// The energy-surface line search (the shipped default has the heads it
/// reads) keeps the prediction invariant and keeps the space groups: one
/// step per crystal along a symmetric path, read by equivariant heads.
#[test]
fn the_line_search_is_invariant_and_keeps_the_space_group() {
    use e3relax::symmetry::SpaceGroup;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let load = || Model::load(&dir, tch::Device::Cpu).unwrap();
    let options = RelaxOptions {
        line_search: true,
        ..Default::default()
    };
    assert_all_below(&worst_invariance_error(load(), options), 1e-4);
    let relaxer = Relaxer::from_model(load());
    for (crystal, s) in symmetric_crystals() {
        let expected = SpaceGroup::find(&s, 1e-3).unwrap().number;
        let out = relaxer
            .relax_many(std::slice::from_ref(&s), &options)
            .unwrap()
            .remove(0)
            .relaxed;
        assert!(out.info_value("e3relax_line_search_step").is_some());
        let got = SpaceGroup::find(&out, 1e-3).map_or(1, |g| g.number);
        assert_eq!(got, expected, "{crystal}");
    }
}

/// With atoms frozen (the first atom, at the origin, on every axis), the
/// prediction keeps them in place, stays symmetric under the operations
/// that map frozen atoms onto frozen atoms, and is still invariant to a
/// rotation and a permutation of the input.
#[test]
fn frozen_atoms_keep_the_prediction_symmetric_and_invariant() {
    use e3relax::symmetry::SpaceGroup;
    let relaxer = Relaxer::from_model(invariant_model(3));
    let relax = |s: &Structure| relaxer.relax(s).unwrap();
    let r = {
        let (a, b) = (0.7f64, -1.1f64);
        let rz = [
            [a.cos(), -a.sin(), 0.0],
            [a.sin(), a.cos(), 0.0],
            [0.0, 0.0, 1.0],
        ];
        let rx = [
            [1.0, 0.0, 0.0],
            [0.0, b.cos(), -b.sin()],
            [0.0, b.sin(), b.cos()],
        ];
        linalg::matmul(&rz, &rx)
    };
    for (name, mut s) in symmetric_crystals() {
        let mut flags = vec![[true; 3]; s.natoms()];
        flags[0] = [false; 3];
        s.selective_dynamics = Some(flags);
        let out = relax(&s);
        let (before, after) = (s.fractional_positions(), out.fractional_positions());
        assert!(max_abs_diff(&before[..1], &after[..1]) < 1e-12, "{name}");
        let expected = SpaceGroup::find(&s, 1e-3).map_or(1, |g| g.number);
        let got = SpaceGroup::find(&out, 1e-3).map_or(1, |g| g.number);
        assert_eq!(got, expected, "{name}: the frozen crystal's group is kept");

        let rotated = relax(&s.rotated(&r));
        let back = out.rotated(&r);
        assert!(
            max_abs_diff(&back.positions, &rotated.positions) < 1e-4,
            "{name}: rotation"
        );
        assert!(
            max_abs_diff(&back.lattice, &rotated.lattice) < 1e-4,
            "{name}: rotation"
        );

        let n = s.natoms();
        let order: Vec<usize> = (0..n).rev().collect();
        let mut permuted = s.clone();
        permuted.positions = order.iter().map(|&i| s.positions[i]).collect();
        permuted.numbers = order.iter().map(|&i| s.numbers[i]).collect();
        permuted.selective_dynamics = Some(
            order
                .iter()
                .map(|&i| s.selective_dynamics.as_ref().unwrap()[i])
                .collect(),
        );
        let p = relax(&permuted);
        let unpermuted: Vec<Vec3> = (0..n).map(|i| p.positions[n - 1 - i]).collect();
        assert!(
            max_abs_diff(&unpermuted, &out.positions) < 1e-4,
            "{name}: permutation"
        );
    }
}

/// An ensemble's uncertainty is zero for identical members, positive for
/// different ones, the same for a crystal alone or in a batch (1e-5), and
/// invariant to rotation, another origin and permutation (1e-4).
#[test]
fn ensemble_uncertainty_is_invariant_and_batch_independent() {
    let same = Relaxer::from_models(vec![invariant_model(5), invariant_model(5)]).unwrap();
    let crystal = random_crystal(11, 6);
    let single = Relaxer::from_model(invariant_model(5))
        .relax(&crystal)
        .unwrap();
    let out = &same
        .relax_many(std::slice::from_ref(&crystal), &RelaxOptions::default())
        .unwrap()[0];
    let u = out.uncertainty.as_ref().unwrap();
    assert!(u.atoms.iter().all(|&a| a < 1e-6) && u.cell < 1e-6 && u.volume < 1e-4);
    assert!(max_abs_diff(&out.relaxed.positions, &single.positions) < 1e-9);

    let ensemble = Relaxer::from_models(vec![
        invariant_model(5),
        invariant_model(6),
        invariant_model(7),
    ])
    .unwrap();
    assert_eq!(ensemble.ensemble_size(), 3);
    let run = |s: &Structure| {
        ensemble
            .relax_many(std::slice::from_ref(s), &RelaxOptions::default())
            .unwrap()
            .remove(0)
    };
    let base = run(&crystal);
    let u = base.uncertainty.clone().unwrap();
    assert!(
        u.atoms.iter().all(|&a| a > 1e-4) && u.cell > 1e-5 && u.volume > 1e-4,
        "{u:?}"
    );
    let close =
        |a: &e3relax::ensemble::Uncertainty, b: &e3relax::ensemble::Uncertainty, tol: f64| {
            a.atoms
                .iter()
                .zip(&b.atoms)
                .all(|(x, y)| (x - y).abs() < tol)
                && (a.cell - b.cell).abs() < tol
                && (a.volume - b.volume).abs() < tol * 100.0
        };
    // Alone or in a batch with others.
    let batch = ensemble
        .relax_many(
            &[random_crystal(3, 4), crystal.clone(), random_crystal(4, 7)],
            &RelaxOptions::default(),
        )
        .unwrap();
    assert!(close(batch[1].uncertainty.as_ref().unwrap(), &u, 1e-5));
    // The crystal's coordinate uncertainty, with its own predicted volume.
    let coordinates = |r: &e3relax::Relaxation| {
        r.uncertainty
            .as_ref()
            .unwrap()
            .coordinates(r.relaxed.volume())
    };
    assert!(coordinates(&base) > u.mean_atom());
    assert!((coordinates(&batch[1]) - coordinates(&base)).abs() < 1e-5);
    // Rotated, shifted, permuted.
    let rotated = run(&rotate(&crystal, &random_rotation(8)));
    assert!(close(rotated.uncertainty.as_ref().unwrap(), &u, 1e-4));
    assert!((coordinates(&rotated) - coordinates(&base)).abs() < 1e-4);
    let moved = run(&shifted(&crystal, [0.7, -1.3, 2.1]));
    assert!(close(moved.uncertainty.as_ref().unwrap(), &u, 1e-4));
    assert!((coordinates(&moved) - coordinates(&base)).abs() < 1e-4);
    let n = crystal.natoms();
    let mut permuted = crystal.clone();
    permuted.positions.reverse();
    permuted.numbers.reverse();
    let p = run(&permuted);
    let mut back = p.uncertainty.clone().unwrap();
    back.atoms.reverse();
    assert_eq!(back.atoms.len(), n);
    assert!(close(&back, &u, 1e-4));
    assert!((coordinates(&p) - coordinates(&base)).abs() < 1e-4);
}
