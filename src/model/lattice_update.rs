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
