//! Step 2, lattice -> atom: each lattice node (treated as a point) sends a
//! message to every atom of its crystal. One set of parameters per axis.

use tch::nn::{self, Module};
use tch::Tensor;

use super::nn::{linear, split, Mlp};

#[derive(Debug)]
pub struct LatticeToAtom {
    /// P = Linear(F->F), act, Linear(F->3F).
    x_local_proj: Mlp,
    /// W_f = Linear(K->3F).
    edge_local_proj: nn::Linear,
    /// S_loc = Linear(2F->F), act, Linear(F->F), act.
    mlp_scalar_local: Mlp,
    /// V_loc = Linear(F->F), no bias.
    mlp_vector_local: nn::Linear,
    hidden: i64,
}

impl LatticeToAtom {
    pub fn new(path: nn::Path, hidden: i64, num_rbf: i64) -> Self {
        LatticeToAtom {
            x_local_proj: Mlp::new(&path / "x_local_proj", hidden, hidden, 3 * hidden, false),
            edge_local_proj: linear(&path / "edge_local_proj", num_rbf, 3 * hidden, true),
            mlp_scalar_local: Mlp::new(
                &path / "mlp_scalar_local",
                2 * hidden,
                hidden,
                hidden,
                true,
            ),
            mlp_vector_local: linear(&path / "mlp_vector_local", hidden, hidden, false),
            hidden,
        }
    }

    /// `x [N,F]`, `v [N,3,F]`; `direction [N,3]` = `u_ic`, `rbf [N,K]` =
    /// `f_ic`; `s [N,F]`, `w [N,3,F]`: the lattice node's features gathered
    /// to each atom. Returns the new `(x, v)`.
    pub fn forward(
        &self,
        x: &Tensor,
        v: &Tensor,
        direction: &Tensor,
        rbf: &Tensor,
        s: &Tensor,
        w: &Tensor,
    ) -> (Tensor, Tensor) {
        let h = self.x_local_proj.forward(x) * self.edge_local_proj.forward(rbf) / 3f64.sqrt();
        let parts = split(&h, 3);
        let x = x + &parts[2];
        let v = (parts[0].unsqueeze(1) * v + parts[1].unsqueeze(1) * direction.unsqueeze(-1))
            / (self.hidden as f64).sqrt();
        let x = self.mlp_scalar_local.forward(&Tensor::cat(&[&x, s], -1)) + &x;
        let v = self.mlp_vector_local.forward(&(&v + w)) + &v;
        (x, v)
    }
}
