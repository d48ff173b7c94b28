//! Uncertainty from an ensemble: independently trained models (different
//! seeds and example orders) relax the same crystal; the mean of their
//! predictions is the prediction and their spread the uncertainty.
//!
//! A model directory holds an ensemble when it has `ensemble.json`:
//! `{"members": ["members/seed-2", "members/seed-3"]}` (directories relative
//! to the model directory); the directory's own model is the first member.
//!
//! Per atom, the uncertainty is the root mean square over members of the
//! deviation of each member's displacement (from the input, in its own
//! predicted cell) from the mean displacement, Å. Per crystal: the root
//! mean square deviation of the members' cell strains `L^-1 L_m - I`
//! (Frobenius, dimensionless) and the standard deviation of their volumes
//! (Å^3). All three are invariant to rotations, origin shifts, periodic
//! images and atom permutations, as the members' predictions are
//! equivariant.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::linalg::{self, Mat3, Vec3};
use crate::structure::Structure;
use crate::trust::Change;

/// The spread of an ensemble's predictions for one crystal.
#[derive(Debug, Clone, PartialEq)]
pub struct Uncertainty {
    /// Per atom, Å.
    pub atoms: Vec<f64>,
    /// Cell strain spread (dimensionless).
    pub cell: f64,
    /// Volume spread, Å^3.
    pub volume: f64,
}

impl Uncertainty {
    /// The mean of the per-atom uncertainties (one number per crystal).
    pub fn mean_atom(&self) -> f64 {
        self.atoms.iter().sum::<f64>() / self.atoms.len().max(1) as f64
    }

    /// One number per crystal on the scale of its coordinate error, Å: the
    /// atoms' mean spread and the cell's combined in quadrature, the cell's
    /// as the displacement its strain spread makes across the cell,
    /// `cell * V^(1/3)` (`V`: the predicted volume, Å^3). The coordinate
    /// error counts both, since atoms are carried with the cell. Invariant
    /// as its parts are.
    pub fn coordinates(&self, volume: f64) -> f64 {
        (self.mean_atom().powi(2) + (self.cell * volume.cbrt()).powi(2)).sqrt()
    }
}

/// Most members an ensemble may list.
pub const MAX_MEMBERS: usize = 32;

/// The member directories listed in `dir/ensemble.json`, or an empty list
/// when the directory has none. Errors name the file and the problem.
pub fn member_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let path = dir.join("ensemble.json");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = crate::io::read_regular_text(&path, 1 << 20)?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Listing {
        members: Vec<String>,
    }
    let listing: Listing = serde_json::from_str(&text)
        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
    if listing.members.is_empty() || listing.members.len() > MAX_MEMBERS {
        return Err(Error::Model(format!(
            "{}: an ensemble lists 1 to {MAX_MEMBERS} members, this one {}",
            path.display(),
            listing.members.len()
        )));
    }
    Ok(listing.members.iter().map(|m| dir.join(m)).collect())
}

/// `acc += a m`, entry by entry.
fn add_scaled(acc: &mut Mat3, m: &Mat3, a: f64) {
    for (row, m_row) in acc.iter_mut().zip(m) {
        for (x, y) in row.iter_mut().zip(m_row) {
            *x += a * y;
        }
    }
}

/// The mean prediction of `members` (each a prediction for `input`, same
/// atoms) and its spread.
pub fn combine(input: &Structure, members: &[Structure]) -> (Structure, Uncertainty) {
    let k = members.len() as f64;
    let before = input.fractional_positions();
    let changes: Vec<Change> = members.iter().map(|m| Change::of(input, m)).collect();
    // Mean lattice and strains.
    let mut lattice = [[0.0; 3]; 3];
    for m in members {
        add_scaled(&mut lattice, &m.lattice, 1.0 / k);
    }
    let mut mean_strain = [[0.0; 3]; 3];
    for c in &changes {
        add_scaled(&mut mean_strain, &c.strain, 1.0 / k);
    }
    let cell = (changes
        .iter()
        .map(|c| {
            let mut d = c.strain;
            add_scaled(&mut d, &mean_strain, -1.0);
            linalg::frobenius(&d).powi(2)
        })
        .sum::<f64>()
        / k)
        .sqrt();
    let volumes: Vec<f64> = members.iter().map(Structure::volume).collect();
    let mean_volume = volumes.iter().sum::<f64>() / k;
    let volume = (volumes
        .iter()
        .map(|v| (v - mean_volume).powi(2))
        .sum::<f64>()
        / k)
        .sqrt();
    // Fractional moves (averaged for the mean structure) and Cartesian
    // displacements in each member's own cell (for the spread).
    let n = input.natoms();
    let mut mean_move = vec![[0.0; 3]; n];
    for c in &changes {
        for (mean, &u) in mean_move.iter_mut().zip(&c.moves) {
            *mean = linalg::add(*mean, linalg::scale(u, 1.0 / k));
        }
    }
    let displacements: Vec<Vec<Vec3>> = changes
        .iter()
        .zip(members)
        .map(|(c, m)| c.displacements(&m.lattice))
        .collect();
    let atoms = (0..n)
        .map(|i| {
            let mean = displacements.iter().fold([0.0; 3], |acc, d| {
                linalg::add(acc, linalg::scale(d[i], 1.0 / k))
            });
            (displacements
                .iter()
                .map(|d| {
                    let diff = linalg::sub(d[i], mean);
                    linalg::dot(diff, diff)
                })
                .sum::<f64>()
                / k)
                .sqrt()
        })
        .collect();
    let mut mean = members[0].clone();
    mean.lattice = lattice;
    for (i, p) in mean.positions.iter_mut().enumerate() {
        *p = linalg::vec_mat(linalg::add(before[i], mean_move[i]), &lattice);
    }
    (
        mean,
        Uncertainty {
            atoms,
            cell,
            volume,
        },
    )
}

/// Spearman's rank correlation of two equally long samples (ties get their
/// mean rank); `None` for fewer than 3 values or a constant sample.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 3 {
        return None;
    }
    let ranks = |x: &[f64]| {
        let mut order: Vec<usize> = (0..x.len()).collect();
        order.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
        let mut r = vec![0.0; x.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len() && x[order[end]] == x[order[start]] {
                end += 1;
            }
            let rank = (start + end - 1) as f64 / 2.0;
            for &i in &order[start..end] {
                r[i] = rank;
            }
            start = end;
        }
        r
    };
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crystal() -> Structure {
        let lattice = [[4.0, 0.0, 0.0], [0.5, 4.2, 0.0], [0.0, 0.3, 5.0]];
        Structure::new(
            lattice,
            vec![[0.0; 3], [2.0, 2.1, 2.4], [1.0, 3.0, 0.5]],
            vec![14, 8, 8],
        )
        .unwrap()
    }

    fn shifted(s: &Structure, atom: usize, by: Vec3, scale: f64) -> Structure {
        let mut m = s.clone();
        m.lattice = s.lattice.map(|row| linalg::scale(row, scale));
        let f = s.fractional_positions();
        m.positions = f.iter().map(|&g| linalg::vec_mat(g, &m.lattice)).collect();
        m.positions[atom] = linalg::add(m.positions[atom], by);
        m
    }

    #[test]
    fn identical_members_have_no_spread_and_their_mean_is_themselves() {
        let s = crystal();
        let m = shifted(&s, 1, [0.1, 0.0, 0.0], 1.02);
        let (mean, u) = combine(&s, &[m.clone(), m.clone(), m.clone()]);
        assert!(u.atoms.iter().all(|&a| a < 1e-12) && u.cell < 1e-12 && u.volume < 1e-9);
        for (a, b) in mean.positions.iter().zip(&m.positions) {
            assert!((0..3).all(|k| (a[k] - b[k]).abs() < 1e-12));
        }
    }

    #[test]
    fn the_spread_is_the_members_deviation_from_their_mean() {
        let s = crystal();
        // Two members moving atom 2 by +-0.1 Å along x, same cell.
        let a = shifted(&s, 2, [0.1, 0.0, 0.0], 1.0);
        let b = shifted(&s, 2, [-0.1, 0.0, 0.0], 1.0);
        let (mean, u) = combine(&s, &[a, b]);
        assert!((u.atoms[2] - 0.1).abs() < 1e-12, "{:?}", u.atoms);
        assert!(u.atoms[0] < 1e-12 && u.atoms[1] < 1e-12);
        assert!((mean.positions[2][0] - s.positions[2][0]).abs() < 1e-12);
        // Two cells 1 % larger and smaller: volume spread = half the
        // difference, strain spread = 0.01 sqrt 3.
        let (_, u) = combine(
            &s,
            &[
                shifted(&s, 0, [0.0; 3], 1.01),
                shifted(&s, 0, [0.0; 3], 0.99),
            ],
        );
        let v = s.volume();
        assert!((u.volume - (1.01f64.powi(3) - 0.99f64.powi(3)) * v / 2.0).abs() < 1e-9);
        assert!((u.cell - 0.01 * 3f64.sqrt()).abs() < 1e-12);
    }

    /// The coordinate uncertainty of a crystal whose members differ only
    /// by a strain is the displacement that strain spread makes across a
    /// cell of the crystal's size; with the atoms' spread added in
    /// quadrature.
    #[test]
    fn coordinate_uncertainty_counts_the_cells_spread_across_the_cell() {
        let u = Uncertainty {
            atoms: vec![0.0, 0.0],
            cell: 0.01,
            volume: 0.0,
        };
        assert!((u.coordinates(125.0) - 0.05).abs() < 1e-12);
        let u = Uncertainty {
            atoms: vec![0.02, 0.04],
            cell: 0.008,
            volume: 0.0,
        };
        // sqrt(0.03^2 + (0.008 * 5)^2) = 0.05
        assert!((u.coordinates(125.0) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn spearman_ranks() {
        assert_eq!(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]),
            Some(1.0)
        );
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        // Monotone but not linear is still 1; ties share ranks.
        assert_eq!(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 64.0]),
            Some(1.0)
        );
        let r = spearman(&[1.0, 1.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!(r > 0.9 && r < 1.0);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
    }
}
