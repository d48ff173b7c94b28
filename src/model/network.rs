//! The E3Relax network: embeddings and T layers of steps 1-8 of
//! model-spec.md, returning positions and lattices after every layer.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::atom_to_lattice::AtomToLattice;
use super::batch::Batch;
use super::config::ModelConfig;
use super::lattice_to_atom::LatticeToAtom;
use super::lattice_update::{self, LatticeUpdate};
use super::message_passing::{EdgeGeometry, MessagePassing};
use super::nn::geometric_norm;
use super::position_update::PositionUpdate;
use super::radial::RadialBasis;
use super::self_update::SelfUpdate;

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
}

impl Layer {
    fn new(path: nn::Path, config: &ModelConfig) -> Self {
        let f = config.hidden_channels;
        let k = config.num_rbf;
        // Without lattice nodes there are no per-axis blocks.
        let axes: &[&str] = if config.lattice_nodes { &AXES } else { &[] };
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
            lattice_head: (!config.lattice_nodes)
                .then(|| super::nn::linear(&path / "lattice_head", f, 9, true)),
        }
    }
}

/// Mean over each crystal's atoms of a per-atom tensor: `[N, ...]` ->
/// `[B, ...]`.
fn crystal_mean(batch: &Batch, per_atom: &Tensor) -> Tensor {
    let mut shape = per_atom.size();
    shape[0] = batch.num_crystals() as i64;
    let mut count_shape = vec![1; shape.len()];
    count_shape[0] = shape[0];
    Tensor::zeros(shape.as_slice(), (per_atom.kind(), per_atom.device())).index_add(
        0,
        &batch.atom_crystal,
        per_atom,
    ) / batch.atom_counts.reshape(count_shape.as_slice())
}

/// Positions `[N,3]` and lattices `[B,3,3]` after one layer, in the input's
/// periodic images.
#[derive(Debug)]
pub struct LayerOutput {
    pub positions: Tensor,
    pub lattice: Tensor,
}

/// The network. Parameters live in the `VarStore` of the path it was built
/// with; see `model/README` in the docs for the name table.
#[derive(Debug)]
pub struct E3Relax {
    config: ModelConfig,
    radial: RadialBasis,
    atom_embedding: Tensor,
    lattice_embedding: Vec<Tensor>,
    layers: Vec<Layer>,
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
        let atom_embedding =
            (root / "atom_embedding").var("weight", &[config.num_elements, f], init);
        let axes: &[&str] = if config.lattice_nodes { &AXES } else { &[] };
        let lattice_embedding = axes
            .iter()
            .map(|c| (root / "lattice_embedding" / *c).var("weight", &[1, f], init))
            .collect();
        let layers = (0..config.num_layers)
            .map(|t| Layer::new(root / "layers" / t, config))
            .collect();
        E3Relax {
            config: config.clone(),
            radial: RadialBasis {
                num_rbf: config.num_rbf,
                cutoff: config.rbf_cutoff,
                exponent: config.envelope_exponent,
            },
            atom_embedding,
            lattice_embedding,
            layers,
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Runs all layers; element t of the result is the structure after
    /// layer t+1.
    pub fn forward(&self, batch: &Batch) -> Vec<LayerOutput> {
        let f = self.config.hidden_channels;
        let n = batch.numbers.size()[0];
        let nb = batch.num_crystals() as i64;
        let options = (batch.positions.kind(), batch.positions.device());
        let mut x = self.atom_embedding.index_select(0, &batch.numbers);
        let mut v = Tensor::zeros([n, 3, f], options);
        let mut s: Vec<Tensor> = self
            .lattice_embedding
            .iter()
            .map(|e| e.expand([nb, f], true).contiguous())
            .collect();
        let mut w: Vec<Tensor> = (0..s.len())
            .map(|_| Tensor::zeros([nb, 3, f], options))
            .collect();
        let mut pos = batch.positions.shallow_clone();
        let mut lattice = batch.lattice.shallow_clone();
        let mut outputs = Vec::with_capacity(self.layers.len());
        let last = self.layers.len() - 1;
        for (t, layer) in self.layers.iter().enumerate() {
            // Ablation "w/o refinement": only the last layer moves things.
            let moves = self.config.refinement || t == last;
            // 1. Geometry from the current positions and lattice.
            let edge_lattice = lattice.index_select(0, &batch.edge_crystal);
            let shift = batch
                .edge_offset
                .unsqueeze(1)
                .bmm(&edge_lattice)
                .squeeze_dim(1);
            let r = pos.index_select(0, &batch.edge_source) + shift
                - pos.index_select(0, &batch.edge_target);
            let distance = geometric_norm(&r);
            let edges = EdgeGeometry {
                direction: -(&r / distance.unsqueeze(-1)),
                distance,
                source: batch.edge_source.shallow_clone(),
                target: batch.edge_target.shallow_clone(),
            };
            let atom_lattice = lattice.index_select(0, &batch.atom_crystal);

            // 2. Lattice -> atom, axis by axis.
            for (c, block) in layer.lattice_to_atom.iter().enumerate() {
                let q = atom_lattice.select(1, c as i64) - &pos;
                let d = geometric_norm(&q);
                let direction = -(&q / d.unsqueeze(-1));
                let rbf = self.radial.forward(&d);
                let s_atoms = s[c].index_select(0, &batch.atom_crystal);
                let w_atoms = w[c].index_select(0, &batch.atom_crystal);
                (x, v) = block.forward(&x, &v, &direction, &rbf, &s_atoms, &w_atoms);
            }
            // 3. Message passing; 4. self update.
            (x, v) = layer.message_passing.forward(&x, &v, &edges, &self.radial);
            (x, v) = layer.self_update.forward(&x, &v);
            // 5. Position update.
            if moves {
                pos = &pos + layer.position_update.forward(&x, &v);
            }
            // 6. Atom -> lattice, with means over each crystal's atoms.
            let x_mean = crystal_mean(batch, &x);
            let v_mean = crystal_mean(batch, &v);
            for (c, block) in layer.atom_to_lattice.iter().enumerate() {
                let (new_s, new_w) = block.forward(&s[c], &w[c], &x_mean, &v_mean);
                s[c] = new_s;
                w[c] = new_w;
            }
            // 7. Lattice update (not with a fixed cell).
            if !batch.fixed_cell && moves {
                lattice = match &layer.lattice_head {
                    // Ablation "w/o lattice nodes": from pooled atom scalars.
                    Some(head) => &lattice + head.forward(&x_mean).reshape([nb, 3, 3]),
                    None => {
                        let deltas: Vec<Tensor> = layer
                            .lattice_update
                            .iter()
                            .zip(&w)
                            .map(|(u, wc)| u.forward(wc))
                            .collect();
                        lattice_update::apply(
                            &lattice,
                            &deltas,
                            self.config.lattice_delta_as_columns,
                        )
                    }
                };
            }
            // 8. Record, moved back to the input's images (FIX 2).
            let positions = match &batch.image_shift {
                Some(n_i) => {
                    let predicted = lattice.index_select(0, &batch.atom_crystal);
                    &pos + n_i.unsqueeze(1).bmm(&predicted).squeeze_dim(1)
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
                    .bmm(&lattice)
                    .squeeze_dim(1);
                &positions + (target - mean).index_select(0, &batch.atom_crystal)
            } else {
                positions
            };
            outputs.push(LayerOutput {
                positions,
                lattice: lattice.shallow_clone(),
            });
        }
        outputs
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
