//! The network's structural choices in typed form.
//!
//! `config.json` stays the file format: [`ModelConfig`] keeps its flat
//! fields, so every model directory written so far still loads. Some of
//! those fields only mean something together (`virial_strain` needs the
//! strain update, `bond_strain_fit` needs `virial_strain`, the lattice
//! fields need lattice nodes, `shell_tolerance` needs the symmetric graph).
//! [`Architecture::try_from`] turns them into enums that cannot express an
//! impossible combination, and refuses one with an error naming the
//! fields; the network is built from the result, so it never meets a
//! switch it would silently ignore.

use crate::error::{Error, Result};
use crate::model::config::{LatticeGeometry, LatticeUpdateKind, ModelConfig};

/// How each layer changes the cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatticeHead {
    /// Ablation "w/o lattice nodes": a Linear(F->9) on the crystal's mean
    /// atom scalars adds to the lattice (`lattice_nodes: false`).
    PooledAtoms,
    /// The three lattice vectors are nodes of the graph.
    Nodes {
        /// How a lattice node sits relative to an atom (`lattice_geometry`).
        geometry: LatticeGeometry,
        /// How the nodes' vectors become a new cell (`lattice_update`).
        update: LatticeUpdate,
    },
}

/// Step 7 with lattice nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatticeUpdate {
    /// `l_c += dl_c` (the paper); `as_columns`: added to the matrix's
    /// columns, as the authors' code does (`lattice_delta_as_columns`).
    Add { as_columns: bool },
    /// The symmetric part of `L^-1 dL` as a rotation-free strain, with the
    /// virial strain head when `virial` is set (`virial_strain`).
    Strain { virial: Option<VirialStrain> },
}

/// The virial strain head of the strain update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirialStrain {
    /// A learned virial of the bond vectors (`virial_strain`).
    Virial,
    /// Plus a least-squares strain from the bonds' lengths
    /// (`bond_strain_fit`).
    WithBondFit,
}

/// How the neighbour graph is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GraphKind {
    /// The nearest `max_neighbors` within the radius (the paper).
    Nearest,
    /// Defined by geometry alone, ties within `shell_tolerance` Å kept
    /// (`symmetric_graph`).
    Symmetric { shell_tolerance: f64 },
}

/// The composition-aware start of the cell before the first layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumePrior {
    /// None (`volume_prior: false`).
    Off,
    /// Towards the sum of learned per-element volumes (`volume_prior`).
    Composition,
    /// Its weight also read from the bonds (`bond_volume_prior`).
    Bonds,
}

/// The structural choices of a [`ModelConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Architecture {
    pub lattice: LatticeHead,
    pub graph: GraphKind,
    pub volume_prior: VolumePrior,
}

impl Architecture {
    /// The virial strain head, if the lattice update has one.
    pub fn virial_strain(&self) -> Option<VirialStrain> {
        match self.lattice {
            LatticeHead::Nodes {
                update: LatticeUpdate::Strain { virial },
                ..
            } => virial,
            _ => None,
        }
    }

    /// Whether the lattice vectors are graph nodes.
    pub fn has_lattice_nodes(&self) -> bool {
        matches!(self.lattice, LatticeHead::Nodes { .. })
    }
}

impl TryFrom<&ModelConfig> for Architecture {
    type Error = Error;

    fn try_from(c: &ModelConfig) -> Result<Architecture> {
        let refuse = |m: &str| Err(Error::Model(format!("config: {m}")));
        let virial = match (c.virial_strain, c.bond_strain_fit) {
            (false, true) => return refuse("bond_strain_fit needs virial_strain"),
            (false, false) => None,
            (true, false) => Some(VirialStrain::Virial),
            (true, true) => Some(VirialStrain::WithBondFit),
        };
        let lattice = if c.lattice_nodes {
            let update =
                match c.lattice_update {
                    LatticeUpdateKind::Add if virial.is_some() => {
                        return refuse("virial_strain needs lattice_update \"strain\"")
                    }
                    LatticeUpdateKind::Add => LatticeUpdate::Add {
                        as_columns: c.lattice_delta_as_columns,
                    },
                    LatticeUpdateKind::Strain if c.lattice_delta_as_columns => return refuse(
                        "lattice_update \"strain\" and lattice_delta_as_columns cannot be combined",
                    ),
                    LatticeUpdateKind::Strain => LatticeUpdate::Strain { virial },
                };
            LatticeHead::Nodes {
                geometry: c.lattice_geometry,
                update,
            }
        } else {
            // Without lattice nodes these fields have nothing to act on.
            let set: Vec<&str> = [
                (
                    c.lattice_geometry != LatticeGeometry::Point,
                    "lattice_geometry",
                ),
                (c.lattice_update != LatticeUpdateKind::Add, "lattice_update"),
                (c.lattice_delta_as_columns, "lattice_delta_as_columns"),
                (c.virial_strain, "virial_strain"),
            ]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
            if !set.is_empty() {
                return refuse(&format!(
                    "lattice_nodes false leaves nothing for {} to act on",
                    set.join(", ")
                ));
            }
            LatticeHead::PooledAtoms
        };
        let graph = if c.symmetric_graph {
            GraphKind::Symmetric {
                shell_tolerance: c.shell_tolerance,
            }
        } else if c.shell_tolerance != super::config::default_shell_tolerance() {
            return refuse("shell_tolerance needs symmetric_graph");
        } else {
            GraphKind::Nearest
        };
        let volume_prior = match (c.volume_prior, c.bond_volume_prior) {
            (false, true) => return refuse("bond_volume_prior needs volume_prior"),
            (false, false) => VolumePrior::Off,
            (true, false) => VolumePrior::Composition,
            (true, true) => VolumePrior::Bonds,
        };
        Ok(Architecture {
            lattice,
            graph,
            volume_prior,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(c: &ModelConfig) -> String {
        Architecture::try_from(c).unwrap_err().to_string()
    }

    /// The shipped kinds of config give the choices they ask for.
    #[test]
    fn published_and_invariant_configs_are_typed() {
        let published = Architecture::try_from(&ModelConfig::published()).unwrap();
        assert_eq!(
            published.lattice,
            LatticeHead::Nodes {
                geometry: LatticeGeometry::Point,
                update: LatticeUpdate::Add { as_columns: false }
            }
        );
        assert_eq!(published.graph, GraphKind::Nearest);
        assert_eq!(published.volume_prior, VolumePrior::Off);
        let invariant = ModelConfig {
            bond_strain_fit: true,
            ..ModelConfig::published().invariant()
        };
        let typed = Architecture::try_from(&invariant).unwrap();
        assert_eq!(typed.virial_strain(), Some(VirialStrain::WithBondFit));
        assert_eq!(
            typed.graph,
            GraphKind::Symmetric {
                shell_tolerance: 1e-3
            }
        );
        assert_eq!(typed.volume_prior, VolumePrior::Composition);
        let pooled = ModelConfig {
            lattice_nodes: false,
            ..ModelConfig::published()
        };
        let typed = Architecture::try_from(&pooled).unwrap();
        assert_eq!(typed.lattice, LatticeHead::PooledAtoms);
        assert!(!typed.has_lattice_nodes());
    }

    /// Every impossible combination of today's fields is a one-line error
    /// naming them.
    #[test]
    fn impossible_combinations_name_their_fields() {
        let p = ModelConfig::published;
        let cases: Vec<(ModelConfig, &[&str])> = vec![
            (
                ModelConfig {
                    virial_strain: true,
                    ..p()
                },
                &["virial_strain", "lattice_update"],
            ),
            (
                ModelConfig {
                    bond_strain_fit: true,
                    ..p().invariant()
                }
                .with_virial(false),
                &["bond_strain_fit", "virial_strain"],
            ),
            (
                ModelConfig {
                    lattice_delta_as_columns: true,
                    ..p().invariant()
                },
                &["lattice_update", "lattice_delta_as_columns"],
            ),
            (
                ModelConfig {
                    bond_volume_prior: true,
                    ..p()
                },
                &["bond_volume_prior", "volume_prior"],
            ),
            (
                ModelConfig {
                    lattice_nodes: false,
                    ..p().invariant()
                },
                &[
                    "lattice_nodes",
                    "lattice_geometry",
                    "lattice_update",
                    "virial_strain",
                ],
            ),
            (
                ModelConfig {
                    shell_tolerance: 0.01,
                    ..p()
                },
                &["shell_tolerance", "symmetric_graph"],
            ),
        ];
        for (config, names) in cases {
            let message = error(&config);
            assert!(!message.contains('\n'), "{message}");
            for name in names {
                assert!(message.contains(name), "{name} not in: {message}");
            }
            // The file-level check refuses it the same way.
            assert_eq!(config.validate().unwrap_err().to_string(), message);
        }
    }

    impl ModelConfig {
        fn with_virial(mut self, on: bool) -> Self {
            self.virial_strain = on;
            self
        }
    }
}
