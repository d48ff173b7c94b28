//! A trust policy: move each crystal only as far as the model can be
//! trusted, falling back towards the input where the predicted change is
//! no larger than the model's typical error.
//!
//! The network's prediction for an already relaxed crystal is the relaxed
//! structure plus the model's own error, so it moves such a crystal by
//! about that error; for a crystal far from its minimum the predicted
//! change is mostly signal. Each crystal's predicted change is therefore
//! shrunk, separately for the cell and for the atoms, by the factor
//! `c^2 / (c^2 + s^2)` (a Wiener filter), where `c` is the size of the
//! predicted change (the Frobenius norm of the cell strain `L^-1 L' - I`;
//! the root mean square of the atoms' displacements beyond the cell's
//! deformation, Å) and `s` the scale of the model's error on it. One factor
//! per crystal keeps the prediction symmetric, invariant and continuous;
//! `s = 0` is the raw prediction.

use crate::linalg::{self, Mat3, Vec3};
use crate::structure::Structure;

/// The error scales of the trust policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trust {
    /// Scale of the model's error on the cell strain (dimensionless).
    pub strain: f64,
    /// Scale of the model's error on the atoms' displacements, Å.
    pub displacement: f64,
}

/// `c^2 / (c^2 + s^2)`, 1 for `s = 0`.
fn factor(change: f64, scale: f64) -> f64 {
    if scale <= 0.0 {
        return 1.0;
    }
    change * change / (change * change + scale * scale)
}

/// The change a prediction makes to its input: the cell strain
/// `L^-1 L' - I` and each atom's fractional move beyond the cell's
/// deformation (fractional coordinates in the predicted cell minus those
/// in the input cell). The trust policy, the fixed-point report and the
/// ensemble's spread all measure this.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub strain: Mat3,
    pub moves: Vec<Vec3>,
}

impl Change {
    pub fn of(input: &Structure, predicted: &Structure) -> Change {
        let mut strain = linalg::matmul(
            &linalg::inverse(&input.lattice).expect("validated lattice"),
            &predicted.lattice,
        );
        for (k, row) in strain.iter_mut().enumerate() {
            row[k] -= 1.0;
        }
        let before = input.fractional_positions();
        let moves = predicted
            .fractional_positions()
            .iter()
            .zip(&before)
            .map(|(&a, &b)| linalg::sub(a, b))
            .collect();
        Change { strain, moves }
    }

    /// The size of the strain (Frobenius norm).
    pub fn strain_size(&self) -> f64 {
        linalg::frobenius(&self.strain)
    }

    /// The moves in Å, measured in `lattice` (the predicted cell).
    pub fn displacements(&self, lattice: &Mat3) -> Vec<Vec3> {
        self.moves
            .iter()
            .map(|&u| linalg::vec_mat(u, lattice))
            .collect()
    }

    /// Root mean square of [`Change::displacements`], Å.
    pub fn displacement_rms(&self, lattice: &Mat3) -> f64 {
        let squared: f64 = self
            .displacements(lattice)
            .iter()
            .map(|&d| linalg::dot(d, d))
            .sum();
        (squared / self.moves.len().max(1) as f64).sqrt()
    }
}

/// The prediction for `input` shrunk towards it (see the module docs).
pub fn shrink(input: &Structure, predicted: &Structure, trust: &Trust) -> Structure {
    let change = Change::of(input, predicted);
    let cell_factor = factor(change.strain_size(), trust.strain);
    let mut kept: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for (row, strain_row) in kept.iter_mut().zip(&change.strain) {
        for (x, e) in row.iter_mut().zip(strain_row) {
            *x += cell_factor * e;
        }
    }
    let lattice = linalg::matmul(&input.lattice, &kept);
    let atom_factor = factor(
        change.displacement_rms(&predicted.lattice),
        trust.displacement,
    );
    let before = input.fractional_positions();
    let mut out = predicted.clone();
    out.lattice = lattice;
    for ((p, &b), &u) in out.positions.iter_mut().zip(&before).zip(&change.moves) {
        *p = linalg::vec_mat(linalg::add(b, linalg::scale(u, atom_factor)), &lattice);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crystal() -> Structure {
        let lattice = [[4.0, 0.0, 0.0], [0.5, 4.2, 0.0], [0.0, 0.3, 5.0]];
        Structure::new(lattice, vec![[0.0; 3], [2.0, 2.1, 2.4]], vec![14, 8]).unwrap()
    }

    fn moved(s: &Structure, strain: f64, shift: f64) -> Structure {
        let mut p = s.clone();
        let d = [
            [1.0 + strain, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0 - strain],
        ];
        p.lattice = linalg::matmul(&s.lattice, &d);
        let frac = s.fractional_positions();
        p.positions = frac
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let g = [f[0] + if i == 1 { shift } else { -shift }, f[1], f[2]];
                linalg::vec_mat(g, &p.lattice)
            })
            .collect();
        p
    }

    #[test]
    fn no_scale_is_the_raw_prediction_and_small_changes_shrink_most() {
        let s = crystal();
        let p = moved(&s, 0.02, 0.01);
        let raw = shrink(
            &s,
            &p,
            &Trust {
                strain: 0.0,
                displacement: 0.0,
            },
        );
        for (a, b) in raw.positions.iter().zip(&p.positions) {
            assert!((0..3).all(|k| (a[k] - b[k]).abs() < 1e-12));
        }
        let trust = Trust {
            strain: 0.02,
            displacement: 0.04,
        };
        // Strain norm 0.02 * sqrt 2: factor 2/3; a change 10x the scale
        // is kept at 99.5 %.
        let out = shrink(&s, &p, &trust);
        let e = (out.lattice[0][0] / s.lattice[0][0]) - 1.0;
        assert!((e - 0.02 * 2.0 / 3.0).abs() < 1e-12, "{e}");
        let big = shrink(&s, &moved(&s, 0.2, 0.0), &trust);
        assert!((big.lattice[0][0] / s.lattice[0][0] - 1.0 - 0.2 * 200.0 / 201.0).abs() < 1e-12);
        // Atoms: each fractional move scaled by the same factor.
        let (f0, f1, fp) = (
            s.fractional_positions(),
            out.fractional_positions(),
            p.fractional_positions(),
        );
        let ratio = (f1[1][0] - f0[1][0]) / (fp[1][0] - f0[1][0]);
        assert!(ratio > 0.0 && ratio < 1.0);
        assert!(((f1[0][0] - f0[0][0]) / (fp[0][0] - f0[0][0]) - ratio).abs() < 1e-12);
    }
}
