//! Small building blocks shared by the layers: the scaled SiLU, the
//! Linear-act-Linear(-act) stacks, vector norms and splits.

use tch::nn::{self, Module};
use tch::Tensor;

/// `act(x) = SiLU(x) / 0.6`.
pub fn act(x: &Tensor) -> Tensor {
    x.silu() / 0.6
}

/// A `Linear` (optionally without bias) named `weight`/`bias` under `path`,
/// initialised as PyTorch's `nn.Linear` (uniform on +-1/sqrt(fan_in) for
/// weight and bias). tch's default (Kaiming for ReLU) is sqrt(6) times wider
/// and makes the untrained network's features grow layer by layer.
pub fn linear(path: nn::Path, input: i64, output: i64, bias: bool) -> nn::Linear {
    let bound = 1.0 / (input as f64).sqrt();
    let init = nn::Init::Uniform {
        lo: -bound,
        up: bound,
    };
    nn::linear(
        path,
        input,
        output,
        nn::LinearConfig {
            ws_init: init,
            bs_init: Some(init),
            bias,
        },
    )
}

/// `Linear(a->b), act, Linear(b->c)` with an optional final `act`; the two
/// linears are named `.0` and `.2` as in the authors' `nn.Sequential`.
#[derive(Debug)]
pub struct Mlp {
    first: nn::Linear,
    second: nn::Linear,
    final_act: bool,
}

impl Mlp {
    pub fn new(path: nn::Path, input: i64, hidden: i64, output: i64, final_act: bool) -> Self {
        Mlp {
            first: linear(&path / 0, input, hidden, true),
            second: linear(&path / 2, hidden, output, true),
            final_act,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = self.second.forward(&act(&self.first.forward(x)));
        if self.final_act {
            act(&y)
        } else {
            y
        }
    }
}

/// Per-channel norm of a vector feature `[n, 3, F] -> [n, F]`:
/// `sqrt(sum over xyz of v^2 + 1e-8)`.
pub fn channel_norm(v: &Tensor) -> Tensor {
    (v.square().sum_dim_intlist(1, false, None) + 1e-8).sqrt()
}

/// Length of geometric vectors `[m, 3] -> [m]`:
/// `sqrt(max(sum of squares, 1e-8))`.
pub fn geometric_norm(r: &Tensor) -> Tensor {
    r.square()
        .sum_dim_intlist(-1, false, None)
        .clamp_min(1e-8)
        .sqrt()
}

/// Cuts the last axis into `parts` equal consecutive chunks.
pub fn split(x: &Tensor, parts: i64) -> Vec<Tensor> {
    let size = x.size().last().copied().unwrap_or(0) / parts;
    x.split(size, -1)
}
