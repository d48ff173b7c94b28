//! Step 6, atom -> lattice: each lattice node gathers the mean atom
//! features of its crystal. One set of parameters per axis.

use tch::nn::{self, Module};
use tch::Tensor;

use super::nn::{channel_norm, linear, split, Mlp};

#[derive(Debug)]
pub struct AtomToLattice {
    /// S_glob = Linear(2F->F), act, Linear(F->F), act.
    mlp_scalar_global: Mlp,
    /// V_glob = Linear(F->F), no bias.
    mlp_vector_global: nn::Linear,
    /// Y = Linear(F->2F), no bias.
    vector_l_proj: nn::Linear,
    /// Z = Linear(2F->F), act, Linear(F->3F).
    scalar_l_proj: Mlp,
}

impl AtomToLattice {
    pub fn new(path: nn::Path, hidden: i64) -> Self {
        AtomToLattice {
            mlp_scalar_global: Mlp::new(
                &path / "mlp_scalar_global",
                2 * hidden,
                hidden,
                hidden,
                true,
            ),
            mlp_vector_global: linear(&path / "mlp_vector_global", hidden, hidden, false),
            vector_l_proj: linear(&path / "vector_l_proj", hidden, 2 * hidden, false),
            scalar_l_proj: Mlp::new(
                &path / "scalar_l_proj",
                2 * hidden,
                hidden,
                3 * hidden,
                false,
            ),
        }
    }

    /// `s [B,F]`, `w [B,3,F]`: the lattice node; `x_mean [B,F]`,
    /// `v_mean [B,3,F]`: atom means per crystal. Returns the new `(s, w)`.
    pub fn forward(
        &self,
        s: &Tensor,
        w: &Tensor,
        x_mean: &Tensor,
        v_mean: &Tensor,
    ) -> (Tensor, Tensor) {
        let s = s + self
            .mlp_scalar_global
            .forward(&Tensor::cat(&[x_mean, s], -1));
        let w = w + self.mlp_vector_global.forward(&(v_mean + w));
        let h = split(&self.vector_l_proj.forward(&w), 2);
        let b = split(
            &self
                .scalar_l_proj
                .forward(&Tensor::cat(&[&s, &channel_norm(&h[1])], -1)),
            3,
        );
        let new_s = &b[1] + &s * b[2].tanh();
        let new_w = b[0].unsqueeze(1) * &h[0] + &w;
        (new_s, new_w)
    }
}
