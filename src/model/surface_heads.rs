//! Energy-surface heads (`surface_heads`): the input structure's energy
//! per atom, the forces on its atoms and its virial per atom, read from the
//! trunk's features at the input geometry.
//!
//! They are an auxiliary task. A relaxation pair costs the labeller a
//! whole optimisation; its energy, forces and stress at one geometry cost
//! about a hundredth of that and are defined for any structure, also for
//! far-from-equilibrium ones whose relaxed end point their input does not
//! decide. Training the shared layers to predict them teaches the trunk
//! the energy surface around many more structure types than there are
//! relaxation pairs. A relaxation never runs these heads.
//!
//! * forces `[N,3]` (eV/Å): a gated readout of the vector features,
//!   `sum_c (V W)_c g_c(x)`, rotation-equivariant;
//! * virial per atom `[B,3,3]` (eV/atom, `stress V / N` with ASE's sign:
//!   positive when the cell wants to shrink): a learned scalar per bond
//!   times the bond direction's outer product `u u^T` (the shape of a
//!   pair-potential virial), plus a learned isotropic part per atom, summed
//!   over the crystal and divided by its atom count; symmetric, equivariant
//!   (`R t R^T`), independent of the origin and the lattice basis;
//! * energy per atom `[B]` (eV/atom): the mean over atoms of a scalar
//!   MLP's output; trained against the label minus a per-element reference
//!   fitted on the labels (the training data's job, not the model's).

use tch::nn::{self, Module};
use tch::Tensor;

use super::message_passing::EdgeGeometry;
use super::network::mean_over_crystals;
use super::nn::{linear, Mlp};
use super::radial::RadialBasis;

#[derive(Debug)]
pub struct SurfaceHeads {
    /// Per-atom energy, MLP(F -> F -> 1).
    energy: Mlp,
    /// Vector channels of the force, Linear(F->F), no bias (a bias would
    /// break equivariance).
    force_vector: nn::Linear,
    /// Per-channel gates of the force from the scalars, Linear(F->F).
    force_gate: nn::Linear,
    /// Per-atom channels of the bond scalars, Linear(F->F).
    virial_atom: nn::Linear,
    /// Distance dependence of the bond scalars, Linear(K->F).
    virial_edge: nn::Linear,
    /// Isotropic (pressure-like) part per atom, Linear(F->1).
    virial_isotropic: nn::Linear,
    hidden: i64,
}

/// The heads' outputs for a batch.
#[derive(Debug)]
pub struct SurfacePrediction {
    /// `[B]`, eV/atom (less the per-element reference of the labels).
    pub energy_per_atom: Tensor,
    /// `[N,3]`, eV/Å.
    pub forces: Tensor,
    /// `[B,3,3]`, eV/atom.
    pub virial_per_atom: Tensor,
}

impl SurfaceHeads {
    pub fn new(path: nn::Path, hidden: i64, num_rbf: i64) -> Self {
        SurfaceHeads {
            energy: Mlp::new(&path / "energy", hidden, hidden, 1, false),
            force_vector: linear(&path / "force_vector", hidden, hidden, false),
            force_gate: linear(&path / "force_gate", hidden, hidden, true),
            virial_atom: linear(&path / "virial_atom", hidden, hidden, true),
            virial_edge: linear(&path / "virial_edge", num_rbf, hidden, true),
            virial_isotropic: linear(&path / "virial_isotropic", hidden, 1, true),
            hidden,
        }
    }

    /// `x [N,F]`, `v [N,3,F]` at the input geometry, its `edges`, each
    /// atom's crystal `[N]` and each crystal's atom count `[B]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &Tensor,
        v: &Tensor,
        edges: &EdgeGeometry,
        edge_crystal: &Tensor,
        radial_basis: &RadialBasis,
        atom_crystal: &Tensor,
        atom_counts: &Tensor,
    ) -> SurfacePrediction {
        let nb = atom_counts.size()[0];
        let options = (x.kind(), x.device());
        let per_crystal_mean =
            |per_atom: &Tensor| mean_over_crystals(atom_crystal, atom_counts, per_atom);

        let energy_per_atom = per_crystal_mean(&self.energy.forward(x).squeeze_dim(-1));

        let gate = self.force_gate.forward(x).unsqueeze(1);
        let forces = (self.force_vector.forward(v) * gate).sum_dim_intlist(-1, false, None)
            / (self.hidden as f64).sqrt();

        let a = self.virial_atom.forward(x);
        let radial = self
            .virial_edge
            .forward(&radial_basis.forward(&edges.distance));
        let mut s = (a.index_select(0, &edges.source) * a.index_select(0, &edges.target) * radial)
            .sum_dim_intlist(-1, false, None)
            / self.hidden as f64;
        if let Some(w) = &edges.weight {
            s *= w;
        }
        let outer = edges.direction.unsqueeze(-1) * edges.direction.unsqueeze(1);
        let bonds = Tensor::zeros([nb, 3, 3], options).index_add(
            0,
            edge_crystal,
            &(outer * s.view([-1, 1, 1])),
        );
        let pressure = per_crystal_mean(&self.virial_isotropic.forward(x).squeeze_dim(-1));
        let virial_per_atom = bonds / atom_counts.view([-1, 1, 1])
            + Tensor::eye(3, options).unsqueeze(0) * pressure.view([-1, 1, 1]);

        SurfacePrediction {
            energy_per_atom,
            forces,
            virial_per_atom,
        }
    }
}
