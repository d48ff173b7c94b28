//! The shipped model on an input whose raw prediction merges two atoms:
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

#[test]
fn a_prediction_never_merges_two_atoms() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let input = e3relax::io::read_file(root.join("tests/fixtures/merging-o8si4.extxyz"), None)
        .unwrap()
        .remove(0);
    let group = SpaceGroup::find(&input, 1e-3).unwrap().number;
    assert_eq!(group, 183);
    let relaxer =
        Relaxer::from_model(Model::load(&root.join("models/default"), tch::Device::Cpu).unwrap());
    let floor = e3relax::separation::floor(&input);
    assert_eq!(floor, 0.5, "the input's closest pair is 0.99 Å apart");
    let raw = RelaxOptions::default();
    let line_search = RelaxOptions {
        line_search: true,
        ..Default::default()
    };
    for (name, options) in [("raw", raw), ("line search", line_search)] {
        let out = relaxer
            .relax_many(std::slice::from_ref(&input), &options)
            .unwrap()
            .remove(0)
            .relaxed;
        let closest = closest_distance(&out);
        assert!(closest >= floor - 1e-9, "{name}: atoms {closest} Å apart");
        assert_eq!(
            SpaceGroup::find(&out, 1e-3).map_or(1, |g| g.number),
            group,
            "{name}"
        );
        if name == "raw" {
            // The network alone merges them: the move was shortened, not
            // dropped, and the step is on the prediction for the user.
            let step: f64 = out
                .info_value("e3relax_move_shortened")
                .expect("the raw move shortened")
                .parse()
                .unwrap();
            assert!(step > 0.1 && step < 1.0, "step {step}");
            assert!(
                closest < floor + 1e-6,
                "the longest step that keeps the floor: {closest}"
            );
        }
    }
}
