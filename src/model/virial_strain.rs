//! The virial strain head (`virial_strain`): a cell deformation built from
//! the bonds, as a stress is. Each edge contributes a learned scalar times
//! `u u^T` (its direction's outer product with itself), averaged over the
//! crystal's edges. A bond that is too long or too short for its atoms says
//! "compress (stretch) along me"; vector features cannot say that at a
//! centrosymmetric site (the bond vectors cancel in any sum), and a
//! second-rank tensor made of bonds can. The result is symmetric,
//! rotation-equivariant (`R e R^T`), independent of the origin and of the
//! choice of lattice basis, so it keeps every symmetry of the input.

use tch::nn::{self, Module};
use tch::Tensor;

use super::nn::linear;
use super::radial::RadialBasis;

#[derive(Debug)]
pub struct VirialStrain {
    /// Per-atom scalar channels, Linear(F->F).
    atom_proj: nn::Linear,
    /// Distance dependence, Linear(K->F).
    edge_proj: nn::Linear,
    hidden: i64,
}

impl VirialStrain {
    pub fn new(path: nn::Path, hidden: i64, num_rbf: i64) -> Self {
        VirialStrain {
            atom_proj: linear(&path / "atom_proj", hidden, hidden, true),
            edge_proj: linear(&path / "edge_proj", num_rbf, hidden, true),
            hidden,
        }
    }

    /// `x [N,F]`; per edge: `source`, `target` `[E]`, `direction [E,3]`,
    /// `rbf [E,K]`, optional smooth `weight [E]`, `crystal [E]`; returns the
    /// strain `[B,3,3]`: the mean over each crystal's edges of
    /// `s_e u_e u_e^T`, `s_e = sum_F a_i a_j W(rbf) / F` with `a = atom_proj(x)`
    /// (symmetric in i and j).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &Tensor,
        source: &Tensor,
        target: &Tensor,
        direction: &Tensor,
        radial_basis: &RadialBasis,
        distance: &Tensor,
        weight: Option<&Tensor>,
        crystal: &Tensor,
        num_crystals: i64,
    ) -> Tensor {
        let a = self.atom_proj.forward(x);
        let s = if x.requires_grad() {
            let radial = self.edge_proj.forward(&radial_basis.forward(distance));
            (a.index_select(0, source) * a.index_select(0, target) * radial)
                .sum_dim_intlist(-1, false, None)
                / self.hidden as f64
        } else {
            // Inference: only the Gaussians that reach these distances (as
            // in message passing), and the product in place (equal to
            // rounding).
            let (rbf, used) = radial_basis.forward_reaching(distance);
            let mut product = rbf.matmul(&self.edge_proj.ws.narrow(1, 0, used).tr());
            if let Some(bias) = &self.edge_proj.bs {
                let _ = product.g_add_(bias);
            }
            let _ = product.g_mul_(&a.index_select(0, source));
            let _ = product.g_mul_(&a.index_select(0, target));
            product.sum_dim_intlist(-1, false, None) / self.hidden as f64
        };
        let s = match weight {
            Some(w) => s * w,
            None => s,
        };
        let outer = direction.unsqueeze(-1) * direction.unsqueeze(1);
        let per_edge = outer * s.view([-1, 1, 1]);
        let options = (x.kind(), x.device());
        let total = Tensor::zeros([num_crystals, 3, 3], options).index_add(0, crystal, &per_edge);
        let count = Tensor::zeros([num_crystals], options).index_add(
            0,
            crystal,
            &Tensor::ones([crystal.size()[0]], options),
        );
        total / count.clamp_min(1.0).view([-1, 1, 1])
    }
}
