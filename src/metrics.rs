//! Evaluation metrics of docs/model.md: coordinate MAE (against relaxed
//! positions unwrapped to the images nearest the unrelaxed ones), cell shape
//! deviation, volume MAE, and the Dummy baseline (unrelaxed as prediction).

use crate::linalg::{self, Mat3, Vec3};
use crate::structure::Structure;

/// Moves every target atom to its periodic image (offsets of the target
/// lattice) nearest the same atom's reference position.
///
/// The spec searches offsets in {-1, 0, 1}^3; we first remove the rounded
/// fractional difference, then search {-1, 0, 1}^3 around it, which gives
/// the same image whenever the spec's search can reach it and the right one
/// when an atom was wrapped by more than one cell.
pub fn unwrap_to_nearest_image(
    target_positions: &[Vec3],
    target_lattice: &Mat3,
    reference: &[Vec3],
) -> Vec<Vec3> {
    let inverse = linalg::inverse(target_lattice).expect("validated lattice is invertible");
    target_positions
        .iter()
        .zip(reference)
        .map(|(&p, &r)| {
            let frac = linalg::vec_mat(linalg::sub(r, p), &inverse).map(f64::round);
            let base = linalg::add(p, linalg::vec_mat(frac, target_lattice));
            let mut best = base;
            let mut best_d = f64::INFINITY;
            for k0 in -1..=1 {
                for k1 in -1..=1 {
                    for k2 in -1..=1 {
                        let shift = linalg::vec_mat([k0, k1, k2].map(f64::from), target_lattice);
                        let candidate = linalg::add(base, shift);
                        let d = linalg::norm(linalg::sub(candidate, r));
                        if d < best_d {
                            best_d = d;
                            best = candidate;
                        }
                    }
                }
            }
            best
        })
        .collect()
}

/// The three numbers of the paper's tables for one structure.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    /// Mean over atoms and xyz of |pos_pred - pos*|, Å.
    pub coordinate_mae: f64,
    /// Frobenius norm of L_pred L_pred^T - L* L*^T, Å^2.
    pub shape_deviation: f64,
    /// | |det L_pred| - |det L*| |, Å^3.
    pub volume_error: f64,
}

/// A relaxation target: the relaxed structure with positions already
/// unwrapped next to the unrelaxed ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub lattice: Mat3,
    pub positions: Vec<Vec3>,
}

impl Target {
    /// Builds the target of a pair (both structures have the same atoms).
    pub fn new(unrelaxed: &Structure, relaxed: &Structure) -> Self {
        Target {
            lattice: relaxed.lattice,
            positions: unwrap_to_nearest_image(
                &relaxed.positions,
                &relaxed.lattice,
                &unrelaxed.positions,
            ),
        }
    }
}

fn gram(l: &Mat3) -> Mat3 {
    linalg::matmul(l, &linalg::transpose(l))
}

/// Metrics of a predicted lattice and positions against a target.
pub fn compare(lattice: &Mat3, positions: &[Vec3], target: &Target) -> Metrics {
    let n = positions.len().max(1) as f64;
    let coordinate_mae = positions
        .iter()
        .zip(&target.positions)
        .map(|(p, t)| (0..3).map(|a| (p[a] - t[a]).abs()).sum::<f64>())
        .sum::<f64>()
        / (3.0 * n);
    let (gp, gt) = (gram(lattice), gram(&target.lattice));
    let mut diff = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            diff[i][j] = gp[i][j] - gt[i][j];
        }
    }
    Metrics {
        coordinate_mae,
        shape_deviation: linalg::frobenius(&diff),
        volume_error: (linalg::det(lattice).abs() - linalg::det(&target.lattice).abs()).abs(),
    }
}

/// Mean of per-structure metrics (zeros for an empty list).
pub fn mean(all: &[Metrics]) -> Metrics {
    let n = all.len().max(1) as f64;
    Metrics {
        coordinate_mae: all.iter().map(|m| m.coordinate_mae).sum::<f64>() / n,
        shape_deviation: all.iter().map(|m| m.shape_deviation).sum::<f64>() / n,
        volume_error: all.iter().map(|m| m.volume_error).sum::<f64>() / n,
    }
}

/// Where a prediction's coordinate error comes from: its coordinate MAE
/// with each half of it replaced by the truth. A coordinate error mixes
/// the cell (every atom's Cartesian position scales with it) and the atoms'
/// places in the cell; which of the two limits a model says where its
/// next gain is.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct ErrorSplit {
    /// The prediction's fractional coordinates in the relaxed cell, Å:
    /// what is left with a perfect cell.
    pub with_relaxed_cell: f64,
    /// The relaxed fractional coordinates in the predicted cell, Å: what
    /// is left with perfect places in the cell.
    pub with_relaxed_fractions: f64,
}

/// [`ErrorSplit`] of a predicted lattice and positions against a target.
pub fn split(lattice: &Mat3, positions: &[Vec3], target: &Target) -> ErrorSplit {
    let fractions = |l: &Mat3, p: &[Vec3]| -> Vec<Vec3> {
        let inverse = linalg::inverse(l).expect("validated lattice is invertible");
        p.iter().map(|&x| linalg::vec_mat(x, &inverse)).collect()
    };
    let place =
        |f: &[Vec3], l: &Mat3| -> Vec<Vec3> { f.iter().map(|&x| linalg::vec_mat(x, l)).collect() };
    let predicted = place(&fractions(lattice, positions), &target.lattice);
    let relaxed = place(&fractions(&target.lattice, &target.positions), lattice);
    ErrorSplit {
        with_relaxed_cell: compare(&target.lattice, &predicted, target).coordinate_mae,
        with_relaxed_fractions: compare(lattice, &relaxed, target).coordinate_mae,
    }
}

/// Mean of per-structure error splits (zeros for an empty list).
pub fn mean_split(all: &[ErrorSplit]) -> ErrorSplit {
    let n = all.len().max(1) as f64;
    ErrorSplit {
        with_relaxed_cell: all.iter().map(|m| m.with_relaxed_cell).sum::<f64>() / n,
        with_relaxed_fractions: all.iter().map(|m| m.with_relaxed_fractions).sum::<f64>() / n,
    }
}

/// The Dummy baseline of one pair: the unrelaxed structure as prediction.
pub fn dummy(unrelaxed: &Structure, target: &Target) -> Metrics {
    compare(&unrelaxed.lattice, &unrelaxed.positions, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cubic(a: f64) -> Mat3 {
        [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]]
    }

    #[test]
    fn the_error_split_puts_each_half_of_the_error_where_it_belongs() {
        let target = Target {
            lattice: cubic(4.0),
            positions: vec![[0.0; 3], [2.0, 2.0, 2.0]],
        };
        // The right places in a cell 5 % too large: all of the error is
        // the cell's.
        let stretched = cubic(4.2);
        let right_places = [[0.0; 3], [2.1, 2.1, 2.1]];
        let s = split(&stretched, &right_places, &target);
        assert!(s.with_relaxed_cell.abs() < 1e-12);
        let whole = compare(&stretched, &right_places, &target).coordinate_mae;
        assert!((whole - 0.05).abs() < 1e-12);
        assert!((s.with_relaxed_fractions - whole).abs() < 1e-12);
        // The right cell with one atom 0.3 Å off along x: all of it the
        // atoms'.
        let off = [[0.0; 3], [2.3, 2.0, 2.0]];
        let s = split(&cubic(4.0), &off, &target);
        assert!(s.with_relaxed_fractions.abs() < 1e-12);
        assert!((s.with_relaxed_cell - 0.05).abs() < 1e-12);
        // Both wrong: the slow way, atom by atom.
        let both = [[0.1, 0.0, 0.0], [2.3, 2.2, 2.1]];
        let s = split(&stretched, &both, &target);
        let in_relaxed_cell: Vec<Vec3> = both.iter().map(|p| p.map(|x| x * 4.0 / 4.2)).collect();
        let expected = compare(&cubic(4.0), &in_relaxed_cell, &target).coordinate_mae;
        assert!((s.with_relaxed_cell - expected).abs() < 1e-12);
        let relaxed_in_predicted: Vec<Vec3> = target
            .positions
            .iter()
            .map(|p| p.map(|x| x * 4.2 / 4.0))
            .collect();
        let expected = compare(&stretched, &relaxed_in_predicted, &target).coordinate_mae;
        assert!((s.with_relaxed_fractions - expected).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_metrics() {
        let target = Target {
            lattice: cubic(4.0),
            positions: vec![[0.0; 3], [2.0, 2.0, 2.0]],
        };
        let m = compare(&cubic(4.1), &[[0.3, 0.0, 0.0], [2.0, 1.7, 2.6]], &target);
        // |0.3| + |0.3| + |0.6| over 6 numbers.
        assert!((m.coordinate_mae - 0.2).abs() < 1e-12);
        // diag(16.81 - 16) in three entries: sqrt(3) * 0.81.
        assert!((m.shape_deviation - 3f64.sqrt() * 0.81).abs() < 1e-12);
        assert!((m.volume_error - (4.1f64.powi(3) - 64.0)).abs() < 1e-12);
    }

    #[test]
    fn unwrap_picks_nearest_image_even_far_away() {
        let l = [[4.0, 0.0, 0.0], [1.0, 4.0, 0.0], [0.0, 0.5, 4.0]];
        let reference = vec![[0.1, 0.1, 0.1], [3.9, 3.9, 3.9]];
        // Atom 2 moved by -0.2 in x and sits (2, -2, 2) cells away: k . L = (6, -7, 8).
        let relaxed = vec![[3.95, 0.1, 0.1], [3.7 + 6.0, 3.9 - 7.0, 3.9 + 8.0]];
        let un = unwrap_to_nearest_image(&relaxed, &l, &reference);
        assert!((un[0][0] - (-0.05)).abs() < 1e-12);
        for (a, expected) in [3.7, 3.9, 3.9].iter().enumerate() {
            assert!((un[1][a] - expected).abs() < 1e-12, "{:?}", un[1]);
        }
    }

    #[test]
    fn dummy_of_identical_pair_is_zero() {
        let s = Structure::new(cubic(3.0), vec![[0.1, 0.2, 0.3]], vec![3]).unwrap();
        let t = Target::new(&s, &s);
        assert_eq!(dummy(&s, &t), Metrics::default());
        let m = mean(&[
            Metrics {
                coordinate_mae: 1.0,
                shape_deviation: 2.0,
                volume_error: 3.0,
            },
            Metrics::default(),
        ]);
        assert_eq!(m.coordinate_mae, 0.5);
        assert_eq!(m.volume_error, 1.5);
    }
}
