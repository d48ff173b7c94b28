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

/// The rotation-free update of `lattice_update: "strain"`: with `dL` the
/// per-axis displacements as rows, `e = sym(L^-1 dL)` and `L' = L (I + e)`.
/// Equivariant (a rotation `R` maps `e` to `R e R^T`) and unchanged by the
/// rotational part of `dL`, which a relaxation never produces.
pub fn apply_strain(lattice: &Tensor, deltas: &[Tensor]) -> Tensor {
    let refs: Vec<&Tensor> = deltas.iter().collect();
    let delta = Tensor::stack(&refs, 1);
    let m = Tensor::linalg_solve(lattice, &delta, true);
    let strain = (&m + m.transpose(1, 2)) * 0.5;
    lattice + lattice.matmul(&strain)
}
