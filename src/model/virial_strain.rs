//! The virial strain head (`virial_strain`): a cell deformation built from
//! the bonds, as a stress is. Each edge contributes a learned scalar times
//! `u u^T` (its direction's outer product with itself), averaged over the
//! crystal's edges. A bond that is too long or too short for its atoms says
//! "compress (stretch) along me"; vector features cannot say that at a
//! centrosymmetric site (the bond vectors cancel in any sum), and a
//! second-rank tensor made of bonds can. The result is symmetric,
//! rotation-equivariant (`R e R^T`), independent of the origin and of the
//! choice of lattice basis, so it keeps every symmetry of the input.
//!
//! With `bond_strain_fit` the per-bond scalars are read instead as the
//! relative length change each bond asks for (`u^T e u`, to first order),
//! and the strain is the symmetric `e` that gives them best: a ridge
//! least-squares fit over the crystal's bonds ([`fit_strain`]). A plain mean
//! of `s u u^T` is that fit's right-hand side only; without the inverse of
//! the bonds' direction moments, a uniform strain is read back distorted,
//! by a different amount in every structure type.

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
    /// Read the scalars as bond length changes and fit the strain.
    fit: bool,
}

/// Ridge of [`fit_strain`], against direction moments of order 0.1-0.3
/// (for evenly spread bonds, 1/3 for a volume change and 2/15 for a
/// shear): keeps directions no bond probes (a layered crystal's stacking
/// axis beyond the graph radius) at zero strain.
pub const FIT_RIDGE: f64 = 0.02;

/// The symmetric strain `e [B,3,3]` minimising, per crystal,
/// `sum_e w_e (u_e^T e u_e - t_e)^2 / sum_e w_e + FIT_RIDGE |e|_F^2` over the
/// edges of `crystal [E]` (`direction [E,3]` unit vectors, `target [E]`,
/// optional `weight [E]`, else 1). Written in Mandel form (`e` as the
/// 6-vector `exx, eyy, ezz, sqrt2 eyz, sqrt2 exz, sqrt2 exy`, in which
/// `u^T e u` is a dot product and `|e|_F` the Euclidean norm), it is a 6x6
/// solve per crystal; rotations act orthogonally there, so the fit is
/// rotation-equivariant.
pub fn fit_strain(
    direction: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    crystal: &Tensor,
    num_crystals: i64,
) -> Tensor {
    let options = (direction.kind(), direction.device());
    let (ux, uy, uz) = (
        direction.select(1, 0),
        direction.select(1, 1),
        direction.select(1, 2),
    );
    let root2 = std::f64::consts::SQRT_2;
    let a = Tensor::stack(
        &[
            &ux * &ux,
            &uy * &uy,
            &uz * &uz,
            &uy * &uz * root2,
            &ux * &uz * root2,
            &ux * &uy * root2,
        ],
        1,
    );
    let w = match weight {
        Some(w) => w.shallow_clone(),
        None => Tensor::ones([direction.size()[0]], options),
    };
    let weighted = &a * w.unsqueeze(-1);
    let moments = Tensor::zeros([num_crystals, 6, 6], options).index_add(
        0,
        crystal,
        &(weighted.unsqueeze(-1) * a.unsqueeze(1)),
    );
    let rhs = Tensor::zeros([num_crystals, 6], options).index_add(
        0,
        crystal,
        &(&weighted * target.unsqueeze(-1)),
    );
    let total = Tensor::zeros([num_crystals], options)
        .index_add(0, crystal, &w)
        .clamp_min(1e-12);
    let system =
        moments / total.view([-1, 1, 1]) + Tensor::eye(6, options).unsqueeze(0) * FIT_RIDGE;
    let m = Tensor::linalg_solve(&system, &(rhs / total.view([-1, 1])), true);
    let half = m.narrow(1, 3, 3) / root2;
    let (xx, yy, zz) = (m.select(1, 0), m.select(1, 1), m.select(1, 2));
    let (yz, xz, xy) = (half.select(1, 0), half.select(1, 1), half.select(1, 2));
    Tensor::stack(&[&xx, &xy, &xz, &xy, &yy, &yz, &xz, &yz, &zz], 1).view([-1, 3, 3])
}

impl VirialStrain {
    /// `fit`: read the scalars as bond length changes ([`fit_strain`]).
    pub fn new(path: nn::Path, hidden: i64, num_rbf: i64, fit: bool) -> Self {
        VirialStrain {
            atom_proj: linear(&path / "atom_proj", hidden, hidden, true),
            edge_proj: linear(&path / "edge_proj", num_rbf, hidden, true),
            hidden,
            fit,
        }
    }

    /// `x [N,F]`; per edge: `source`, `target` `[E]`, `direction [E,3]`,
    /// `rbf [E,K]`, optional smooth `weight [E]`, `crystal [E]`; returns the
    /// strain `[B,3,3]`: the mean over each crystal's edges of
    /// `w_e s_e u_e u_e^T`, `s_e = sum_F a_i a_j W(rbf) / F` with
    /// `a = atom_proj(x)` (symmetric in i and j), or with `fit` the strain
    /// fitted to `u_e^T e u_e = s_e` with weights `w_e`.
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
        if self.fit {
            return fit_strain(direction, &s, weight, crystal, num_crystals);
        }
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
