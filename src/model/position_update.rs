//! Step 5, the position update: an attention-weighted sum of vector
//! channels plus a learned projection.

use tch::nn::{self, Module};
use tch::Tensor;

use super::nn::{linear, Mlp};

#[derive(Debug)]
pub struct PositionUpdate {
    /// A = Linear(F->F), act, Linear(F->F).
    attention_pos: Mlp,
    /// Wp = Linear(F->1), no bias.
    pos_mlp: nn::Linear,
}

impl PositionUpdate {
    pub fn new(path: nn::Path, hidden: i64) -> Self {
        PositionUpdate {
            attention_pos: Mlp::new(&path / "attention_pos", hidden, hidden, hidden, false),
            pos_mlp: linear(&path / "pos_mlp", hidden, 1, false),
        }
    }

    /// The displacement `dpos [N,3]`.
    pub fn forward(&self, x: &Tensor, v: &Tensor) -> Tensor {
        let alpha = self.attention_pos.forward(x).softmax(-1, x.kind());
        let attended = (alpha.unsqueeze(1) * v).sum_dim_intlist(-1, false, None);
        (self.pos_mlp.forward(v).squeeze_dim(-1) + attended) / 2.0
    }
}
