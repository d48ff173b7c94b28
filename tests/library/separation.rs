//! The shipped model on inputs whose raw prediction merges two atoms:
//! what comes back keeps them apart, with the same space group, whatever
//! option made the prediction.

use e3relax::model::Model;
use e3relax::relax::{RelaxOptions, Relaxer};
use e3relax::symmetry::SpaceGroup;
use e3relax::Structure;

/// The closest distance between two atoms (or an atom and its image),
/// over every image within two cells: the slow obvious way.
fn closest_distance(s: &Structure) -> f64 {
    let mut best = f64::INFINITY;
    for (i, p) in s.positions.iter().enumerate() {
        for (j, q) in s.positions.iter().enumerate() {
            for a in -2..=2 {
                for b in -2..=2 {
                    for c in -2..=2 {
                        if i == j && (a, b, c) == (0, 0, 0) {
                            continue;
                        }
                        let shift =
                            e3relax::linalg::vec_mat([a as f64, b as f64, c as f64], &s.lattice);
                        let d = (0..3)
                            .map(|k| (q[k] + shift[k] - p[k]).powi(2))
                            .sum::<f64>()
                            .sqrt();
                        best = best.min(d);
                    }
                }
            }
        }
    }
    best
}

/// Relaxes `fixture` with the shipped model, raw and with the line search,
/// and checks that no two atoms come closer than the floor and that the
/// space group is kept. Returns the raw prediction.
fn relax_keeping_apart(fixture: &str, expected_group: i32) -> (Structure, f64) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let input = e3relax::io::read_file(root.join("tests/fixtures").join(fixture), None)
        .unwrap()
        .remove(0);
    let group = SpaceGroup::find(&input, 1e-3).unwrap().number;
    assert_eq!(group, expected_group, "{fixture}");
    let relaxer =
        Relaxer::from_model(Model::load(&root.join("models/default"), tch::Device::Cpu).unwrap());
    let floor = e3relax::separation::floor(&input);
    let raw = RelaxOptions::default();
    let line_search = RelaxOptions {
        line_search: true,
        ..Default::default()
    };
    let mut raw_out = None;
    for (name, options) in [("raw", raw), ("line search", line_search)] {
        let out = relaxer
            .relax_many(std::slice::from_ref(&input), &options)
            .unwrap()
            .remove(0)
            .relaxed;
        let closest = closest_distance(&out);
        assert!(
            closest >= floor - 1e-9,
            "{fixture}, {name}: atoms {closest} Å apart"
        );
        assert_eq!(
            SpaceGroup::find(&out, 1e-3).map_or(1, |g| g.number),
            group,
            "{fixture}, {name}"
        );
        if name == "raw" {
            raw_out = Some(out);
        }
    }
    (raw_out.unwrap(), floor)
}

#[test]
fn a_prediction_never_merges_two_atoms() {
    // A random Li4O2 training input, P6/mmm, with Li and O on the
    // six-fold axis through the origin, whose network output puts two
    // atoms closer than the floor.
    let (out, floor) = relax_keeping_apart("merging-li4o2.extxyz", 191);
    assert_eq!(floor, 0.5, "the input's closest pair is 0.85 Å apart");
    // The network alone merges them: the move was shortened, not dropped,
    // and the step is on the prediction for the user.
    let step: f64 = out
        .info_value("e3relax_move_shortened")
        .expect("the raw move shortened")
        .parse()
        .unwrap();
    assert!(step > 0.1 && step < 1.0, "step {step}");
    let closest = closest_distance(&out);
    assert!(
        closest < floor + 1e-6,
        "the longest step that keeps the floor: {closest}"
    );
}

#[test]
fn an_input_an_earlier_model_merged_stays_apart() {
    // A random P6mm SiO2 input whose raw prediction merged two O atoms
    // (0.05 Å apart) with an earlier default model.
    let (_, floor) = relax_keeping_apart("merging-o8si4.extxyz", 183);
    assert_eq!(floor, 0.5, "the input's closest pair is 0.99 Å apart");
}
