//! The energy-surface line search: how far to go along the predicted move.
//!
//! The network predicts where a crystal's relaxation ends; its direction is
//! usually better than its length (an already relaxed input still moves by
//! the model's error, and a move can overshoot). The model's energy-surface
//! heads ([`crate::model::surface_heads`]: forces and virial at any
//! geometry, trained on the labeller's single points) decide the length:
//! the path from the input (step 0) to the prediction (step 1) is sampled
//! at [`STEPS`]; at each sample the heads' forces and virial give the slope
//! `dE/dt` of the energy along the path; the slopes, integrated, give the
//! energy profile, and the crystal goes to its lowest point (a sample, or
//! where the slope changes sign between two).
//!
//! The path stops at the prediction. Continued to 1.5 it went there for a
//! fifth of the already relaxed validation crystals: the heads share the
//! trunk's bias along the predicted move, so they can shorten a move they
//! disagree with more reliably than lengthen one they agree with (the model
//! card has the numbers).
//!
//! Along the path the cell is `L(t) = L0 (I + t S)` and the fractional
//! coordinates `s(t) = s0 + t u` (the prediction's strain `S` and moves `u`,
//! [`crate::trust::Change`]), so the path keeps the input's symmetry and
//! every step is one factor per crystal, as in the trust policies. With
//! forces `F` (eV/Å) and the virial per atom `w` (eV/atom, ASE's sign:
//! `w = sigma V / N`, `N w = dE/d(strain)`),
//!
//! `dE/dt = -sum_a F_a . (u_a L(t)) + N sum_ij w_ij A_ij`, `A = L(t)^-1 L0 S`:
//!
//! the atoms' term at fixed cell and the strain's term at fixed fractional
//! coordinates (`dL = L0 S dt` is the strain `L^-1 dL` of the current
//! cell). Forces alone would not do: most of what separates a start from
//! its minimum is the cell.

use crate::linalg::{self, Mat3, Vec3};
use crate::structure::Structure;
use crate::trust::Change;

/// Where the path is sampled (fractions of the predicted move: 0 is the
/// input, 1 the prediction).
pub const STEPS: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

/// The slope `dE/dt` (eV per unit step) of the energy along the path from
/// `input` by `change`, at step `t`, from the `forces` on that step's atoms
/// and its `virial_per_atom`. With `fixed_cell` the strain term is left out
/// (the cell does not move).
pub fn slope(
    input: &Structure,
    change: &Change,
    t: f64,
    forces: &[Vec3],
    virial_per_atom: &Mat3,
    fixed_cell: bool,
) -> f64 {
    let lattice = change.lattice_at(input, t);
    let atoms: f64 = forces
        .iter()
        .zip(&change.moves)
        .map(|(&f, &u)| linalg::dot(f, linalg::vec_mat(u, &lattice)))
        .sum();
    if fixed_cell {
        return -atoms;
    }
    let inverse = linalg::inverse(&lattice).expect("a cell on the path to a checked prediction");
    let strain_rate = linalg::matmul(&inverse, &linalg::matmul(&input.lattice, &change.strain));
    let n = input.positions.len() as f64;
    let mut cell = 0.0;
    for i in 0..3 {
        for j in 0..3 {
            cell += virial_per_atom[i][j] * strain_rate[i][j];
        }
    }
    n * cell - atoms
}

/// The step with the lowest energy, from the slopes at `steps` (increasing,
/// the first 0): the profile is the integral of the slope, taken as linear
/// between samples, so the candidates are the samples and the points
/// between two samples where the slope turns from negative to positive.
/// Returns the step and its energy relative to step 0 (eV). Ties go to the
/// shorter step, so a flat profile leaves the input alone.
pub fn lowest(steps: &[f64], slopes: &[f64]) -> (f64, f64) {
    let mut best = (steps[0], 0.0);
    let mut energy = 0.0;
    for k in 1..steps.len() {
        let (t0, t1) = (steps[k - 1], steps[k]);
        let (g0, g1) = (slopes[k - 1], slopes[k]);
        if g0 < 0.0 && g1 > 0.0 {
            let crossing = t0 + (t1 - t0) * (-g0) / (g1 - g0);
            let at_crossing = energy + 0.5 * (crossing - t0) * g0;
            if at_crossing < best.1 {
                best = (crossing, at_crossing);
            }
        }
        energy += 0.5 * (t1 - t0) * (g0 + g1);
        if energy < best.1 {
            best = (t1, energy);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::shrink_by;

    /// A smooth pair energy, `sum exp(-(r/1.6)^2)` over all pairs and
    /// images (negligible beyond 12 Å), with its forces and virial written
    /// out: the slow, obvious reference for the slope.
    fn pair_energy(s: &Structure) -> (f64, Vec<Vec3>, Mat3) {
        let n = s.positions.len();
        let mut energy = 0.0;
        let mut forces = vec![[0.0; 3]; n];
        let mut d_strain = [[0.0; 3]; 3];
        let reach = 4;
        for (a, force) in forces.iter_mut().enumerate() {
            for b in 0..n {
                for i in -reach..=reach {
                    for j in -reach..=reach {
                        for k in -reach..=reach {
                            if a == b && i == 0 && j == 0 && k == 0 {
                                continue;
                            }
                            let shift = linalg::vec_mat([i as f64, j as f64, k as f64], &s.lattice);
                            let d = linalg::sub(linalg::add(s.positions[b], shift), s.positions[a]);
                            let r = linalg::norm(d);
                            if r > 12.0 {
                                continue;
                            }
                            let phi = (-(r / 1.6).powi(2)).exp();
                            let dphi = -2.0 * r / (1.6 * 1.6) * phi;
                            // Each pair appears twice (a-b and b-a).
                            energy += 0.5 * phi;
                            for x in 0..3 {
                                // dE/dr_a of this ordered pair, twice half.
                                force[x] += dphi * d[x] / r;
                                for y in 0..3 {
                                    d_strain[x][y] += 0.5 * dphi * d[x] * d[y] / r;
                                }
                            }
                        }
                    }
                }
            }
        }
        let per_atom = d_strain.map(|row| row.map(|v| v / n as f64));
        (energy, forces, per_atom)
    }

    fn crystal() -> Structure {
        let lattice = [[3.1, 0.0, 0.0], [0.4, 3.3, 0.0], [-0.2, 0.3, 3.6]];
        let positions = vec![[0.0, 0.0, 0.0], [1.6, 1.5, 1.9], [0.3, 2.2, 1.1]];
        Structure::new(lattice, positions, vec![14, 8, 8]).unwrap()
    }

    fn predicted(input: &Structure) -> Structure {
        let mut p = input.clone();
        p.lattice = linalg::matmul(
            &input.lattice,
            &[[1.04, 0.01, -0.02], [0.0, 0.97, 0.015], [0.01, 0.0, 1.05]],
        );
        let frac = input.fractional_positions();
        let moves = [[0.0, 0.0, 0.0], [0.03, -0.02, 0.01], [-0.015, 0.02, 0.03]];
        p.positions = frac
            .iter()
            .zip(moves)
            .map(|(&f, m)| linalg::vec_mat(linalg::add(f, m), &p.lattice))
            .collect();
        p
    }

    #[test]
    fn the_slope_is_the_derivative_of_the_energy_along_the_path() {
        let input = crystal();
        let change = Change::of(&input, &predicted(&input));
        let at = |t: f64| shrink_by(&input, &predicted(&input), &change, t, t);
        for t in [0.0, 0.4, 1.0, 1.3] {
            let (_, forces, virial) = pair_energy(&at(t));
            let analytic = slope(&input, &change, t, &forces, &virial, false);
            let h = 1e-5;
            let numeric = (pair_energy(&at(t + h)).0 - pair_energy(&at(t - h)).0) / (2.0 * h);
            assert!(
                (analytic - numeric).abs() < 1e-6 * (1.0 + numeric.abs()),
                "t {t}: slope {analytic}, finite difference {numeric}"
            );
        }
    }

    #[test]
    fn with_a_fixed_cell_only_the_atoms_count() {
        let input = crystal();
        let mut target = predicted(&input);
        target.lattice = input.lattice;
        let frac = predicted(&input).fractional_positions();
        target.positions = frac
            .iter()
            .map(|&f| linalg::vec_mat(f, &input.lattice))
            .collect();
        let change = Change::of(&input, &target);
        let at = |t: f64| shrink_by(&input, &target, &change, t, t);
        let (_, forces, virial) = pair_energy(&at(0.5));
        let h = 1e-5;
        let numeric = (pair_energy(&at(0.5 + h)).0 - pair_energy(&at(0.5 - h)).0) / (2.0 * h);
        let fixed = slope(&input, &change, 0.5, &forces, &virial, true);
        assert!((fixed - numeric).abs() < 1e-6 * (1.0 + numeric.abs()));
    }

    #[test]
    fn the_lowest_point_of_a_parabola_is_found_between_samples() {
        // E(t) = (t - 0.6)^2: slope 2 (t - 0.6), minimum at 0.6.
        let slopes: Vec<f64> = STEPS.iter().map(|t| 2.0 * (t - 0.6)).collect();
        let (t, e) = lowest(&STEPS, &slopes);
        assert!((t - 0.6).abs() < 1e-12, "{t}");
        assert!((e - (0.0 - 0.36)).abs() < 1e-12, "{e}");
    }

    #[test]
    fn an_input_at_its_minimum_stays_and_a_downhill_path_goes_to_the_end() {
        let uphill: Vec<f64> = STEPS.iter().map(|t| 1.0 + t).collect();
        assert_eq!(lowest(&STEPS, &uphill), (0.0, 0.0));
        let flat = vec![0.0; STEPS.len()];
        assert_eq!(lowest(&STEPS, &flat).0, 0.0);
        let downhill = vec![-1.0; STEPS.len()];
        let (t, e) = lowest(&STEPS, &downhill);
        assert_eq!(t, 1.0);
        assert!((e + 1.0).abs() < 1e-12);
    }

    #[test]
    fn of_two_valleys_the_deeper_one_wins() {
        // Down to a shallow valley near 0.25, up, then down to a deeper one
        // near 1.25.
        let steps = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5];
        let slopes = [-1.0, 0.5, 1.0, -2.0, -3.0, 0.5, 2.0];
        let (t, e) = lowest(&steps, &slopes);
        assert!(t > 1.0 && t < 1.25, "{t}");
        assert!(e < -0.5, "{e}");
        // The same profile cut at the first valley's far side keeps it.
        let (t, _) = lowest(&steps[..3], &slopes[..3]);
        assert!(t > 0.0 && t < 0.25, "{t}");
    }
}
