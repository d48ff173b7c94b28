//! The E3Relax network: embeddings and T layers of steps 1-8 of
//! docs/model.md, returning positions and lattices after every layer.

use crate::profile;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::architecture::{self, Architecture, LatticeHead};
use super::atom_to_lattice::AtomToLattice;
use super::batch::Batch;
use super::config::{LatticeGeometry, ModelConfig};
use super::element_features;
use super::lattice_to_atom::LatticeToAtom;
use super::lattice_update::{self, LatticeUpdate};
use super::message_passing::{cosine_cutoff, EdgeGeometry, MessagePassing};
use super::nn::geometric_norm;
use super::position_update::PositionUpdate;
use super::radial::RadialBasis;
use super::self_update::SelfUpdate;
use super::surface_heads::{SurfaceHeads, SurfacePrediction};
use super::virial_strain::VirialStrain;

/// The three lattice axes' names in parameter paths (`l1`, `l2`, `l3`).
pub const AXES: [&str; 3] = ["l1", "l2", "l3"];

/// One layer's parameters (steps 2-7).
#[derive(Debug)]
struct Layer {
    lattice_to_atom: Vec<LatticeToAtom>,
    message_passing: MessagePassing,
    self_update: SelfUpdate,
    position_update: PositionUpdate,
    atom_to_lattice: Vec<AtomToLattice>,
    lattice_update: Vec<LatticeUpdate>,
    /// Only without lattice nodes: Linear(F->9) on the mean atom scalars.
    lattice_head: Option<nn::Linear>,
    /// Only with `virial_strain`.
    virial_strain: Option<VirialStrain>,
}

impl Layer {
    fn new(path: nn::Path, config: &ModelConfig, architecture: &Architecture) -> Self {
        let f = config.hidden_channels;
        let k = config.num_rbf;
        // Without lattice nodes there are no per-axis blocks.
        let axes: &[&str] = if architecture.has_lattice_nodes() {
            &AXES
        } else {
            &[]
        };
        Layer {
            lattice_to_atom: axes
                .iter()
                .map(|c| LatticeToAtom::new(&path / "lattice_to_atom" / *c, f, k))
                .collect(),
            message_passing: MessagePassing::new(&path / "message_passing", f, k),
            self_update: SelfUpdate::new(&path / "self_update", f),
            position_update: PositionUpdate::new(&path / "position_update", f),
            atom_to_lattice: axes
                .iter()
                .map(|c| AtomToLattice::new(&path / "atom_to_lattice" / *c, f))
                .collect(),
            lattice_update: axes
                .iter()
                .map(|c| LatticeUpdate::new(&path / "lattice_update" / *c, f))
                .collect(),
            lattice_head: (architecture.lattice == LatticeHead::PooledAtoms)
                .then(|| super::nn::linear(&path / "lattice_head", f, 9, true)),
            virial_strain: architecture.virial_strain().map(|kind| {
                let bond_fit = kind == architecture::VirialStrain::WithBondFit;
                VirialStrain::new(&path / "virial_strain", f, k, bond_fit)
            }),
        }
    }
}

/// Mean over each crystal's atoms of a per-atom tensor: `[N, ...]` ->
/// `[B, ...]`.
fn crystal_mean(batch: &Batch, per_atom: &Tensor) -> Tensor {
    mean_over_crystals(&batch.atom_crystal, &batch.atom_counts, per_atom)
}

/// [`crystal_mean`] from each atom's crystal `[N]` and each crystal's atom
/// count `[B]`.
pub(super) fn mean_over_crystals(
    atom_crystal: &Tensor,
    atom_counts: &Tensor,
    per_atom: &Tensor,
) -> Tensor {
    let mut shape = per_atom.size();
    shape[0] = atom_counts.size()[0];
    let mut count_shape = vec![1; shape.len()];
    count_shape[0] = shape[0];
    Tensor::zeros(shape.as_slice(), (per_atom.kind(), per_atom.device())).index_add(
        0,
        atom_crystal,
        per_atom,
    ) / atom_counts.reshape(count_shape.as_slice())
}

/// Positions `[N,3]` and lattices `[B,3,3]` after one layer, in the input's
/// periodic images.
#[derive(Debug)]
pub struct LayerOutput {
    pub positions: Tensor,
    pub lattice: Tensor,
}

/// The network. Parameters live in the `VarStore` of the path it was built
/// with; the name table is in `checkpoint.rs`.
#[derive(Debug)]
pub struct E3Relax {
    config: ModelConfig,
    /// The config's structural choices, typed.
    architecture: Architecture,
    radial: RadialBasis,
    atom_embedding: Tensor,
    element_features: Option<ElementFeatures>,
    lattice_embedding: Vec<Tensor>,
    layers: Vec<Layer>,
    volume_prior: Option<VolumePrior>,
    surface_heads: Option<SurfaceHeads>,
}

/// The descriptor part of the atom embedding (`element_features`).
#[derive(Debug)]
struct ElementFeatures {
    /// Encoded descriptors `[num_elements, NUM_FEATURES]`, f32 on the CPU:
    /// constants, not parameters (moved to the batch's device and kind
    /// when used; 19 KB).
    table: Tensor,
    /// `[NUM_FEATURES] -> [F]`, no bias (the learned rows are the bias).
    projection: nn::Linear,
}

impl ElementFeatures {
    fn embed(&self, numbers: &Tensor) -> Tensor {
        let weight = &self.projection.ws;
        let rows = self
            .table
            .to_device(numbers.device())
            .index_select(0, numbers)
            .to_kind(weight.kind());
        self.projection.forward(&rows)
    }
}

/// The composition-aware start of `volume_prior` (see [`ModelConfig`]).
#[derive(Debug)]
struct VolumePrior {
    /// ln of each element's volume per atom, Å^3 `[num_elements]`
    /// (composition reference).
    log_volume: Option<Tensor>,
    /// ln of each element's bond radius, Å `[num_elements]`
    /// (`bond_volume_prior`).
    log_radius: Option<Tensor>,
    /// Weight `g` of the reference volume `[1]`.
    weight: Tensor,
}

impl VolumePrior {
    /// Its parameters: physical quantities (volumes, radii, a mixing
    /// weight) that weight decay would pull towards 0 Å^3 and 1 Å, so they
    /// form the `PhysicalPrior` group.
    fn parameters(&self) -> Vec<&Tensor> {
        self.log_volume
            .iter()
            .chain(&self.log_radius)
            .chain(std::iter::once(&self.weight))
            .collect()
    }
}

/// Groups of parameters with their own optimiser treatment, declared
/// where the parameters are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterGroup {
    /// The volume prior's per-element volumes or radii and its weight:
    /// physical values, not weights to shrink (`decay_volume_prior`).
    PhysicalPrior,
}

/// Sharpness of the soft minimum over an atom's bonds of `ln(d / (r_i +
/// r_j))`: bonds 5 % longer than the shortest weigh e^-1 as much.
const BOND_SOFTMIN_SHARPNESS: f64 = 20.0;

/// Radius (Å) of an element without a tabulated covalent radius.
const DEFAULT_BOND_RADIUS: f64 = 1.5;

/// Default per-atom volume (Å^3) before a fit; a typical inorganic value.
pub const DEFAULT_ATOM_VOLUME: f64 = 18.0;

impl VolumePrior {
    /// The factor by which each crystal's cell is scaled `[B]`:
    /// `(V_ref / V_in)^(g/3)`.
    fn scale(&self, batch: &Batch, lattice: &Tensor, positions: &Tensor, radius: f64) -> Tensor {
        let log_ratio = match (&self.log_volume, &self.log_radius) {
            (_, Some(log_radius)) => {
                -3.0 * bond_mismatch(batch, lattice, positions, log_radius, radius)
            }
            (Some(log_volume), None) => {
                let nb = batch.num_crystals() as i64;
                let per_atom = log_volume.index_select(0, &batch.numbers).exp();
                let reference = Tensor::zeros([nb], (per_atom.kind(), per_atom.device()))
                    .index_add(0, &batch.atom_crystal, &per_atom);
                reference.log() - lattice.det().abs().log()
            }
            (None, None) => unreachable!("a volume prior has a reference"),
        };
        // At most a factor e (2.7) in volume either way.
        ((log_ratio * &self.weight).clamp(-1.0, 1.0) / 3.0).exp()
    }
}

/// Per crystal `[B]`: the mean over atoms of a soft minimum over each
/// atom's bonds of `ln(d / (r_i + r_j))` (0 when the nearest bonds have
/// their typical lengths; an atom without bonds counts 0). Invariant to
/// rotation, origin, images and permutation, as the graph is.
fn bond_mismatch(
    batch: &Batch,
    lattice: &Tensor,
    positions: &Tensor,
    log_radius: &Tensor,
    graph_radius: f64,
) -> Tensor {
    let n = batch.numbers.size()[0];
    let nb = batch.num_crystals() as i64;
    let options = (positions.kind(), positions.device());
    let distance = geometric_norm(&edge_vectors(batch, positions, lattice));
    let radius = log_radius.exp();
    let typical = radius.index_select(0, &batch.numbers.index_select(0, &batch.edge_source))
        + radius.index_select(0, &batch.numbers.index_select(0, &batch.edge_target));
    let log_ratio = distance.log() - typical.log();
    // Soft minimum per target atom, shifted by the atom's smallest value
    // (exact: the soft minimum does not depend on the shift).
    let smallest = tch::no_grad(|| {
        Tensor::full([n], 1e6, options).index_reduce(
            0,
            &batch.edge_target,
            &log_ratio,
            "amin",
            true,
        )
    });
    let weight = (-(&log_ratio - smallest.index_select(0, &batch.edge_target))
        * BOND_SOFTMIN_SHARPNESS)
        .exp()
        * cosine_cutoff(&distance, graph_radius);
    let total = Tensor::zeros([n], options).index_add(0, &batch.edge_target, &weight);
    let weighted =
        Tensor::zeros([n], options).index_add(0, &batch.edge_target, &(&weight * &log_ratio));
    let per_atom = weighted / total.clamp_min(1e-12);
    let atoms =
        Tensor::zeros([nb], options).index_add(0, &batch.atom_crystal, &Tensor::ones([n], options));
    Tensor::zeros([nb], options).index_add(0, &batch.atom_crystal, &per_atom) / atoms
}

/// Each edge's vector `x_source + n L - x_target` `[E,3]` (Å): the bond
/// from the target atom to the source atom's image.
fn edge_vectors(batch: &Batch, positions: &Tensor, lattice: &Tensor) -> Tensor {
    let edge_lattice = lattice.index_select(0, &batch.edge_crystal);
    let shift = batch
        .edge_offset
        .unsqueeze(1)
        .bmm(&edge_lattice)
        .squeeze_dim(1);
    positions.index_select(0, &batch.edge_source) + shift
        - positions.index_select(0, &batch.edge_target)
}

/// Applies a per-crystal deformation `d [B,3,3]` (row vectors: `x -> x d`)
/// to positions `[N,3]`.
fn deform_positions(batch: &Batch, positions: &Tensor, d: &Tensor) -> Tensor {
    positions
        .unsqueeze(1)
        .bmm(&d.index_select(0, &batch.atom_crystal))
        .squeeze_dim(1)
}

impl E3Relax {
    /// Creates the parameters under `root` with the spec's initialisation
    /// (embeddings uniform on [-sqrt 3, sqrt 3], linears as PyTorch's).
    pub fn new(root: &nn::Path, config: &ModelConfig) -> Self {
        let f = config.hidden_channels;
        let bound = 3f64.sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let element_features = config.element_features.then(|| ElementFeatures {
            table: Tensor::from_slice(&element_features::encoded_table(
                config.num_elements as usize,
            ))
            .view([config.num_elements, element_features::NUM_FEATURES as i64]),
            projection: super::nn::linear(
                root / "element_features",
                element_features::NUM_FEATURES as i64,
                f,
                false,
            ),
        });
        // With descriptors, an element's own row starts at zero: it holds
        // only what the descriptors cannot say.
        let embedding_init = if config.element_features {
            nn::Init::Const(0.0)
        } else {
            init
        };
        let atom_embedding =
            (root / "atom_embedding").var("weight", &[config.num_elements, f], embedding_init);
        let architecture = config.architecture();
        let axes: &[&str] = if architecture.has_lattice_nodes() {
            &AXES
        } else {
            &[]
        };
        let lattice_embedding = axes
            .iter()
            .map(|c| (root / "lattice_embedding" / *c).var("weight", &[1, f], init))
            .collect();
        let layers = (0..config.num_layers)
            .map(|t| Layer::new(root / "layers" / t, config, &architecture))
            .collect();
        let volume_prior =
            (architecture.volume_prior != architecture::VolumePrior::Off).then(|| {
                let path = root / "volume_prior";
                let (log_volume, log_radius) =
                    if architecture.volume_prior == architecture::VolumePrior::Bonds {
                        let radii: Vec<f32> = (0..config.num_elements as usize)
                            .map(|k| {
                                let covalent = super::element_table::ELEMENT_DESCRIPTORS
                                    .get(k)
                                    .map_or(f64::NAN, |d| d.values[1]);
                                let radius = if covalent.is_finite() {
                                    covalent
                                } else {
                                    DEFAULT_BOND_RADIUS
                                };
                                radius.ln() as f32
                            })
                            .collect();
                        let log_radius = path.var(
                            "log_radius",
                            &[config.num_elements],
                            nn::Init::Const(DEFAULT_BOND_RADIUS.ln()),
                        );
                        tch::no_grad(|| {
                            log_radius
                                .shallow_clone()
                                .copy_(&Tensor::from_slice(&radii).to_kind(log_radius.kind()))
                        });
                        (None, Some(log_radius))
                    } else {
                        let log_volume = path.var(
                            "log_volume",
                            &[config.num_elements],
                            nn::Init::Const(DEFAULT_ATOM_VOLUME.ln()),
                        );
                        (Some(log_volume), None)
                    };
                VolumePrior {
                    log_volume,
                    log_radius,
                    weight: path.var("weight", &[1], nn::Init::Const(0.5)),
                }
            });
        E3Relax {
            config: config.clone(),
            architecture,
            radial: RadialBasis {
                num_rbf: config.num_rbf,
                cutoff: config.rbf_cutoff,
                exponent: config.envelope_exponent,
            },
            atom_embedding,
            element_features,
            lattice_embedding,
            layers,
            volume_prior,
            surface_heads: config
                .surface_heads
                .then(|| SurfaceHeads::new(root / "surface_heads", f, config.num_rbf)),
        }
    }

    /// Sets the volume prior's per-element volumes (Å^3 per atom, indexed
    /// by atomic number); a no-op for a model without it.
    pub fn set_element_volumes(&self, volumes: &[f64]) {
        if let Some(log_volume) = self
            .volume_prior
            .as_ref()
            .and_then(|p| p.log_volume.as_ref())
        {
            let logs: Vec<f64> = volumes.iter().map(|v| v.ln()).collect();
            let t = Tensor::from_slice(&logs)
                .to_kind(log_volume.kind())
                .to_device(log_volume.device());
            tch::no_grad(|| log_volume.shallow_clone().copy_(&t));
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Runs all layers; element t of the result is the structure after
    /// layer t+1.
    pub fn forward(&self, batch: &Batch) -> Vec<LayerOutput> {
        let (mut x, mut v, mut s, mut w) = self.embed(batch);
        let (mut pos, mut lattice) = self.volume_prior_start(batch);
        let mut outputs = Vec::with_capacity(self.layers.len());
        let last = self.layers.len() - 1;
        for (t, layer) in self.layers.iter().enumerate() {
            // Ablation "w/o refinement": only the last layer moves things.
            let moves = self.config.refinement || t == last;
            // 1. Geometry from the current positions and lattice.
            let (edges, atom_lattice) = profile::stage("layer: edge geometry", || {
                self.geometry(batch, &pos, &lattice)
            });
            // 2.-4. Lattice -> atom, message passing, self update.
            (x, v) = self.atom_features(layer, batch, &x, &v, &s, &w, &edges, &atom_lattice, &pos);
            // 5. Position update.
            if moves {
                pos = profile::stage("layer: position update", || {
                    &pos + layer.position_update.forward(&x, &v)
                });
            }
            // 6. Atom -> lattice, with means over each crystal's atoms.
            let x_mean = profile::stage("layer: atom -> lattice", || {
                Self::lattice_features(layer, batch, &x, &v, &mut s, &mut w)
            });
            // 7. Lattice update (not with a fixed cell).
            if !batch.fixed_cell && moves {
                (lattice, pos) = profile::stage("layer: lattice update", || {
                    self.update_lattice(layer, batch, &x, &x_mean, &w, &edges, &lattice, &pos)
                });
            }
            // 8. Record, moved back to the input's images (FIX 2).
            outputs.push(profile::stage("layer: output", || {
                self.record(batch, &pos, &lattice)
            }));
        }
        outputs
    }

    /// The structure the first layer sees: the input, or with the volume
    /// prior (and a variable cell) the input scaled about the origin (the
    /// deformation `s I`: atoms keep their fractional coordinates).
    fn volume_prior_start(&self, batch: &Batch) -> (Tensor, Tensor) {
        let nb = batch.num_crystals() as i64;
        let pos = batch.positions.shallow_clone();
        let lattice = batch.lattice.shallow_clone();
        match (&self.volume_prior, batch.fixed_cell) {
            (Some(prior), false) => {
                let scale = prior.scale(batch, &lattice, &pos, self.config.graph_radius);
                (
                    &pos * scale.index_select(0, &batch.atom_crystal).unsqueeze(-1),
                    &lattice * scale.view([nb, 1, 1]),
                )
            }
            _ => (pos, lattice),
        }
    }

    /// Step 7: the new lattice (from the lattice nodes, with the virial
    /// strain, or without lattice nodes from the pooled atom scalars) and
    /// the positions, carried with the cell when `carry_positions`.
    #[allow(clippy::too_many_arguments)]
    fn update_lattice(
        &self,
        layer: &Layer,
        batch: &Batch,
        x: &Tensor,
        x_mean: &Tensor,
        w: &[Tensor],
        edges: &EdgeGeometry,
        lattice: &Tensor,
        pos: &Tensor,
    ) -> (Tensor, Tensor) {
        let nb = batch.num_crystals() as i64;
        let (x, x_mean) = (x.shallow_clone(), x_mean.shallow_clone());
        let mut lattice = lattice.shallow_clone();
        let mut pos = pos.shallow_clone();
        let previous = lattice.shallow_clone();
        let mut deformation = None;
        lattice = match (self.architecture.lattice, &layer.lattice_head) {
            // Ablation "w/o lattice nodes": from pooled atom scalars.
            (LatticeHead::PooledAtoms, Some(head)) => {
                &lattice + head.forward(&x_mean).reshape([nb, 3, 3])
            }
            (LatticeHead::PooledAtoms, None) => unreachable!("built with a lattice head"),
            (LatticeHead::Nodes { update, .. }, _) => {
                let deltas: Vec<Tensor> = layer
                    .lattice_update
                    .iter()
                    .zip(w)
                    .map(|(u, wc)| u.forward(wc))
                    .collect();
                match update {
                    architecture::LatticeUpdate::Add { as_columns } => {
                        lattice_update::apply(&lattice, &deltas, as_columns)
                    }
                    architecture::LatticeUpdate::Strain { .. } => {
                        let virial = layer.virial_strain.as_ref().map(|head| {
                            profile::stage("layer: lattice update: virial strain", || {
                                head.forward(
                                    &x,
                                    &edges.source,
                                    &edges.target,
                                    &edges.direction,
                                    &self.radial,
                                    &edges.distance,
                                    edges.weight.as_ref(),
                                    &batch.edge_crystal,
                                    nb,
                                )
                            })
                        });
                        let d =
                            lattice_update::strain_deformation(&lattice, &deltas, virial.as_ref());
                        let new = lattice.matmul(&d);
                        deformation = Some(d);
                        new
                    }
                }
            }
        };
        if self.config.carry_positions {
            // Atoms follow the cell: x -> x L^-1 L'.
            let d = deformation.unwrap_or_else(|| Tensor::linalg_solve(&previous, &lattice, true));
            pos = deform_positions(batch, &pos, &d);
        }
        (lattice, pos)
    }

    /// Step 8: a layer's output, positions moved back to the input's
    /// periodic images and (FIX 3) to the input's mean fractional
    /// coordinate.
    fn record(&self, batch: &Batch, pos: &Tensor, lattice: &Tensor) -> LayerOutput {
        let positions = match &batch.image_shift {
            Some(n_i) => {
                let predicted = lattice.index_select(0, &batch.atom_crystal);
                pos + n_i.unsqueeze(1).bmm(&predicted).squeeze_dim(1)
            }
            None => pos.shallow_clone(),
        };
        // FIX 3: shift each crystal by `f_in . L_t - mean(pos_t)`, which
        // makes the mean fractional coordinate the input's `f_in`.
        let positions = if self.config.remove_net_translation {
            let mean = crystal_mean(batch, &positions);
            let target = batch
                .mean_fractional
                .unsqueeze(1)
                .bmm(lattice)
                .squeeze_dim(1);
            &positions + (target - mean).index_select(0, &batch.atom_crystal)
        } else {
            positions
        };
        LayerOutput {
            positions,
            lattice: lattice.shallow_clone(),
        }
    }

    /// Step 1: the edges' geometry and each atom's lattice `[N,3,3]` for
    /// positions `pos` and lattices `lattice`.
    fn geometry(&self, batch: &Batch, pos: &Tensor, lattice: &Tensor) -> (EdgeGeometry, Tensor) {
        let r = edge_vectors(batch, pos, lattice);
        let distance = geometric_norm(&r);
        let edges = EdgeGeometry {
            direction: -(&r / distance.unsqueeze(-1)),
            source: batch.edge_source.shallow_clone(),
            target: batch.edge_target.shallow_clone(),
            weight: self
                .config
                .symmetric_graph
                .then(|| cosine_cutoff(&distance, self.config.graph_radius)),
            distance,
        };
        let atom_lattice = lattice.index_select(0, &batch.atom_crystal);
        (edges, atom_lattice)
    }

    /// Steps 2-4 of one layer: lattice -> atom (axis by axis), message
    /// passing and the self update; the atoms' new `(x, v)`.
    #[allow(clippy::too_many_arguments)]
    fn atom_features(
        &self,
        layer: &Layer,
        batch: &Batch,
        x: &Tensor,
        v: &Tensor,
        s: &[Tensor],
        w: &[Tensor],
        edges: &EdgeGeometry,
        atom_lattice: &Tensor,
        pos: &Tensor,
    ) -> (Tensor, Tensor) {
        let vector_geometry = matches!(
            self.architecture.lattice,
            LatticeHead::Nodes {
                geometry: LatticeGeometry::Vector,
                ..
            }
        );
        let (mut x, mut v) = (x.shallow_clone(), v.shallow_clone());
        profile::stage("layer: lattice -> atom", || {
            for (c, block) in layer.lattice_to_atom.iter().enumerate() {
                // The paper: the lattice vector as a point seen from the
                // atom; `Vector`: the lattice vector itself (origin-free).
                let q = if vector_geometry {
                    atom_lattice.select(1, c as i64)
                } else {
                    atom_lattice.select(1, c as i64) - pos
                };
                let d = geometric_norm(&q);
                let direction = -(&q / d.unsqueeze(-1));
                let rbf = self.radial.forward(&d);
                let s_atoms = s[c].index_select(0, &batch.atom_crystal);
                let w_atoms = w[c].index_select(0, &batch.atom_crystal);
                (x, v) = block.forward(&x, &v, &direction, &rbf, &s_atoms, &w_atoms);
            }
        });
        (x, v) = profile::stage("layer: message passing", || {
            layer.message_passing.forward(&x, &v, edges, &self.radial)
        });
        profile::stage("layer: self update", || layer.self_update.forward(&x, &v))
    }

    /// Step 6: atom -> lattice with means over each crystal's atoms; updates
    /// the lattice nodes' `s`, `w` and returns the atoms' mean scalars.
    fn lattice_features(
        layer: &Layer,
        batch: &Batch,
        x: &Tensor,
        v: &Tensor,
        s: &mut [Tensor],
        w: &mut [Tensor],
    ) -> Tensor {
        let x_mean = crystal_mean(batch, x);
        let v_mean = crystal_mean(batch, v);
        for (c, block) in layer.atom_to_lattice.iter().enumerate() {
            let (new_s, new_w) = block.forward(&s[c], &w[c], &x_mean, &v_mean);
            s[c] = new_s;
            w[c] = new_w;
        }
        x_mean
    }

    /// The embeddings: atom scalars `x [N,F]`, zero vectors `v [N,3,F]`,
    /// and the lattice nodes' scalars and vectors, one per axis.
    fn embed(&self, batch: &Batch) -> (Tensor, Tensor, Vec<Tensor>, Vec<Tensor>) {
        let f = self.config.hidden_channels;
        let n = batch.numbers.size()[0];
        let nb = batch.num_crystals() as i64;
        let options = (batch.positions.kind(), batch.positions.device());
        let mut x = self.atom_embedding.index_select(0, &batch.numbers);
        if let Some(features) = &self.element_features {
            x += features.embed(&batch.numbers);
        }
        let v = Tensor::zeros([n, 3, f], options);
        let s: Vec<Tensor> = self
            .lattice_embedding
            .iter()
            .map(|e| e.expand([nb, f], true).contiguous())
            .collect();
        let w: Vec<Tensor> = (0..s.len())
            .map(|_| Tensor::zeros([nb, 3, f], options))
            .collect();
        (x, v, s, w)
    }

    /// The energy-surface heads on the input as given (no volume prior, no
    /// moves: every layer's features at the input geometry); `None` for a
    /// model without them.
    pub fn surface(&self, batch: &Batch) -> Option<SurfacePrediction> {
        let heads = self.surface_heads.as_ref()?;
        let (mut x, mut v, mut s, mut w) = self.embed(batch);
        let (edges, atom_lattice) = self.geometry(batch, &batch.positions, &batch.lattice);
        let last = self.layers.len() - 1;
        for (t, layer) in self.layers.iter().enumerate() {
            (x, v) = self.atom_features(
                layer,
                batch,
                &x,
                &v,
                &s,
                &w,
                &edges,
                &atom_lattice,
                &batch.positions,
            );
            if t < last {
                // The lattice nodes only feed the next layer's atoms.
                let _ = Self::lattice_features(layer, batch, &x, &v, &mut s, &mut w);
            }
        }
        Some(heads.forward(
            &x,
            &v,
            &edges,
            &batch.edge_crystal,
            &self.radial,
            &batch.atom_crystal,
            &batch.atom_counts,
        ))
    }

    /// The parameters of a group (shallow handles on the variables).
    pub fn group(&self, group: ParameterGroup) -> Vec<&Tensor> {
        match group {
            ParameterGroup::PhysicalPrior => self
                .volume_prior
                .as_ref()
                .map_or_else(Vec::new, VolumePrior::parameters),
        }
    }

    /// Number of scalar parameters.
    pub fn num_parameters(vs: &nn::VarStore) -> i64 {
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// Floating-point kind of the parameters.
    pub fn kind(&self) -> Kind {
        self.atom_embedding.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structure::Structure;

    fn fcc(a: f64) -> Structure {
        let lattice = [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]];
        let sites = [
            [0.0, 0.0, 0.0],
            [0.0, 0.5, 0.5],
            [0.5, 0.0, 0.5],
            [0.5, 0.5, 0.0],
        ];
        let positions = sites
            .iter()
            .map(|f| crate::linalg::vec_mat(*f, &lattice))
            .collect();
        Structure::new(lattice, positions, vec![29; 4]).unwrap()
    }

    /// The bond mismatch of fcc Cu whose radius is half the nearest
    /// distance is ~0 (the second shell, 41 % longer, weighs ~1e-3), and a
    /// uniform scaling by f shifts it by ln f.
    #[test]
    fn bond_mismatch_reads_the_nearest_bonds_against_the_radii() {
        let config = ModelConfig {
            bond_volume_prior: true,
            ..ModelConfig::published().invariant()
        };
        let a = 3.6;
        let radius = a / 2f64.sqrt() / 2.0;
        let log_radius = Tensor::full(
            [config.num_elements],
            radius.ln(),
            (Kind::Double, tch::Device::Cpu),
        );
        let mismatch = |s: &Structure| {
            let batch = Batch::new(&[s], &config, tch::Device::Cpu, Kind::Double, false).unwrap();
            bond_mismatch(
                &batch,
                &batch.lattice,
                &batch.positions,
                &log_radius,
                config.graph_radius,
            )
            .double_value(&[0])
        };
        let at_rest = mismatch(&fcc(a));
        assert!(at_rest.abs() < 2e-3, "{at_rest}");
        let stretched = mismatch(&fcc(a * 1.05));
        assert!(
            // Not exact: the cutoff reweighs the far shells a little.
            (stretched - at_rest - 1.05f64.ln()).abs() < 1e-4,
            "{stretched} vs {at_rest}"
        );
    }

    /// The surface heads on real high-symmetry crystals: in cubic
    /// perovskite SrTiO3 (Sr at the origin, O on the face centres) every
    /// atom sits on an inversion centre, so its force is zero, and the
    /// virial of a cubic crystal is isotropic. That holds exactly for the
    /// trunk without lattice nodes; with them (one parameter set per
    /// lattice vector) the raw features are not invariant to a change of
    /// lattice basis, which relaxations repair by symmetrising and which an
    /// auxiliary head may inherit. Both rotate: a rattled copy, rotated,
    /// gives rotated forces and virial and the same energy.
    #[test]
    fn surface_heads_respect_the_crystal_symmetry_and_rotate_with_it() {
        let invariant = ModelConfig {
            hidden_channels: 16,
            num_layers: 2,
            surface_heads: true,
            ..ModelConfig::published().invariant()
        };
        let without_lattice_nodes = ModelConfig {
            lattice_nodes: false,
            lattice_update: crate::model::config::LatticeUpdateKind::Add,
            lattice_geometry: LatticeGeometry::Point,
            virial_strain: false,
            bond_strain_fit: false,
            ..invariant.clone()
        };
        let a = 3.9;
        let lattice = [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]];
        let sites = [
            [0.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, 0.5, 0.0],
            [0.5, 0.0, 0.5],
            [0.0, 0.5, 0.5],
        ];
        let positions = sites
            .iter()
            .map(|f| crate::linalg::vec_mat(*f, &lattice))
            .collect();
        let perovskite = Structure::new(lattice, positions, vec![38, 22, 8, 8, 8]).unwrap();
        let mut rattled = perovskite.clone();
        for (k, p) in rattled.positions.iter_mut().enumerate() {
            p[0] += 0.05 * (k as f64 - 2.0);
            p[1] -= 0.03 * (k as f64 % 2.0);
            p[2] += 0.02 * k as f64;
        }
        let angle: f64 = 0.7;
        let (c, s) = (angle.cos(), angle.sin());
        let rotation = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
        for config in [without_lattice_nodes, invariant] {
            tch::manual_seed(3);
            let mut vs = nn::VarStore::new(tch::Device::Cpu);
            let network = E3Relax::new(&vs.root(), &config);
            vs.double();
            let surface = |s: &Structure| {
                let batch =
                    Batch::new(&[s], &config, tch::Device::Cpu, Kind::Double, false).unwrap();
                let p = network.surface(&batch).unwrap();
                let values = |t: &Tensor| -> Vec<f64> { Vec::try_from(t.flatten(0, -1)).unwrap() };
                (
                    values(&p.energy_per_atom)[0],
                    values(&p.forces),
                    values(&p.virial_per_atom),
                )
            };
            if !config.lattice_nodes {
                let (_, forces, virial) = surface(&perovskite);
                assert!(forces.iter().all(|f| f.abs() < 1e-10), "{forces:?}");
                let scale = virial[0].abs().max(1e-3);
                for (k, value) in virial.iter().enumerate() {
                    let expected = if k % 4 == 0 { virial[0] } else { 0.0 };
                    assert!((value - expected).abs() < 1e-10 * scale, "{virial:?}");
                }
            }
            let (energy, forces, virial) = surface(&rattled);
            let (energy_r, forces_r, virial_r) = surface(&rattled.rotated(&rotation));
            assert!((energy - energy_r).abs() < 1e-10, "{energy} vs {energy_r}");
            assert!(forces.iter().any(|f| f.abs() > 1e-6), "no force to rotate");
            // Row vectors rotate as x R^T (`Structure::rotated`).
            let r = &rotation;
            for atom in 0..5 {
                let f = &forces[atom * 3..atom * 3 + 3];
                for i in 0..3 {
                    let want: f64 = (0..3).map(|j| r[i][j] * f[j]).sum();
                    assert!((forces_r[atom * 3 + i] - want).abs() < 1e-9, "force {atom}");
                }
            }
            for i in 0..3 {
                for j in 0..3 {
                    let want: f64 = (0..3)
                        .flat_map(|k| (0..3).map(move |l| (k, l)))
                        .map(|(k, l)| r[i][k] * virial[k * 3 + l] * r[j][l])
                        .sum();
                    assert!((virial_r[i * 3 + j] - want).abs() < 1e-9, "virial {i}{j}");
                }
            }
        }
    }
}
