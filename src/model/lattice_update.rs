//! Step 7, the lattice update: each lattice node's vector feature is
//! projected to a 3-vector displacement of its lattice vector.

use tch::nn::{self, Module};
use tch::Tensor;

use super::nn::linear;

#[derive(Debug)]
pub struct LatticeUpdate {
    /// Wl = Linear(F->1), no bias.
    mlp_l: nn::Linear,
}

impl LatticeUpdate {
    pub fn new(path: nn::Path, hidden: i64) -> Self {
        LatticeUpdate {
            mlp_l: linear(&path / "mlp_l", hidden, 1, false),
        }
    }

    /// `w [B,3,F] -> dl [B,3]`.
    pub fn forward(&self, w: &Tensor) -> Tensor {
        self.mlp_l.forward(w).squeeze_dim(-1)
    }
}

/// Adds the three per-axis displacements `dl_c [B,3]` to the lattice
/// `[B,3,3]`: to row c (FIX 1, equivariant) or, as the authors' code does,
/// to column c.
pub fn apply(lattice: &Tensor, deltas: &[Tensor], as_columns: bool) -> Tensor {
    let refs: Vec<&Tensor> = deltas.iter().collect();
    let delta = Tensor::stack(&refs, if as_columns { 2 } else { 1 });
    lattice + delta
}

/// Largest strain (Frobenius norm) one layer may apply: keeps `I + e`
/// well away from singular whatever the weights do.
pub const MAX_LAYER_STRAIN: f64 = 0.5;

/// The rotation-free deformation of `lattice_update: "strain"`: with `dL`
/// the per-axis displacements as rows, `e = sym(L^-1 dL)` (plus the
/// symmetric `extra`, the virial strain head's), smoothly
/// saturated at [`MAX_LAYER_STRAIN`] (`e tanh(|e|/c) c/|e|`, within 0.4 %
/// of `e` below |e| = 0.05), and the returned `D = I + e` `[B,3,3]`; the new
/// lattice is `L D` and atoms follow as `x D`. Equivariant (a rotation `R`
/// maps `e` to `R e R^T`) and unchanged by the rotational part of `dL`,
/// which a relaxation never produces.
pub fn strain_deformation(lattice: &Tensor, deltas: &[Tensor], extra: Option<&Tensor>) -> Tensor {
    let refs: Vec<&Tensor> = deltas.iter().collect();
    let delta = Tensor::stack(&refs, 1);
    let m = Tensor::linalg_solve(lattice, &delta, true);
    let strain = (&m + m.transpose(1, 2)) * 0.5;
    let strain = match extra {
        Some(e) => strain + e,
        None => strain,
    };
    let size = (strain.square().sum_dim_intlist(&[1i64, 2][..], true, None) + 1e-12).sqrt();
    let factor = (&size / MAX_LAYER_STRAIN).tanh() * MAX_LAYER_STRAIN / &size;
    let identity = Tensor::eye(3, (lattice.kind(), lattice.device()));
    strain * factor + identity
}
