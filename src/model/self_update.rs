//! Step 4, the per-atom update mixing scalar and vector features.

use tch::nn::{self, Module};
use tch::Tensor;

use super::nn::{channel_norm, linear, split, Mlp};

#[derive(Debug)]
pub struct SelfUpdate {
    /// U = Linear(F->2F), no bias.
    vec_proj: nn::Linear,
    /// G = Linear(2F->F), act, Linear(F->3F).
    xvec_proj: Mlp,
}

impl SelfUpdate {
    pub fn new(path: nn::Path, hidden: i64) -> Self {
        SelfUpdate {
            vec_proj: linear(&path / "vec_proj", hidden, 2 * hidden, false),
            xvec_proj: Mlp::new(&path / "xvec_proj", 2 * hidden, hidden, 3 * hidden, false),
        }
    }

    pub fn forward(&self, x: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let uv = split(&self.vec_proj.forward(v), 2);
        let a = split(
            &self
                .xvec_proj
                .forward(&Tensor::cat(&[x, &channel_norm(&uv[1])], -1)),
            3,
        );
        let dx = &a[1] / 2f64.sqrt() + x * a[2].tanh();
        let dv = a[0].unsqueeze(1) * &uv[0];
        ((x + dx) / 2f64.sqrt(), v + dv)
    }
}
