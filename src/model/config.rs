//! The model configuration (`config.json` of a model directory), with the
//! fields docs/model.md describes.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Version of the model-directory format this library writes and reads.
pub const FORMAT_VERSION: u32 = 1;

fn default_format_version() -> u32 {
    FORMAT_VERSION
}
fn default_true() -> bool {
    true
}

/// Every hyper-parameter of the network and its graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Model-directory format version (currently 1).
    #[serde(default = "default_format_version")]
    pub format_version: u32,
    /// F, the width of scalar and vector features (even: Q uses F/2).
    pub hidden_channels: i64,
    /// T, the number of layers.
    pub num_layers: usize,
    /// K, the number of radial basis functions (at least 2).
    pub num_rbf: i64,
    /// Length scale of the radial basis, Å (published: 30).
    pub rbf_cutoff: f64,
    /// Envelope exponent p (published: 5).
    pub envelope_exponent: i32,
    /// Rows of the atom embedding table; row index = atomic number, so
    /// atomic numbers 1..num_elements-1 are accepted (published: 118).
    pub num_elements: i64,
    /// Neighbour search radius, Å (published: 6).
    pub graph_radius: f64,
    /// Nearest neighbours kept per atom (published: 50).
    pub max_neighbors: usize,
    /// FIX 1 off: add the lattice update to columns, as the authors' code
    /// does (breaks rotation equivariance; for converted checkpoints).
    #[serde(default)]
    pub lattice_delta_as_columns: bool,
    /// FIX 2: wrap atoms into the cell before the network and move them back
    /// by the same integer shift in the predicted lattice after it.
    #[serde(default = "default_true")]
    pub wrap_positions: bool,
    /// FIX 3: remove the predicted net translation. Relaxation conserves each
    /// crystal's mean fractional coordinate (forces sum to zero; in the
    /// training data it holds to 1e-7 Å), but the network, which sees the
    /// lattice vectors as points, can move a whole crystal; every layer's
    /// output is shifted rigidly so its mean fractional coordinate (in the
    /// predicted lattice) is the input's. Output only: the next layer
    /// receives the unshifted positions, as in the authors' network.
    #[serde(default = "default_true")]
    pub remove_net_translation: bool,
    /// Loss weight of each layer's output: a training setting, now the
    /// training config's `layer_loss_weights`. Read from older model
    /// directories (and used when the training config gives none); not
    /// written when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layer_loss_weights: Vec<f64>,
    /// Ablation "w/o refinement" when false: only the last layer moves
    /// atoms and lattice, and only it is supervised.
    #[serde(default = "default_true")]
    pub refinement: bool,
    /// Ablation "w/o lattice nodes" when false: no lattice nodes (steps 2
    /// and 6 are skipped); each layer predicts the lattice change from the
    /// mean atom scalars with `lattice_head` = Linear(F->9).
    #[serde(default = "default_true")]
    pub lattice_nodes: bool,
    /// How step 2 places a lattice node relative to an atom. `Point` (the
    /// paper): the lattice vector as a point, `l_c - pos_i`, which depends on
    /// where the atom sits in the cell and on the origin. `Vector`: the
    /// lattice vector itself, the same for every atom of the crystal, so the
    /// output is invariant to the origin and to the periodic image an atom
    /// is written in, and continuous (no wrapping needed).
    #[serde(default)]
    pub lattice_geometry: LatticeGeometry,
    /// Atoms follow the cell: when a layer changes the lattice from `L` to
    /// `L'`, positions are carried along in fractional coordinates
    /// (`x -> x L^-1 L'`), so the network predicts only the displacement
    /// that remains.
    #[serde(default)]
    pub carry_positions: bool,
    /// How step 7 turns the lattice nodes' vectors `dl_c` into a new
    /// lattice. `Add` (the paper): `l_c += dl_c`. `Strain`: the symmetric
    /// part `e` of `L^-1 dL` is applied as `L' = L (I + e)`: a rotation-free
    /// deformation, as a cell relaxation is (stresses are symmetric).
    #[serde(default)]
    pub lattice_update: LatticeUpdateKind,
    /// The graph is defined by geometry alone, so that a crystal's symmetry
    /// maps it onto itself: neighbours tied in distance with the last one
    /// kept (within `shell_tolerance`) are all kept, an atom's own images are
    /// ordinary neighbours (both `k` and `-k`) instead of the paper's six
    /// fixed offsets, and messages fade smoothly to zero at the graph radius
    /// (a cosine cutoff), so an atom crossing it changes nothing abruptly.
    #[serde(default)]
    pub symmetric_graph: bool,
    /// Distance (Å) within which neighbours count as tied with the last one
    /// kept (only with `symmetric_graph`).
    #[serde(default = "default_shell_tolerance")]
    pub shell_tolerance: f64,
    /// A composition-aware start: before the first layer the cell is scaled
    /// isotropically (atoms carried in fractional coordinates) to
    /// `V_in^(1-g) V_ref^g`, with `V_ref` the sum of learned per-element
    /// volumes (`volume_prior.log_volume`, initialised by a least-squares
    /// fit on the training pairs) and the learned weight `g` (initially 0.5).
    #[serde(default)]
    pub volume_prior: bool,
    /// With `volume_prior`, the reference volume comes from the input's
    /// own bonds instead of its composition: `V_ref = V_in exp(-3 m)`, `m`
    /// the crystal's mean over atoms of a soft minimum over its bonds of
    /// `ln(d / (r_i + r_j))`, with learned per-element radii
    /// (`volume_prior.log_radius`, initially covalent radii). An input
    /// whose nearest bonds already have their typical lengths is left
    /// alone; the composition prior scales every input towards one volume
    /// per composition, relaxed or not.
    #[serde(default)]
    pub bond_volume_prior: bool,
    /// With `lattice_update: "strain"`, add the virial strain head's
    /// deformation (a learned scalar per bond times the outer product of the
    /// bond direction, averaged over the crystal's bonds) to the lattice
    /// nodes' strain in every layer.
    #[serde(default)]
    pub virial_strain: bool,
    /// With `virial_strain`, read its per-bond scalars as the relative
    /// length change each bond asks for and fit the strain to them (ridge
    /// least squares over the crystal's bonds) instead of averaging
    /// `s u u^T`.
    #[serde(default)]
    pub bond_strain_fit: bool,
    /// Energy-surface heads (`surface_heads.rs`): the input's energy per
    /// atom, forces and virial per atom read from the trunk's features at
    /// the input geometry. Trained on the labeller's single-point labels
    /// (`TrainConfig::single_points`) as an auxiliary task that teaches the
    /// shared layers the energy surface; a relaxation does not run them.
    #[serde(default)]
    pub surface_heads: bool,
    /// The atom embedding is a learned row per element (initially zero)
    /// plus a learned linear map of the element's physical descriptors
    /// (`element_features.rs`): rare elements start from, and stay near,
    /// what their neighbours in the periodic table taught.
    #[serde(default)]
    pub element_features: bool,
}

pub(crate) fn default_shell_tolerance() -> f64 {
    1e-3
}

/// See [`ModelConfig::lattice_geometry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatticeGeometry {
    #[default]
    Point,
    Vector,
}

/// See [`ModelConfig::lattice_update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatticeUpdateKind {
    #[default]
    Add,
    Strain,
}

/// Upper bounds of the config values that size the network. They are far
/// above any trained model (the paper's largest is F = 512, T = 4, K = 128)
/// and keep a corrupted or hostile config from allocating without bound
/// before the weights file is even compared with it.
pub const MAX_HIDDEN_CHANNELS: i64 = 4096;
/// See [`MAX_HIDDEN_CHANNELS`].
pub const MAX_LAYERS: usize = 64;
/// See [`MAX_HIDDEN_CHANNELS`].
pub const MAX_RBF: i64 = 1024;
/// See [`MAX_HIDDEN_CHANNELS`] (Å).
pub const MAX_GRAPH_RADIUS: f64 = 30.0;
/// See [`MAX_HIDDEN_CHANNELS`].
pub const MAX_NEIGHBORS: usize = 1000;

impl ModelConfig {
    /// The published size (F = 512, T = 4, K = 128, 118 elements, 6 Å, 50).
    pub fn published() -> Self {
        ModelConfig {
            format_version: FORMAT_VERSION,
            hidden_channels: 512,
            num_layers: 4,
            num_rbf: 128,
            rbf_cutoff: 30.0,
            envelope_exponent: 5,
            num_elements: 118,
            graph_radius: 6.0,
            max_neighbors: 50,
            lattice_delta_as_columns: false,
            wrap_positions: true,
            remove_net_translation: true,
            layer_loss_weights: Vec::new(),
            refinement: true,
            lattice_nodes: true,
            lattice_geometry: LatticeGeometry::Point,
            carry_positions: false,
            lattice_update: LatticeUpdateKind::Add,
            symmetric_graph: false,
            shell_tolerance: default_shell_tolerance(),
            volume_prior: false,
            bond_volume_prior: false,
            virial_strain: false,
            bond_strain_fit: false,
            surface_heads: false,
            element_features: false,
        }
    }

    /// The invariant variant of a config: lattice -> atom from the lattice
    /// vectors, atoms carried with the cell, rotation-free strain updates,
    /// the symmetric graph, no wrapping (not needed) and the volume prior.
    pub fn invariant(mut self) -> Self {
        self.lattice_geometry = LatticeGeometry::Vector;
        self.carry_positions = true;
        self.lattice_update = LatticeUpdateKind::Strain;
        self.symmetric_graph = true;
        self.wrap_positions = false;
        self.volume_prior = true;
        self.virial_strain = true;
        self
    }

    /// The structural choices of this config in typed form. Panics on a
    /// config that [`ModelConfig::validate`] refuses (every `Model` holds a
    /// validated one).
    pub fn architecture(&self) -> super::Architecture {
        super::Architecture::try_from(self).expect("a validated model config")
    }

    /// The graph settings this config asks for.
    pub fn graph_settings(&self) -> crate::graph::GraphSettings {
        crate::graph::GraphSettings {
            radius: self.graph_radius,
            max_neighbors: self.max_neighbors,
            shell_tolerance: self.symmetric_graph.then_some(self.shell_tolerance),
        }
    }

    /// A published-shaped config of another width and depth.
    pub fn with_size(hidden_channels: i64, num_layers: usize, num_rbf: i64) -> Self {
        ModelConfig {
            hidden_channels,
            num_layers,
            num_rbf,
            ..ModelConfig::published()
        }
    }

    /// Per-layer loss weights: the training config's `training` weights,
    /// else this config's (older model directories), else all 1; without
    /// refinement only the last layer is supervised.
    pub fn loss_weights(&self, training: &[f64]) -> Vec<f64> {
        let given = if training.is_empty() {
            &self.layer_loss_weights
        } else {
            training
        };
        if !self.refinement {
            let mut w = vec![0.0; self.num_layers];
            w[self.num_layers - 1] = given.last().copied().unwrap_or(1.0);
            return w;
        }
        if given.is_empty() {
            vec![1.0; self.num_layers]
        } else {
            given.to_vec()
        }
    }

    /// Largest atomic number the embedding table accepts.
    pub fn max_atomic_number(&self) -> u32 {
        (self.num_elements - 1).max(0) as u32
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Model(format!("config: {m}")));
        if self.format_version != FORMAT_VERSION {
            return bad(format!(
                "format_version {} is not supported (this library reads version {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if !(2..=MAX_HIDDEN_CHANNELS).contains(&self.hidden_channels)
            || self.hidden_channels % 2 != 0
        {
            return bad(format!(
                "hidden_channels must be an even number in 2..={MAX_HIDDEN_CHANNELS}, got {}",
                self.hidden_channels
            ));
        }
        if !(1..=MAX_LAYERS).contains(&self.num_layers) {
            return bad(format!(
                "num_layers must be in 1..={MAX_LAYERS}, got {}",
                self.num_layers
            ));
        }
        if !(2..=MAX_RBF).contains(&self.num_rbf) {
            return bad(format!(
                "num_rbf must be in 2..={MAX_RBF}, got {}",
                self.num_rbf
            ));
        }
        if !(self.rbf_cutoff > 0.0 && self.rbf_cutoff <= 1000.0) {
            return bad(format!(
                "rbf_cutoff must be in (0, 1000] Å, got {}",
                self.rbf_cutoff
            ));
        }
        if !(1..=64).contains(&self.envelope_exponent) {
            return bad(format!(
                "envelope_exponent must be in 1..=64, got {}",
                self.envelope_exponent
            ));
        }
        if !(2..=1000).contains(&self.num_elements) {
            return bad(format!(
                "num_elements must be in 2..=1000, got {}",
                self.num_elements
            ));
        }
        if !(self.graph_radius > 0.0 && self.graph_radius <= MAX_GRAPH_RADIUS) {
            return bad(format!(
                "graph_radius must be in (0, {MAX_GRAPH_RADIUS}] Å, got {}",
                self.graph_radius
            ));
        }
        if !(1..=MAX_NEIGHBORS).contains(&self.max_neighbors) {
            return bad(format!(
                "max_neighbors must be in 1..={MAX_NEIGHBORS}, got {}",
                self.max_neighbors
            ));
        }
        if !(self.shell_tolerance >= 0.0 && self.shell_tolerance < 0.5) {
            return bad(format!(
                "shell_tolerance must be in [0, 0.5) Å, got {}",
                self.shell_tolerance
            ));
        }
        // The fields that only mean something together.
        super::Architecture::try_from(self)?;
        if !self.layer_loss_weights.is_empty() && self.layer_loss_weights.len() != self.num_layers {
            return bad(format!(
                "layer_loss_weights has {} entries for {} layers",
                self.layer_loss_weights.len(),
                self.num_layers
            ));
        }
        if self
            .layer_loss_weights
            .iter()
            .any(|w| !(w.is_finite() && *w >= 0.0))
        {
            return bad("layer_loss_weights must be finite and non-negative".into());
        }
        Ok(())
    }

    /// Parses and validates a config JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: ModelConfig = serde_json::from_str(text).map_err(|e| {
            // serde names the position, not the field: show the line too.
            let line = text
                .lines()
                .nth(e.line().saturating_sub(1))
                .map(|l| format!(" (`{}`)", l.trim()))
                .unwrap_or_default();
            Error::Model(format!("config: {e}{line}"))
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_round_trips_and_validates() {
        let c = ModelConfig::published();
        c.validate().unwrap();
        assert_eq!(ModelConfig::from_json(&c.to_json()).unwrap(), c);
        assert_eq!(c.loss_weights(&[]), vec![1.0; 4]);
        assert_eq!(c.max_atomic_number(), 117);
    }

    /// Layer loss weights belong to the training config; an older model
    /// directory's own weights still load and count when the training
    /// config gives none, and are no longer written when empty.
    #[test]
    fn layer_loss_weights_come_from_training_then_from_old_directories() {
        let c = ModelConfig::published();
        assert!(!c.to_json().contains("layer_loss_weights"));
        let training = [0.1, 0.2, 0.3, 1.0];
        assert_eq!(c.loss_weights(&training), training.to_vec());
        let old = c
            .to_json()
            .replacen('{', "{\"layer_loss_weights\": [0, 0, 0.5, 1],", 1);
        let old = ModelConfig::from_json(&old).unwrap();
        assert_eq!(old.loss_weights(&[]), vec![0.0, 0.0, 0.5, 1.0]);
        assert_eq!(old.loss_weights(&training), training.to_vec());
        let single = ModelConfig {
            refinement: false,
            ..c
        };
        assert_eq!(single.loss_weights(&training), vec![0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn minimal_json_gets_defaults_and_bad_fields_are_named() {
        let text = r#"{"hidden_channels": 8, "num_layers": 2, "num_rbf": 4, "rbf_cutoff": 30.0,
            "envelope_exponent": 5, "num_elements": 118, "graph_radius": 6.0, "max_neighbors": 50}"#;
        let c = ModelConfig::from_json(text).unwrap();
        assert!(c.wrap_positions && !c.lattice_delta_as_columns);
        let typo = text.replace("num_rbf", "num_rbfs");
        let e = ModelConfig::from_json(&typo).unwrap_err().to_string();
        assert!(e.contains("unknown field `num_rbfs`"), "{e}");
        let odd = text.replace("\"hidden_channels\": 8", "\"hidden_channels\": 7");
        assert!(ModelConfig::from_json(&odd)
            .unwrap_err()
            .to_string()
            .contains("hidden_channels"));
        let weights = text.replace("}", ", \"layer_loss_weights\": [1.0]}");
        assert!(ModelConfig::from_json(&weights)
            .unwrap_err()
            .to_string()
            .contains("1 entries for 2 layers"));
    }
}
