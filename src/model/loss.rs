//! The layer-wise supervised loss of docs/model.md.

use tch::Tensor;

use super::network::LayerOutput;

/// How the terms of [`layerwise_loss`] are weighted.
#[derive(Debug, Clone, PartialEq)]
pub struct LossWeights {
    /// `w_t`, one per layer (`ModelConfig::loss_weights`).
    pub layers: Vec<f64>,
    /// `lambda`, the lattice term against the position term (1 in the
    /// paper).
    pub lattice: f64,
    /// Position term as a mean over crystals of each crystal's mean over
    /// its atoms (how the coordinate MAE is averaged), instead of the
    /// paper's mean over all atoms of the batch, in which a 24-atom cell
    /// counts six times as much as a 4-atom one.
    pub per_crystal: bool,
}

/// `sum_t w_t ( mean over atoms of |pos_t - pos*|_2 + lambda * mean over
/// the 9 lattice entries of |L_t - L*| )`, means over the whole batch.
/// `target_positions [N,3]` are the relaxed positions unwrapped next to the
/// unrelaxed ones; `target_lattice [B,3,3]`; `atom_crystal [N]` and
/// `atom_counts [B]` (the batch's) are read only with
/// [`LossWeights::per_crystal`].
pub fn layerwise_loss(
    outputs: &[LayerOutput],
    target_positions: &Tensor,
    target_lattice: &Tensor,
    atom_crystal: &Tensor,
    atom_counts: &Tensor,
    weights: &LossWeights,
) -> Tensor {
    // Each atom's share of the position term: 1/N, or 1/(B n_crystal).
    let atom_share = if weights.per_crystal {
        let crystals = atom_counts.size()[0] as f64;
        Some(atom_counts.index_select(0, atom_crystal).reciprocal() / crystals)
    } else {
        None
    };
    sum_over_layers(
        outputs,
        target_positions,
        target_lattice,
        weights,
        |distances| match &atom_share {
            Some(share) => (distances * share).sum(None),
            None => distances.mean(None),
        },
        |lattice_errors| lattice_errors.mean(None),
    )
}

/// `sum_t w_t (position(|pos_t - pos*|_2) + lambda lattice(|L_t - L*|))`:
/// the layers' sum both losses share, with their reductions over the
/// atoms' distances `[N]` and the lattice entries' errors `[B,3,3]`.
fn sum_over_layers(
    outputs: &[LayerOutput],
    target_positions: &Tensor,
    target_lattice: &Tensor,
    weights: &LossWeights,
    position: impl Fn(Tensor) -> Tensor,
    lattice: impl Fn(Tensor) -> Tensor,
) -> Tensor {
    let mut total = Tensor::zeros([], (target_positions.kind(), target_positions.device()));
    for (out, &w) in outputs.iter().zip(&weights.layers) {
        if w == 0.0 {
            continue;
        }
        let distances = (&out.positions - target_positions)
            .square()
            .sum_dim_intlist(-1, false, None)
            .sqrt();
        let position_error = position(distances);
        let lattice_error = lattice((&out.lattice - target_lattice).abs());
        total += (position_error + lattice_error * weights.lattice) * w;
    }
    total
}

/// A whole batch's counts, when a process runs only part of it (data
/// parallel training): the part's loss is weighted by them, so that the
/// parts' losses add up to the whole batch's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchTotals {
    pub atoms: f64,
    pub crystals: f64,
}

/// [`layerwise_loss`] of part of a batch whose whole has `totals`: the
/// same terms, summed over this part and divided by the whole batch's
/// counts (atoms for the position term, crystals for the per-crystal
/// position term and the lattice term).
pub fn layerwise_loss_of_part(
    outputs: &[LayerOutput],
    target_positions: &Tensor,
    target_lattice: &Tensor,
    atom_crystal: &Tensor,
    atom_counts: &Tensor,
    weights: &LossWeights,
    totals: BatchTotals,
) -> Tensor {
    let atom_share = if weights.per_crystal {
        atom_counts.index_select(0, atom_crystal).reciprocal() / totals.crystals
    } else {
        Tensor::ones_like(atom_crystal).to_kind(target_positions.kind()) / totals.atoms
    };
    sum_over_layers(
        outputs,
        target_positions,
        target_lattice,
        weights,
        |distances| (distances * &atom_share).sum(None),
        |lattice_errors| lattice_errors.sum(None) / (9.0 * totals.crystals),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn output(positions: &[f64], lattice: &[f64]) -> LayerOutput {
        LayerOutput {
            positions: Tensor::from_slice(positions).view([-1, 3]),
            lattice: Tensor::from_slice(lattice).view([1, 3, 3]),
        }
    }

    #[test]
    fn terms_are_the_mean_distance_and_the_weighted_mean_lattice_error() {
        let target_positions = Tensor::zeros([2, 3], (Kind::Double, Device::Cpu));
        let target_lattice = Tensor::eye(3, (Kind::Double, Device::Cpu)).view([1, 3, 3]) * 4.0;
        // Atom 0 is 3-4-0 (distance 5) off, atom 1 in place: mean 2.5.
        // One lattice entry 0.9 off: mean over 9 entries 0.1.
        let layer = || {
            output(
                &[3.0, 4.0, 0.0, 0.0, 0.0, 0.0],
                &[4.9, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 4.0],
            )
        };
        let exact = output(&[0.0; 6], &[4.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 4.0]);
        let atom_crystal = Tensor::from_slice(&[0i64, 0]);
        let atom_counts = Tensor::from_slice(&[2.0f64]);
        let loss = |outputs: &[LayerOutput], layers: Vec<f64>, lattice: f64| {
            layerwise_loss(
                outputs,
                &target_positions,
                &target_lattice,
                &atom_crystal,
                &atom_counts,
                &LossWeights {
                    layers,
                    lattice,
                    per_crystal: false,
                },
            )
            .double_value(&[])
        };
        assert!((loss(&[layer()], vec![1.0], 1.0) - 2.6).abs() < 1e-12);
        assert!((loss(&[layer()], vec![1.0], 4.0) - 2.9).abs() < 1e-12);
        assert!((loss(&[layer()], vec![1.0], 0.0) - 2.5).abs() < 1e-12);
        // Layer weights scale each layer's sum; a weight of 0 drops it.
        assert!((loss(&[layer(), exact], vec![2.0, 1.0], 1.0) - 5.2).abs() < 1e-12);
        assert_eq!(loss(&[layer()], vec![0.0], 1.0), 0.0);
    }

    #[test]
    fn per_crystal_position_term_averages_each_crystal_first() {
        // Crystal 0: one atom 4 Å off. Crystal 1: three atoms, one 1 Å off.
        // Over atoms: (4 + 1) / 4 = 1.25; per crystal: (4 + 1/3) / 2.
        let positions = [4.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let eye = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let out = LayerOutput {
            positions: Tensor::from_slice(&positions).view([4, 3]),
            lattice: Tensor::from_slice(&[eye, eye].concat()).view([2, 3, 3]),
        };
        let target_positions = Tensor::zeros([4, 3], (Kind::Double, Device::Cpu));
        let target_lattice = out.lattice.copy();
        let atom_crystal = Tensor::from_slice(&[0i64, 1, 1, 1]);
        let atom_counts = Tensor::from_slice(&[1.0f64, 3.0]);
        let loss = |per_crystal: bool| {
            let weights = LossWeights {
                layers: vec![1.0],
                lattice: 1.0,
                per_crystal,
            };
            layerwise_loss(
                std::slice::from_ref(&out),
                &target_positions,
                &target_lattice,
                &atom_crystal,
                &atom_counts,
                &weights,
            )
            .double_value(&[])
        };
        assert!((loss(false) - 1.25).abs() < 1e-12);
        assert!((loss(true) - (4.0 + 1.0 / 3.0) / 2.0).abs() < 1e-12);

        // The two crystals as two processes' parts of the batch: their
        // losses, weighted by the whole batch's counts, add up to it.
        let totals = BatchTotals {
            atoms: 4.0,
            crystals: 2.0,
        };
        let double = |v: &[f64]| Tensor::from_slice(v);
        let skewed = out.lattice.copy();
        let _ = skewed.get(1).get(0).get(1).fill_(0.45);
        let whole = LayerOutput {
            positions: out.positions.copy(),
            lattice: skewed.copy(),
        };
        for per_crystal in [false, true] {
            let weights = LossWeights {
                layers: vec![1.0],
                lattice: 2.0,
                per_crystal,
            };
            let all = layerwise_loss(
                std::slice::from_ref(&whole),
                &target_positions,
                &target_lattice,
                &atom_crystal,
                &atom_counts,
                &weights,
            )
            .double_value(&[]);
            let part = |atoms: std::ops::Range<i64>, crystal: i64, n: f64| {
                let outputs = [LayerOutput {
                    positions: whole
                        .positions
                        .narrow(0, atoms.start, atoms.end - atoms.start),
                    lattice: whole.lattice.narrow(0, crystal, 1),
                }];
                layerwise_loss_of_part(
                    &outputs,
                    &target_positions.narrow(0, atoms.start, atoms.end - atoms.start),
                    &target_lattice.narrow(0, crystal, 1),
                    &Tensor::zeros([atoms.end - atoms.start], (Kind::Int64, Device::Cpu)),
                    &double(&[n]),
                    &weights,
                    totals,
                )
                .double_value(&[])
            };
            let sum = part(0..1, 0, 1.0) + part(1..4, 1, 3.0);
            assert!((sum - all).abs() < 1e-12, "{per_crystal}: {sum} vs {all}");
        }
    }
}
