//! Step 3, atom-atom message passing along the fixed edges, in chunks of
//! edges so that a 10,000-atom cell never holds all per-edge features.

use crate::profile;
use tch::nn::{self, Module};
use tch::Tensor;

use super::nn::{linear, split, Mlp};
use super::radial::RadialBasis;

/// Per-edge geometry of the current layer.
pub struct EdgeGeometry {
    /// Source atom `j` of each edge `[E]`.
    pub source: Tensor,
    /// Target atom `i` `[E]`.
    pub target: Tensor,
    /// `d = norm(r_ji)` `[E]`.
    pub distance: Tensor,
    /// `u_e = -r_ji / d` `[E,3]`.
    pub direction: Tensor,
    /// With the symmetric graph, a smooth cutoff `[E]` that multiplies
    /// every edge's message (1 at d = 0, 0 at the graph radius).
    pub weight: Option<Tensor>,
}

/// The cosine cutoff `(1 + cos(pi d / radius)) / 2` for `d < radius`, else 0.
pub fn cosine_cutoff(distance: &Tensor, radius: f64) -> Tensor {
    let inside = distance.lt(radius).to_kind(distance.kind());
    ((distance * (std::f64::consts::PI / radius)).cos() + 1.0) * 0.5 * inside
}

#[derive(Debug)]
pub struct MessagePassing {
    /// Q = Linear(F->F/2), act, Linear(F/2->3F).
    x_proj: Mlp,
    /// W_e = Linear(K->3F).
    edge_proj: nn::Linear,
    hidden: i64,
}

impl MessagePassing {
    pub fn new(path: nn::Path, hidden: i64, num_rbf: i64) -> Self {
        MessagePassing {
            x_proj: Mlp::new(&path / "x_proj", hidden, hidden / 2, 3 * hidden, false),
            edge_proj: linear(&path / "edge_proj", num_rbf, 3 * hidden, true),
            hidden,
        }
    }

    /// Edges per chunk: a `[chunk, 3F]` f32 tensor stays under 32 MiB, the
    /// largest block glibc's malloc serves from its heap (see
    /// [`crate::runtime::tune_allocator`]); bigger ones are fresh `mmap`s
    /// whose every page faults on first touch, each time.
    pub fn chunk_size(&self) -> i64 {
        (((1i64 << 23) - 1024) / (3 * self.hidden)).max(256)
    }

    pub fn forward(
        &self,
        x: &Tensor,
        v: &Tensor,
        edges: &EdgeGeometry,
        radial: &RadialBasis,
    ) -> (Tensor, Tensor) {
        self.forward_in_chunks(x, v, edges, radial, self.chunk_size())
    }

    /// [`MessagePassing::forward`] with `chunk` edges at a time.
    pub fn forward_in_chunks(
        &self,
        x: &Tensor,
        v: &Tensor,
        edges: &EdgeGeometry,
        radial: &RadialBasis,
        chunk: i64,
    ) -> (Tensor, Tensor) {
        let scale_f = (self.hidden as f64).sqrt();
        let projected = self.x_proj.forward(x);
        let mut dx = x.zeros_like();
        let mut dv = v.zeros_like();
        let total = edges.source.size()[0];
        let chunk = chunk.max(1);
        let mut start = 0;
        while start < total {
            let len = chunk.min(total - start);
            let source = edges.source.narrow(0, start, len);
            let target = edges.target.narrow(0, start, len);
            let direction = edges.direction.narrow(0, start, len);
            let weight = edges.weight.as_ref().map(|w| w.narrow(0, start, len));
            let distance = edges.distance.narrow(0, start, len);
            if projected.requires_grad() {
                // Training: out-of-place, so that autograd keeps every
                // operand it needs.
                let radial_part = self.edge_proj.forward(&radial.forward(&distance));
                let m = projected.index_select(0, &source) * radial_part / 3f64.sqrt();
                let m = match &weight {
                    Some(weight) => m * weight.unsqueeze(-1),
                    None => m,
                };
                let parts = split(&m, 3);
                let dv_edge = (parts[0].unsqueeze(1) * v.index_select(0, &source)
                    + parts[1].unsqueeze(1) * direction.unsqueeze(-1))
                    / scale_f;
                dx = dx.index_add(0, &target, &parts[2]);
                dv = dv.index_add(0, &target, &dv_edge);
            } else {
                // Inference: the same products in fewer passes over
                // per-edge tensors (equal to rounding). The per-edge factor
                // (cutoff weight / sqrt 3) goes into the rows of the radial
                // basis, the bias becomes one more basis column holding
                // that factor, and 1/sqrt F of the first two thirds goes
                // into the weight's columns: one matrix product writes the
                // radial filter already scaled.
                let m = profile::stage("layer: message passing: radial filter", || {
                    // Only the Gaussians that reach these distances (the
                    // rest are below 1.5e-8).
                    let (rbf, used) = radial.forward_reaching(&distance);
                    let factor = match &weight {
                        Some(weight) => weight / 3f64.sqrt(),
                        None => distance.ones_like() / 3f64.sqrt(),
                    }
                    .unsqueeze(-1);
                    let f = self.hidden;
                    let column_scale = Tensor::cat(
                        &[
                            Tensor::full([2 * f], 1.0 / scale_f, (rbf.kind(), rbf.device())),
                            Tensor::ones([f], (rbf.kind(), rbf.device())),
                        ],
                        0,
                    );
                    let mut rows = vec![rbf * &factor];
                    let mut matrix = vec![self.edge_proj.ws.narrow(1, 0, used).tr()];
                    if let Some(bias) = &self.edge_proj.bs {
                        rows.push(factor.shallow_clone());
                        matrix.push(bias.unsqueeze(0));
                    }
                    let matrix = Tensor::cat(&matrix, 0) * column_scale;
                    Tensor::cat(&rows, 1).matmul(&matrix)
                });
                let parts = profile::stage("layer: message passing: scalar messages", || {
                    let mut m = m;
                    let _ = m.g_mul_(&projected.index_select(0, &source));
                    split(&m, 3)
                });
                let dv_edge = profile::stage("layer: message passing: vector messages", || {
                    let mut dv_edge = v.index_select(0, &source);
                    let _ = dv_edge.g_mul_(&parts[0].unsqueeze(1));
                    let _ = dv_edge.addcmul_(&direction.unsqueeze(-1), &parts[1].unsqueeze(1));
                    dv_edge
                });
                profile::stage("layer: message passing: sums over edges", || {
                    let _ = dx.index_add_(0, &target, &parts[2]);
                    let _ = dv.index_add_(0, &target, &dv_edge);
                });
            }
            start += len;
        }
        ((x + dx) / 2f64.sqrt(), v + dv)
    }
}
