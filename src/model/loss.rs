//! The layer-wise supervised loss of docs/model.md.

use tch::Tensor;

use super::network::LayerOutput;

/// `sum_t w_t ( mean over atoms of |pos_t - pos*|_2 + mean over the 9
/// lattice entries of |L_t - L*| )`, means over the whole batch.
/// `target_positions [N,3]` are the relaxed positions unwrapped next to the
/// unrelaxed ones; `target_lattice [B,3,3]`.
pub fn layerwise_loss(
    outputs: &[LayerOutput],
    target_positions: &Tensor,
    target_lattice: &Tensor,
    weights: &[f64],
) -> Tensor {
    let mut total = Tensor::zeros([], (target_positions.kind(), target_positions.device()));
    for (out, &w) in outputs.iter().zip(weights) {
        if w == 0.0 {
            continue;
        }
        let position_error = (&out.positions - target_positions)
            .square()
            .sum_dim_intlist(-1, false, None)
            .sqrt()
            .mean(None);
        let lattice_error = (&out.lattice - target_lattice).abs().mean(None);
        total += (position_error + lattice_error) * w;
    }
    total
}
