//! A batch of crystals of mixed sizes as the network sees it: atoms
//! concatenated with a per-atom crystal index, edges of the model graph with
//! their integer offsets, and (FIX 2) the integer shift that wrapped each
//! atom into its cell.

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::graph;
use crate::linalg;
use crate::model::config::ModelConfig;
use crate::structure::{Structure, ValidationOptions};

/// Tensors of one batch (all on one device).
#[derive(Debug)]
pub struct Batch {
    /// Atomic numbers `[N]` (int64).
    pub numbers: Tensor,
    /// Positions fed to the network `[N,3]` (wrapped into the cell with
    /// FIX 2).
    pub positions: Tensor,
    /// Lattices `[B,3,3]`, rows = lattice vectors.
    pub lattice: Tensor,
    /// Crystal of each atom `[N]` (int64).
    pub atom_crystal: Tensor,
    /// Atoms per crystal `[B]` (float, for means).
    pub atom_counts: Tensor,
    /// Source `j` `[E]`, target `i` `[E]` (int64, batch-global indices).
    pub edge_source: Tensor,
    pub edge_target: Tensor,
    /// Integer lattice offsets `k` `[E,3]` (float).
    pub edge_offset: Tensor,
    /// Crystal of each edge `[E]` (int64).
    pub edge_crystal: Tensor,
    /// FIX 2: integer shifts `n_i` `[N,3]` (float) with
    /// `input_pos = positions + n . L`; outputs get `+ n . L_pred`.
    pub image_shift: Option<Tensor>,
    /// Mean fractional coordinate of each input crystal's atoms `[B,3]`
    /// (float), for `remove_net_translation`.
    pub mean_fractional: Tensor,
    /// Atoms of each crystal, in order.
    pub natoms: Vec<usize>,
    /// Keep the lattice fixed (only atoms move).
    pub fixed_cell: bool,
}

/// The part of a batch built in f64 on the CPU for one crystal.
struct Prepared {
    mean_fractional: [f64; 3],
    positions: Vec<[f64; 3]>,
    shifts: Vec<[f64; 3]>,
    edges: Vec<graph::Edge>,
}

fn prepare(s: &Structure, config: &ModelConfig) -> Prepared {
    let fractional = s.fractional_positions();
    let mut mean_fractional = [0.0; 3];
    for f in &fractional {
        for a in 0..3 {
            mean_fractional[a] += f[a] / s.natoms() as f64;
        }
    }
    let (positions, shifts) = if config.wrap_positions {
        let shifts: Vec<[f64; 3]> = fractional.iter().map(|f| f.map(f64::floor)).collect();
        let positions = s
            .positions
            .iter()
            .zip(&shifts)
            .map(|(&p, &n)| linalg::sub(p, linalg::vec_mat(n, &s.lattice)))
            .collect();
        (positions, shifts)
    } else {
        (s.positions.clone(), vec![[0.0; 3]; s.natoms()])
    };
    let edges = graph::build_graph(&s.lattice, &positions, &config.graph_settings());
    Prepared {
        mean_fractional,
        positions,
        shifts,
        edges,
    }
}

/// Everything a structure must satisfy for a model with this config: the
/// general validation (finite, invertible, no overlaps, ...), atomic numbers
/// within the element table, a cell the neighbour search can handle.
pub fn check_structure(s: &Structure, config: &ModelConfig) -> Result<()> {
    let validation = ValidationOptions {
        max_atomic_number: config.max_atomic_number(),
        ..ValidationOptions::default()
    };
    s.validate_with(&validation)?;
    graph::check_search_size(&s.lattice, config.graph_radius).map_err(Error::InvalidStructure)
}

impl Batch {
    /// Validates the structures (atomic numbers against the model's table)
    /// and builds the batch on `device` in floating-point `kind`.
    pub fn new(
        structures: &[&Structure],
        config: &ModelConfig,
        device: Device,
        kind: Kind,
        fixed_cell: bool,
    ) -> Result<Batch> {
        if structures.is_empty() {
            return Err(Error::InvalidArgument(
                "an empty batch of structures".into(),
            ));
        }
        for (k, s) in structures.iter().enumerate() {
            check_structure(s, config).map_err(|e| match e {
                Error::InvalidStructure(m) if structures.len() > 1 => {
                    Error::InvalidStructure(format!("{}: {m}", s.label(k)))
                }
                other => other,
            })?;
        }
        let prepared: Vec<Prepared> = structures.par_iter().map(|s| prepare(s, config)).collect();

        let natoms: Vec<usize> = structures.iter().map(|s| s.natoms()).collect();
        let total_edges: usize = prepared.iter().map(|p| p.edges.len()).sum();
        let mut numbers = Vec::new();
        let mut positions = Vec::new();
        let mut shifts = Vec::new();
        let mut lattice = Vec::new();
        let mut atom_crystal = Vec::new();
        let mut source = Vec::with_capacity(total_edges);
        let mut target = Vec::with_capacity(total_edges);
        let mut offset = Vec::with_capacity(3 * total_edges);
        let mut edge_crystal = Vec::with_capacity(total_edges);
        let mut first_atom = 0i64;
        for (b, (s, p)) in structures.iter().zip(&prepared).enumerate() {
            numbers.extend(s.numbers.iter().map(|&z| i64::from(z)));
            positions.extend(p.positions.iter().flatten());
            shifts.extend(p.shifts.iter().flatten());
            lattice.extend(s.lattice.iter().flatten());
            atom_crystal.extend(std::iter::repeat_n(b as i64, s.natoms()));
            for e in &p.edges {
                source.push(first_atom + e.source as i64);
                target.push(first_atom + e.target as i64);
                offset.extend(e.offset.map(f64::from));
                edge_crystal.push(b as i64);
            }
            first_atom += s.natoms() as i64;
        }
        let float = |data: &[f64], shape: &[i64]| {
            Tensor::from_slice(data)
                .reshape(shape)
                .to_kind(kind)
                .to_device(device)
        };
        let long = |data: &[i64]| Tensor::from_slice(data).to_device(device);
        let n = first_atom;
        let nb = structures.len() as i64;
        let counts: Vec<f64> = natoms.iter().map(|&c| c as f64).collect();
        let mean_fractional: Vec<f64> = prepared.iter().flat_map(|p| p.mean_fractional).collect();
        Ok(Batch {
            numbers: long(&numbers),
            positions: float(&positions, &[n, 3]),
            lattice: float(&lattice, &[nb, 3, 3]),
            atom_crystal: long(&atom_crystal),
            atom_counts: float(&counts, &[nb]),
            edge_source: long(&source),
            edge_target: long(&target),
            edge_offset: float(&offset, &[total_edges as i64, 3]),
            edge_crystal: long(&edge_crystal),
            image_shift: config.wrap_positions.then(|| float(&shifts, &[n, 3])),
            mean_fractional: float(&mean_fractional, &[nb, 3]),
            natoms,
            fixed_cell,
        })
    }

    pub fn num_crystals(&self) -> usize {
        self.natoms.len()
    }

    pub fn num_edges(&self) -> i64 {
        self.edge_source.size()[0]
    }
}
