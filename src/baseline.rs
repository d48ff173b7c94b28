//! The baselines every model number is read against, besides Dummy (the
//! unrelaxed structure as the prediction):
//!
//! * the **volume baseline**: no network at all. Each element gets a volume
//!   per atom, fitted by least squares so that the sums over a crystal's
//!   atoms match the relaxed volumes of the training pairs; a crystal's cell
//!   is then scaled isotropically to the geometric mean of its own volume and
//!   that sum, atoms keeping their fractional coordinates.
//!
//! The same fit initialises the model's `volume_prior`.

use crate::dataset::RelaxationPair;
use crate::linalg;
use crate::structure::Structure;

/// Per-atom volumes (Å^3) indexed by atomic number.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementVolumes {
    pub volumes: Vec<f64>,
}

impl ElementVolumes {
    /// Least-squares fit on the relaxed structures of `pairs`, for atomic
    /// numbers `0..table_size`. A small ridge term pulls every volume towards
    /// the data's mean volume per atom, which is also what elements absent
    /// from the pairs get, so the system is never singular.
    pub fn fit(pairs: &[RelaxationPair], table_size: usize) -> ElementVolumes {
        let total_volume: f64 = pairs.iter().map(|p| p.relaxed.volume()).sum();
        let total_atoms: usize = pairs.iter().map(|p| p.relaxed.natoms()).sum();
        let mean = if total_atoms > 0 {
            total_volume / total_atoms as f64
        } else {
            crate::model::network::DEFAULT_ATOM_VOLUME
        };
        // Normal equations (A^T A + ridge I) v = A^T b + ridge * mean.
        let n = table_size;
        let mut ata = vec![0.0; n * n];
        let mut atb = vec![0.0; n];
        for p in pairs {
            let mut counts = vec![0.0; n];
            for &z in &p.relaxed.numbers {
                if let Some(c) = counts.get_mut(z as usize) {
                    *c += 1.0;
                }
            }
            let present: Vec<usize> = (0..n).filter(|&z| counts[z] > 0.0).collect();
            for &a in &present {
                atb[a] += counts[a] * p.relaxed.volume();
                for &b in &present {
                    ata[a * n + b] += counts[a] * counts[b];
                }
            }
        }
        let ridge = 1e-3 * (0..n).map(|z| ata[z * n + z]).fold(1.0, f64::max);
        for z in 0..n {
            ata[z * n + z] += ridge;
            atb[z] += ridge * mean;
        }
        let volumes = crate::linalg::solve_symmetric(ata, atb, n)
            .into_iter()
            .map(|v| v.max(0.1 * mean))
            .collect();
        ElementVolumes { volumes }
    }

    /// The fitted volume of a crystal: the sum over its atoms (Å^3).
    pub fn reference_volume(&self, s: &Structure) -> f64 {
        let fallback = self.volumes.iter().sum::<f64>() / self.volumes.len().max(1) as f64;
        s.numbers
            .iter()
            .map(|&z| self.volumes.get(z as usize).copied().unwrap_or(fallback))
            .sum()
    }

    /// The volume baseline's prediction for `s`: the cell scaled to
    /// `sqrt(V_in V_fit)`, fractional coordinates kept.
    pub fn predict(&self, s: &Structure) -> Structure {
        let target = (s.volume() * self.reference_volume(s)).sqrt();
        let scale = (target / s.volume()).cbrt();
        let mut out = s.clone();
        out.lattice = s.lattice.map(|row| linalg::scale(row, scale));
        for p in &mut out.positions {
            *p = linalg::scale(*p, scale);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Target;

    fn cubic(a: f64, numbers: Vec<u32>) -> Structure {
        let positions = (0..numbers.len())
            .map(|k| [k as f64 * a / numbers.len() as f64, 0.3 * a, 0.6 * a])
            .collect();
        Structure::new(
            [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]],
            positions,
            numbers,
        )
        .unwrap()
    }

    fn pair(unrelaxed: Structure, relaxed: Structure) -> RelaxationPair {
        RelaxationPair {
            id: "p".into(),
            target: Target::new(&unrelaxed, &relaxed),
            unrelaxed,
            relaxed,
            frames: Vec::new(),
        }
    }

    /// Volumes that are exactly additive (Na 20, Cl 30 Å^3 per atom) are
    /// recovered, and the prediction is the geometric mean, fractional
    /// coordinates kept.
    #[test]
    fn recovers_additive_volumes_and_scales_isotropically() {
        let mut pairs = Vec::new();
        for (na, cl) in [(1, 1), (2, 1), (1, 3), (2, 2)] {
            let numbers: Vec<u32> = std::iter::repeat_n(11, na)
                .chain(std::iter::repeat_n(17, cl))
                .collect();
            let v: f64 = 20.0 * na as f64 + 30.0 * cl as f64;
            pairs.push(pair(
                cubic(1.1 * v.cbrt(), numbers.clone()),
                cubic(v.cbrt(), numbers),
            ));
        }
        let fit = ElementVolumes::fit(&pairs, 118);
        assert!((fit.volumes[11] - 20.0).abs() < 0.05, "{}", fit.volumes[11]);
        assert!((fit.volumes[17] - 30.0).abs() < 0.05, "{}", fit.volumes[17]);
        let input = cubic(4.0, vec![11, 17]);
        let predicted = fit.predict(&input);
        let expected = (64.0f64 * 50.0).sqrt();
        assert!((predicted.volume() - expected).abs() < 0.1);
        let before = input.fractional_positions();
        let after = predicted.fractional_positions();
        for (a, b) in before.iter().zip(&after) {
            for k in 0..3 {
                assert!((a[k] - b[k]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn cholesky_matches_a_hand_solution() {
        // [[4, 2], [2, 3]] x = [2, 1] -> x = [0.5, 0].
        let x = crate::linalg::solve_symmetric(vec![4.0, 2.0, 2.0, 3.0], vec![2.0, 1.0], 2);
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12);
    }
}
