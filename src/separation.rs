//! Keeping atoms apart: a prediction never brings two atoms closer than
//! its input allows.
//!
//! The network predicts each atom's move; on a crystal far from anything
//! it was trained on it can move two atoms onto each other (one random
//! SiO2 input of the shared training data, 0.99 Å apart at the closest,
//! came back with two oxygens 0.05 Å apart). Such a start breaks the
//! user's optimiser, and it is a structure the model itself refuses as
//! an input. So each prediction's closest pair is checked against a
//! floor, and where it is closer the predicted move is shortened (one
//! factor for the cell and the atoms, as in the trust policies: the path
//! `L0 (I + t S)`, `s0 + t u` of [`crate::trust::Change`]) to the longest
//! step `t` that keeps every pair at the floor or beyond.
//!
//! The floor is `max(0.5 Å, 0.4 d)`, `d` the input's closest distance
//! (counted up to [`INPUT_DISTANCE_CAP`]): 0.5 Å is the model's own
//! minimum for an input, and 0.4 lies below every ratio of closest
//! distances, relaxed over unrelaxed, in the 3,136 relaxation pairs
//! this library was trained and validated on (lowest 0.51: relaxations
//! that form a dimer), so a prediction that does what a relaxation does
//! is left alone.

use crate::graph;
use crate::structure::{Structure, ValidationOptions};
use crate::trust::{shrink_by, Change};

/// The fraction of the input's closest distance a prediction may come
/// down to.
pub const INPUT_DISTANCE_FRACTION: f64 = 0.4;

/// The input's closest distance is searched up to this length (Å): the
/// floor is therefore at most `0.4 * 2.5 = 1 Å`, and the search stays
/// cheap next to the network.
pub const INPUT_DISTANCE_CAP: f64 = 2.5;

/// Bisection steps for the longest allowed step (the step is found to
/// `2^-30` of the predicted move).
const BISECTION_STEPS: usize = 30;

/// The closest distance any two atoms of a prediction for `input` may
/// have, Å (see the module docs).
pub fn floor(input: &Structure) -> f64 {
    let minimum = ValidationOptions::default().min_distance;
    let closest = closest_distance_within(input, INPUT_DISTANCE_CAP).unwrap_or(INPUT_DISTANCE_CAP);
    minimum.max(INPUT_DISTANCE_FRACTION * closest)
}

/// The closest distance between two atoms (or an atom and its own image)
/// of `s`, if one is shorter than `radius`; `Some(0)` when the cell is too
/// thin to search (a cell no prediction should have).
fn closest_distance_within(s: &Structure, radius: f64) -> Option<f64> {
    if graph::check_search_size(&s.lattice, radius).is_err() {
        return Some(0.0);
    }
    graph::closest_pair_within(&s.lattice, &s.positions, radius).map(|(_, _, d)| d)
}

/// Whether every pair of `s`'s atoms is at least `floor` apart.
fn apart(s: &Structure, floor: f64) -> bool {
    closest_distance_within(s, floor).is_none()
}

/// `predicted` as it is where its atoms keep the [`floor`] of `input`;
/// otherwise the longest step towards it that does, with the step kept in
/// info `e3relax_move_shortened` (0 is the input, 1 the prediction) and
/// frozen coordinates honoured again.
pub fn keep_apart(input: &Structure, predicted: Structure, fixed_cell: bool) -> Structure {
    shortened(input, &predicted, fixed_cell).unwrap_or(predicted)
}

/// The shortened prediction of [`keep_apart`], or `None` where `predicted`
/// already keeps the floor (nothing is copied then: this runs on every
/// prediction).
pub fn shortened(input: &Structure, predicted: &Structure, fixed_cell: bool) -> Option<Structure> {
    let floor = floor(input);
    if apart(predicted, floor) {
        return None;
    }
    let change = Change::of(input, predicted);
    let at = |t: f64| shrink_by(input, predicted, &change, t, t);
    // The input keeps its own floor (floor <= its closest distance, which
    // the model's 0.5 Å minimum already checked), the prediction does not.
    let (mut kept, mut refused) = (0.0, 1.0);
    for _ in 0..BISECTION_STEPS {
        let t = 0.5 * (kept + refused);
        if apart(&at(t), floor) {
            kept = t;
        } else {
            refused = t;
        }
    }
    let mut shortened = at(kept);
    shortened.set_info("e3relax_move_shortened", format!("{kept:.4}"));
    Some(crate::frozen::honour(input, shortened, fixed_cell))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg;

    /// Rock salt NaCl, conventional cell: Na on the origin and the face
    /// centres, Cl on the edge centres and the body centre.
    fn rock_salt() -> Structure {
        let a = 5.64;
        let na = [
            [0.0, 0.0, 0.0],
            [0.0, 0.5, 0.5],
            [0.5, 0.0, 0.5],
            [0.5, 0.5, 0.0],
        ];
        let cl = [
            [0.5, 0.0, 0.0],
            [0.0, 0.5, 0.0],
            [0.0, 0.0, 0.5],
            [0.5, 0.5, 0.5],
        ];
        let positions = na.iter().chain(&cl).map(|f| linalg::scale(*f, a)).collect();
        Structure::new(
            [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]],
            positions,
            vec![11, 11, 11, 11, 17, 17, 17, 17],
        )
        .unwrap()
    }

    /// The closest distance of `s` over every pair and image within two
    /// cells, the slow obvious way.
    fn brute_force_closest(s: &Structure) -> f64 {
        let mut best = f64::INFINITY;
        for (i, p) in s.positions.iter().enumerate() {
            for (j, q) in s.positions.iter().enumerate() {
                for a in -2..=2 {
                    for b in -2..=2 {
                        for c in -2..=2 {
                            if i == j && (a, b, c) == (0, 0, 0) {
                                continue;
                            }
                            let shift = linalg::vec_mat([a as f64, b as f64, c as f64], &s.lattice);
                            let d = linalg::norm(linalg::sub(linalg::add(*q, shift), *p));
                            best = best.min(d);
                        }
                    }
                }
            }
        }
        best
    }

    #[test]
    fn the_floor_is_the_model_minimum_or_a_fraction_of_the_input_closest_distance() {
        let salt = rock_salt();
        // Na-Cl 2.82 Å: beyond the 2.5 Å cap, so 0.4 * 2.5.
        assert!((floor(&salt) - 1.0).abs() < 1e-12);
        let mut squeezed = salt.clone();
        squeezed.positions[4][0] = 2.0; // Cl 2 Å from the Na at the origin
        assert!((brute_force_closest(&squeezed) - 2.0).abs() < 1e-12);
        assert!((floor(&squeezed) - 0.8).abs() < 1e-12);
        let mut close = salt.clone();
        close.positions[4][0] = 0.9; // 0.9 Å: the 0.5 Å minimum wins
        assert_eq!(floor(&close), 0.5);
    }

    #[test]
    fn a_prediction_that_keeps_atoms_apart_comes_back_unchanged() {
        let input = rock_salt();
        let mut predicted = input.clone();
        // Compressed by 5 % and one Cl moved 0.3 Å: a relaxation-like move.
        for row in predicted.lattice.iter_mut() {
            *row = linalg::scale(*row, 0.95);
        }
        for p in predicted.positions.iter_mut() {
            *p = linalg::scale(*p, 0.95);
        }
        predicted.positions[7][2] += 0.3;
        let kept = keep_apart(&input, predicted.clone(), false);
        assert_eq!(kept.positions, predicted.positions);
        assert_eq!(kept.lattice, predicted.lattice);
        assert!(kept.info_value("e3relax_move_shortened").is_none());
    }

    #[test]
    fn a_prediction_that_merges_two_atoms_is_shortened_to_the_floor() {
        let input = rock_salt();
        let mut predicted = input.clone();
        // The body-centre Cl driven onto the Na at (0.5, 0.5, 0) and the
        // cell stretched by 2 %: the merge has to be undone, the stretch
        // shortened with it.
        predicted.positions[7] = [0.5 * 5.64, 0.5 * 5.64, 0.02];
        for row in predicted.lattice.iter_mut() {
            *row = linalg::scale(*row, 1.02);
        }
        let frac_before = predicted.fractional_positions();
        for (p, f) in predicted.positions.iter_mut().zip(&frac_before) {
            *p = linalg::vec_mat(*f, &predicted.lattice);
        }
        assert!(brute_force_closest(&predicted) < 0.1);
        let floor = floor(&input);
        let kept = keep_apart(&input, predicted.clone(), false);
        let t: f64 = kept
            .info_value("e3relax_move_shortened")
            .unwrap()
            .parse()
            .unwrap();
        assert!(t > 0.0 && t < 1.0, "step {t}");
        let closest = brute_force_closest(&kept);
        assert!(closest >= floor - 1e-9, "{closest} below the floor {floor}");
        // The longest such step: the closest pair sits at the floor.
        assert!(
            closest < floor + 1e-6,
            "{closest} well above the floor {floor}"
        );
        // One factor for the cell and the atoms: the cell is stretched by
        // t times 2 %.
        let expected = 5.64 * (1.0 + 0.02 * t);
        assert!(
            (kept.lattice[0][0] - expected).abs() < 1e-3,
            "{:?}",
            kept.lattice
        );
    }

    #[test]
    fn frozen_atoms_stay_where_the_user_put_them() {
        let mut input = rock_salt();
        input.selective_dynamics = Some(vec![[true; 3]; 8]);
        input.selective_dynamics.as_mut().unwrap()[0] = [false; 3];
        let mut predicted = input.clone();
        predicted.positions[7] = [0.5 * 5.64, 0.5 * 5.64, 0.02];
        let kept = keep_apart(&input, predicted, true);
        assert_eq!(kept.positions[0], input.positions[0]);
        assert!(brute_force_closest(&kept) >= floor(&input) - 1e-9);
    }
}
