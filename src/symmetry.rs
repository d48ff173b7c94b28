//! Keeping the input's space group in the prediction.
//!
//! The network is equivariant to rotations, translations, permutations and
//! periodic images, but its three lattice nodes have one set of parameters
//! each, so it is not invariant to a change of lattice basis; a symmetry
//! operation that maps lattice vector 1 onto lattice vector 2 (a cubic
//! four-fold axis, a hexagonal three-fold axis) is such a change, and the
//! raw prediction can lower the symmetry. DFT codes use symmetry to cut
//! k-points and work, so the prediction is symmetrised with the operations
//! of the input, as those codes symmetrise their forces and stress: the
//! cell's deformation and the atoms' displacements are averaged over the
//! group (the Reynolds operator), which leaves an already symmetric
//! prediction unchanged and makes any other one exactly symmetric.
//!
//! The operations are found with `moyo` (spglib's Rust successor).

use moyo::base::{AngleTolerance, Cell, Lattice};
use moyo::data::Setting;
use moyo::MoyoDataset;
use nalgebra::{Matrix3, Vector3};

use crate::linalg::{self, Mat3, Vec3};
use crate::structure::Structure;

/// The space-group operations of a crystal in its own basis (fractional
/// coordinates, `f -> W f + w`) and the atom each one maps each atom to.
#[derive(Debug, Clone)]
pub struct SpaceGroup {
    /// International space-group number (1-230).
    pub number: i32,
    /// Rotation parts `W` (integer entries, stored as f64).
    pub rotations: Vec<Mat3>,
    /// `permutations[k][i]`: the atom that operation k maps atom i onto.
    pub permutations: Vec<Vec<usize>>,
}

fn to_nalgebra(m: &Mat3) -> Matrix3<f64> {
    Matrix3::from_fn(|r, c| m[r][c])
}

/// `W f` for a fractional column vector `f`.
fn apply(w: &Mat3, f: Vec3) -> Vec3 {
    [0, 1, 2].map(|r| w[r][0] * f[0] + w[r][1] * f[1] + w[r][2] * f[2])
}

impl SpaceGroup {
    /// The space group of `s` at tolerance `symprec` (Å), or `None` when the
    /// search finds nothing beyond the identity (or fails: symmetrising is
    /// then simply not done).
    ///
    /// Frozen atoms (`selective_dynamics`) are told apart from free ones:
    /// an operation must map every atom onto one of the same species
    /// frozen the same way, and where some atom is frozen along some axes
    /// only, the operation must also map those axes onto themselves (it
    /// commutes with the projection onto the free axes, in the frame the
    /// flags refer to). What remains is a subgroup, and a symmetrised
    /// prediction then leaves frozen coordinates frozen.
    pub fn find(s: &Structure, symprec: f64) -> Option<SpaceGroup> {
        let fractional = s.fractional_positions();
        let labels = atom_labels(s);
        let cell = Cell::new(
            Lattice::new(to_nalgebra(&s.lattice)),
            fractional
                .iter()
                .map(|f| Vector3::new(f[0], f[1], f[2]))
                .collect(),
            labels.clone(),
        );
        // The search may panic on degenerate input deep inside; a failed
        // search only means no symmetrisation.
        let dataset = std::panic::catch_unwind(|| {
            MoyoDataset::new(
                &cell,
                symprec,
                AngleTolerance::Default,
                Setting::Spglib,
                false,
            )
        })
        .ok()?
        .ok()?;
        if dataset.operations.len() <= 1 {
            return None;
        }
        let mut rotations = Vec::new();
        let mut permutations = Vec::new();
        for op in &dataset.operations {
            let w: Mat3 = [0, 1, 2].map(|r| [0, 1, 2].map(|c| f64::from(op.rotation[(r, c)])));
            let t = [op.translation[0], op.translation[1], op.translation[2]];
            if !keeps_partial_masks(s, &w) {
                continue;
            }
            let permutation = map_atoms(s, &labels, &fractional, &w, t, symprec)?;
            rotations.push(w);
            permutations.push(permutation);
        }
        if rotations.len() <= 1 {
            return None;
        }
        Some(SpaceGroup {
            number: dataset.number,
            rotations,
            permutations,
        })
    }

    /// Symmetrises a prediction of `input` (same atoms, same order): the
    /// deformation `L^-1 L'` and the fractional displacements are averaged
    /// over the group.
    pub fn symmetrize(&self, input: &Structure, predicted: &Structure) -> Structure {
        let g = self.rotations.len() as f64;
        let lt = linalg::transpose(&input.lattice);
        let lt_inv = linalg::inverse(&lt).expect("valid lattice");
        // Column-vector Cartesian deformation A = (L^-1 L')^T, averaged as
        // R^-1 A R with the Cartesian rotations R = L^T W L^-T.
        let d = linalg::matmul(
            &linalg::inverse(&input.lattice).expect("valid lattice"),
            &predicted.lattice,
        );
        let a = linalg::transpose(&d);
        let mut a_sym = [[0.0; 3]; 3];
        for w in &self.rotations {
            let r = linalg::matmul(&linalg::matmul(&lt, w), &lt_inv);
            let r_inv = linalg::inverse(&r).expect("a rotation");
            let term = linalg::matmul(&linalg::matmul(&r_inv, &a), &r);
            for (row, t) in a_sym.iter_mut().zip(&term) {
                for (x, y) in row.iter_mut().zip(t) {
                    *x += y / g;
                }
            }
        }
        let lattice = linalg::matmul(&input.lattice, &linalg::transpose(&a_sym));
        // Fractional displacements (predicted in its own cell, minus the
        // input's), averaged as W^-1 delta_{p(i)}.
        let before = input.fractional_positions();
        let after = predicted.fractional_positions();
        let delta: Vec<Vec3> = after
            .iter()
            .zip(&before)
            .map(|(&a, &b)| linalg::sub(a, b))
            .collect();
        let inverses: Vec<Mat3> = self
            .rotations
            .iter()
            .map(|w| linalg::inverse(w).expect("unimodular"))
            .collect();
        let mut out = predicted.clone();
        out.lattice = lattice;
        for (i, p) in out.positions.iter_mut().enumerate() {
            let mut mean = [0.0; 3];
            for (w_inv, permutation) in inverses.iter().zip(&self.permutations) {
                let moved = apply(w_inv, delta[permutation[i]]);
                mean = linalg::add(mean, linalg::scale(moved, 1.0 / g));
            }
            *p = linalg::vec_mat(linalg::add(before[i], mean), &lattice);
        }
        out
    }
}

/// The symmetry search's atom types: the atomic number, and for a
/// structure with frozen coordinates also which axes each atom may move
/// along (three bits), so that frozen atoms map only onto frozen atoms.
fn atom_labels(s: &Structure) -> Vec<i32> {
    let frozen = crate::frozen::has_frozen(s);
    s.numbers
        .iter()
        .enumerate()
        .map(|(i, &z)| {
            let mask = match (&s.selective_dynamics, frozen) {
                (Some(flags), true) => flags[i]
                    .iter()
                    .enumerate()
                    .map(|(k, &m)| i32::from(m) << k)
                    .sum::<i32>(),
                _ => 0,
            };
            z as i32 * 8 + mask
        })
        .collect()
}

/// Whether the fractional rotation `W` maps the frozen axes of every partly
/// frozen atom onto themselves: `P M = M P` for the projection `P` onto the
/// free axes and `M` the rotation in the flags' frame (`W` acting on
/// fractional displacements, or the Cartesian `L^T W L^-T`).
fn keeps_partial_masks(s: &Structure, w: &Mat3) -> bool {
    let Some(flags) = &s.selective_dynamics else {
        return true;
    };
    let partial = |f: &&[bool; 3]| f.iter().any(|&m| m) && f.iter().any(|&m| !m);
    let mut masks: Vec<[bool; 3]> = flags.iter().filter(partial).copied().collect();
    masks.dedup();
    if masks.is_empty() {
        return true;
    }
    let m = match s.selective_dynamics_axes {
        crate::frozen::AxisFrame::Lattice => *w,
        crate::frozen::AxisFrame::Cartesian => {
            let lt = linalg::transpose(&s.lattice);
            linalg::matmul(
                &linalg::matmul(&lt, w),
                &linalg::inverse(&lt).expect("valid lattice"),
            )
        }
    };
    masks.iter().all(|mask| {
        (0..3).all(|r| {
            (0..3).all(|c| {
                // (P M)[r][c] = p_r M[r][c]; (M P)[r][c] = M[r][c] p_c.
                let p = |k: usize| if mask[k] { 1.0 } else { 0.0 };
                (p(r) * m[r][c] - m[r][c] * p(c)).abs() < 1e-6
            })
        })
    })
}

/// For `f -> W f + t`, the atom each atom lands on (same species, within a
/// few `symprec` in Cartesian distance, any periodic image); `None` if some
/// atom has no partner.
fn map_atoms(
    s: &Structure,
    labels: &[i32],
    fractional: &[Vec3],
    w: &Mat3,
    t: Vec3,
    symprec: f64,
) -> Option<Vec<usize>> {
    let limit = 3.0 * symprec + 1e-6;
    fractional
        .iter()
        .enumerate()
        .map(|(i, &f)| {
            let image = linalg::add(apply(w, f), t);
            (0..fractional.len())
                .filter(|&j| labels[j] == labels[i])
                .map(|j| {
                    let diff = linalg::sub(image, fractional[j]).map(|x| x - x.round());
                    (j, linalg::norm(linalg::vec_mat(diff, &s.lattice)))
                })
                .filter(|&(_, d)| d <= limit)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(j, _)| j)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rocksalt() -> Structure {
        let a = 5.64;
        let lattice = [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]];
        let fcc = [
            [0.0, 0.0, 0.0],
            [0.0, 0.5, 0.5],
            [0.5, 0.0, 0.5],
            [0.5, 0.5, 0.0],
        ];
        let mut positions = Vec::new();
        let mut numbers = Vec::new();
        for f in fcc {
            positions.push(linalg::vec_mat(f, &lattice));
            numbers.push(11);
        }
        for f in fcc {
            positions.push(linalg::vec_mat([f[0] + 0.5, f[1], f[2]], &lattice));
            numbers.push(17);
        }
        Structure::new(lattice, positions, numbers).unwrap()
    }

    #[test]
    fn finds_rock_salt_and_maps_every_atom() {
        let s = rocksalt();
        let g = SpaceGroup::find(&s, 1e-3).unwrap();
        assert_eq!(g.number, 225);
        // 48 point operations times 4 centring translations.
        assert_eq!(g.rotations.len(), 192);
        for p in &g.permutations {
            let mut sorted = p.clone();
            sorted.sort();
            assert_eq!(sorted, (0..8).collect::<Vec<_>>());
        }
    }

    /// A prediction that breaks the cubic symmetry (one axis stretched, one
    /// atom moved) comes back cubic: equal axes, right angles, atoms on
    /// their sites; a symmetric prediction (isotropic scaling) is unchanged.
    #[test]
    fn symmetrising_restores_the_group_and_keeps_symmetric_predictions() {
        let s = rocksalt();
        let g = SpaceGroup::find(&s, 1e-3).unwrap();
        let mut broken = s.clone();
        broken.lattice[0][0] *= 1.03;
        broken.lattice[1][0] += 0.05;
        broken.positions = s
            .fractional_positions()
            .iter()
            .map(|&f| linalg::vec_mat(f, &broken.lattice))
            .collect();
        broken.positions[3][2] += 0.1;
        let fixed = g.symmetrize(&s, &broken);
        let after = SpaceGroup::find(&fixed, 1e-5).unwrap();
        assert_eq!(after.number, 225);
        let lengths = fixed.lattice.map(linalg::norm);
        assert!((lengths[0] - lengths[1]).abs() < 1e-9 && (lengths[1] - lengths[2]).abs() < 1e-9);

        let mut scaled = s.clone();
        scaled.lattice = s.lattice.map(|r| linalg::scale(r, 1.02));
        scaled.positions = s
            .positions
            .iter()
            .map(|&p| linalg::scale(p, 1.02))
            .collect();
        let same = g.symmetrize(&s, &scaled);
        for (a, b) in same.positions.iter().zip(&scaled.positions) {
            for k in 0..3 {
                assert!((a[k] - b[k]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn a_triclinic_crystal_has_nothing_to_symmetrise() {
        let s = Structure::new(
            [[5.1, 0.0, 0.0], [1.3, 4.7, 0.0], [-0.8, 0.9, 6.2]],
            vec![[0.1, 0.2, 0.3], [2.0, 1.7, 3.1], [3.3, 2.9, 0.4]],
            vec![8, 14, 26],
        )
        .unwrap();
        assert!(SpaceGroup::find(&s, 1e-3).is_none());
    }
}
