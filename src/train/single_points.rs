//! Single-point labels for the energy-surface heads (`surface_heads`):
//! loading, the per-element energy reference, batches and the loss.
//!
//! A file is extended XYZ as `tools/data/single_points.py` writes it: per frame
//! an `energy` (eV) and a `stress` (eV/Å^3, nine numbers, ASE's sign) in
//! the info line and a `forces` column (eV/Å). The heads learn the energy
//! per atom less a per-element reference (a least-squares fit of the
//! labels' total energies on element counts), the forces, and the virial
//! per atom `stress V / N`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tch::{Kind, Reduction, Tensor};

use crate::error::{Error, Result};
use crate::io::{self, Format};
use crate::model::{Batch, Model, ModelConfig};
use crate::rng::SplitMix64;
use crate::structure::Structure;

/// One labelled structure.
#[derive(Debug, Clone)]
pub struct SinglePoint {
    pub structure: Structure,
    /// eV, the whole cell.
    pub energy: f64,
    /// eV/Å, one per atom.
    pub forces: Vec<[f64; 3]>,
    /// eV/atom: `stress V / N`.
    pub virial_per_atom: [[f64; 3]; 3],
}

/// The loaded labels and their energy reference.
#[derive(Debug)]
pub struct SinglePointSet {
    pub points: Vec<SinglePoint>,
    /// eV per atom of each element (indexed by Z), fitted on `points`.
    pub element_energies: Vec<f64>,
}

/// Ridge of the element-energy fit (eV^2 per count^2): keeps an element
/// seen in a handful of structures near the mean energy per atom.
const ENERGY_FIT_RIDGE: f64 = 1e-3;

/// Huber loss threshold of every term (eV/Å, eV/atom): forces on a
/// far-from-equilibrium structure reach tens of eV/Å and must not drown
/// the near-equilibrium ones.
const HUBER_DELTA: f64 = 1.0;

fn files_of(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path.display().to_string(), e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string());
            name.is_some_and(|n| n.ends_with(".extxyz") || n.ends_with(".extxyz.gz"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "single_points: {} holds no .extxyz or .extxyz.gz file",
            path.display()
        )));
    }
    Ok(files)
}

fn numbers_of(frame: &Structure, key: &str, count: usize, name: &str) -> Result<Vec<f64>> {
    let text = frame
        .info_value(key)
        .ok_or_else(|| Error::InvalidArgument(format!("{name}: no `{key}` in the info line")))?;
    let values: Vec<f64> = text
        .split_whitespace()
        .map(|t| t.parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::InvalidArgument(format!("{name}: `{key}` is not numbers: {text}")))?;
    if values.len() != count || values.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "{name}: `{key}` needs {count} finite numbers, found {text:?}"
        )));
    }
    Ok(values)
}

fn single_point(frame: Structure, name: &str) -> Result<SinglePoint> {
    let energy = numbers_of(&frame, "energy", 1, name)?[0];
    let stress = numbers_of(&frame, "stress", 9, name)?;
    let forces_column = frame
        .atom_properties
        .iter()
        .find(|p| p.name == "forces")
        .ok_or_else(|| Error::InvalidArgument(format!("{name}: no `forces` column")))?;
    if forces_column.columns != 3 {
        return Err(Error::InvalidArgument(format!(
            "{name}: `forces` has {} columns, not 3",
            forces_column.columns
        )));
    }
    let values: Vec<f64> = forces_column
        .values
        .iter()
        .map(|t| t.parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::InvalidArgument(format!("{name}: a force is not a number")))?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "{name}: a force is not finite"
        )));
    }
    let forces = values.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    let per_atom_volume = frame.volume() / frame.natoms() as f64;
    let mut virial_per_atom = [[0.0; 3]; 3];
    for (i, row) in virial_per_atom.iter_mut().enumerate() {
        for (j, value) in row.iter_mut().enumerate() {
            *value = stress[3 * i + j] * per_atom_volume;
        }
    }
    Ok(SinglePoint {
        structure: frame,
        energy,
        forces,
        virial_per_atom,
    })
}

impl SinglePointSet {
    /// Reads every file (or every `.extxyz[.gz]` in a folder) of `paths`.
    /// Structures whose `split_key` info value is one of `held_out` (the
    /// validation groups) are left out, as are structures the model cannot
    /// take (named in the log); a frame without its labels stops the load.
    pub fn load(
        paths: &[PathBuf],
        split_key: &str,
        held_out: &HashSet<String>,
        num_elements: usize,
        log: &mut dyn FnMut(&str),
    ) -> Result<Self> {
        let mut points = Vec::new();
        let (mut leaked, mut invalid) = (0usize, 0usize);
        for path in paths {
            for file in files_of(path)? {
                let text = io::read_text(&file)?;
                let frames = io::parse(&text, Format::ExtXyz)
                    .map_err(|e| e.in_file(&file.display().to_string()))?;
                for (k, frame) in frames.into_iter().enumerate() {
                    let name = format!("{} frame {}", file.display(), k + 1);
                    if frame
                        .info_value(split_key)
                        .is_some_and(|group| held_out.contains(group))
                    {
                        leaked += 1;
                        continue;
                    }
                    if let Err(e) = frame.validate() {
                        invalid += 1;
                        log(&format!("single point {name} left out: {e}"));
                        continue;
                    }
                    if frame.numbers.iter().any(|&z| z as usize >= num_elements) {
                        invalid += 1;
                        log(&format!(
                            "single point {name} left out: element beyond the model's table"
                        ));
                        continue;
                    }
                    points.push(single_point(frame, &name)?);
                }
            }
        }
        if points.is_empty() {
            return Err(Error::InvalidArgument(
                "single_points: no usable labelled structure".into(),
            ));
        }
        log(&format!(
            "{} single-point labels ({leaked} of validation groups and {invalid} invalid left out)",
            points.len()
        ));
        let element_energies = fit_element_energies(&points, num_elements);
        Ok(SinglePointSet {
            points,
            element_energies,
        })
    }

    /// A batch of `size` labels drawn at random, and its targets: energy
    /// per atom less the reference `[B]`, forces `[N,3]`, virial per atom
    /// `[B,3,3]`.
    pub fn batch(
        &self,
        size: usize,
        rng: &mut SplitMix64,
        model_config: &ModelConfig,
        device: tch::Device,
    ) -> Result<(Batch, SurfaceTargets)> {
        let chosen = self.draw(size, rng);
        self.batch_of(&chosen, model_config, device)
    }

    /// One process's part of a batch shared by several (data parallel
    /// training): all `size` labels are drawn, so the random stream is the
    /// single process's, and the batch is built from `share` of them
    /// (`None` for an empty share); with the whole batch's counts.
    pub fn batch_part(
        &self,
        size: usize,
        share: std::ops::Range<usize>,
        rng: &mut SplitMix64,
        model_config: &ModelConfig,
        device: tch::Device,
    ) -> Result<(Option<(Batch, SurfaceTargets)>, SurfaceTotals)> {
        let chosen = self.draw(size, rng);
        let totals = SurfaceTotals {
            crystals: chosen.len() as f64,
            atoms: chosen.iter().map(|p| p.structure.natoms()).sum::<usize>() as f64,
        };
        let part = &chosen[share];
        let batch = if part.is_empty() {
            None
        } else {
            Some(self.batch_of(part, model_config, device)?)
        };
        Ok((batch, totals))
    }

    fn draw(&self, size: usize, rng: &mut SplitMix64) -> Vec<&SinglePoint> {
        (0..size)
            .map(|_| &self.points[rng.below(self.points.len())])
            .collect()
    }

    fn batch_of(
        &self,
        chosen: &[&SinglePoint],
        model_config: &ModelConfig,
        device: tch::Device,
    ) -> Result<(Batch, SurfaceTargets)> {
        let kind = Kind::Float;
        let size = chosen.len();
        let refs: Vec<&Structure> = chosen.iter().map(|p| &p.structure).collect();
        let batch = Batch::new(&refs, model_config, device, kind, false)?;
        let energies: Vec<f64> = chosen
            .iter()
            .map(|p| {
                let reference: f64 = p
                    .structure
                    .numbers
                    .iter()
                    .map(|&z| self.element_energies[z as usize])
                    .sum();
                (p.energy - reference) / p.structure.natoms() as f64
            })
            .collect();
        let forces: Vec<f64> = chosen
            .iter()
            .flat_map(|p| p.forces.iter().flatten().copied())
            .collect();
        let virials: Vec<f64> = chosen
            .iter()
            .flat_map(|p| p.virial_per_atom.iter().flatten().copied())
            .collect();
        let tensor = |values: &[f64], shape: &[i64]| {
            Tensor::from_slice(values)
                .reshape(shape)
                .to_kind(kind)
                .to_device(device)
        };
        let targets = SurfaceTargets {
            energy_per_atom: tensor(&energies, &[size as i64]),
            forces: tensor(&forces, &[(forces.len() / 3) as i64, 3]),
            virial_per_atom: tensor(&virials, &[size as i64, 3, 3]),
        };
        Ok((batch, targets))
    }
}

/// The labels of one batch.
#[derive(Debug)]
pub struct SurfaceTargets {
    pub energy_per_atom: Tensor,
    pub forces: Tensor,
    pub virial_per_atom: Tensor,
}

/// A whole single-point batch's counts, when a process runs only part of
/// it: the part's loss is weighted by them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurfaceTotals {
    pub crystals: f64,
    pub atoms: f64,
}

/// Weights of the surface terms in the training loss.
#[derive(Debug, Clone, Copy)]
pub struct SurfaceWeights {
    pub energy: f64,
    pub forces: f64,
    pub virial: f64,
}

/// The heads' loss on one batch: a Huber loss per term (mean over entries),
/// weighted; `None` for a model without heads.
pub fn surface_loss(
    model: &Model,
    batch: &Batch,
    targets: &SurfaceTargets,
    weights: SurfaceWeights,
) -> Option<Tensor> {
    let predicted = model.network.surface(batch)?;
    let huber = |p: &Tensor, t: &Tensor| p.huber_loss(t, Reduction::Mean, HUBER_DELTA);
    Some(
        huber(&predicted.energy_per_atom, &targets.energy_per_atom) * weights.energy
            + huber(&predicted.forces, &targets.forces) * weights.forces
            + huber(&predicted.virial_per_atom, &targets.virial_per_atom) * weights.virial,
    )
}

/// [`surface_loss`] of part of a single-point batch whose whole has
/// `totals`: each Huber term summed over this part and divided by the
/// whole batch's number of entries, so that the parts' losses add up to
/// the whole batch's.
pub fn surface_loss_of_part(
    model: &Model,
    batch: &Batch,
    targets: &SurfaceTargets,
    weights: SurfaceWeights,
    totals: SurfaceTotals,
) -> Option<Tensor> {
    let predicted = model.network.surface(batch)?;
    let huber = |p: &Tensor, t: &Tensor, entries: f64| {
        p.huber_loss(t, Reduction::Sum, HUBER_DELTA) / entries
    };
    Some(
        huber(
            &predicted.energy_per_atom,
            &targets.energy_per_atom,
            totals.crystals,
        ) * weights.energy
            + huber(&predicted.forces, &targets.forces, 3.0 * totals.atoms) * weights.forces
            + huber(
                &predicted.virial_per_atom,
                &targets.virial_per_atom,
                9.0 * totals.crystals,
            ) * weights.virial,
    )
}

/// Per-element energies (eV per atom of each element, by Z) minimising
/// `sum_s (E_s - sum_z n_sz mu_z)^2 / N_s + ridge |mu - mean|^2`: a
/// structure's energy per atom is what the counts do not explain. Elements
/// absent from the labels get the mean energy per atom.
fn fit_element_energies(points: &[SinglePoint], num_elements: usize) -> Vec<f64> {
    let total_atoms: usize = points.iter().map(|p| p.structure.natoms()).sum();
    let mean = points.iter().map(|p| p.energy).sum::<f64>() / total_atoms as f64;
    let present: Vec<usize> = {
        let mut seen = vec![false; num_elements];
        for p in points {
            for &z in &p.structure.numbers {
                seen[z as usize] = true;
            }
        }
        (0..num_elements).filter(|&z| seen[z]).collect()
    };
    let column: std::collections::HashMap<usize, usize> =
        present.iter().enumerate().map(|(k, &z)| (z, k)).collect();
    let m = present.len();
    // Normal equations of the per-atom residuals (rows divided by sqrt N).
    let mut normal = vec![0.0; m * m];
    let mut rhs = vec![0.0; m];
    for p in points {
        let n = p.structure.natoms() as f64;
        let mut counts = vec![0.0; m];
        for &z in &p.structure.numbers {
            counts[column[&(z as usize)]] += 1.0;
        }
        for a in 0..m {
            if counts[a] == 0.0 {
                continue;
            }
            rhs[a] += counts[a] * p.energy / n;
            for b in 0..m {
                normal[a * m + b] += counts[a] * counts[b] / n;
            }
        }
    }
    for a in 0..m {
        normal[a * m + a] += ENERGY_FIT_RIDGE;
        rhs[a] += ENERGY_FIT_RIDGE * mean;
    }
    let solution = crate::linalg::solve_symmetric(normal, rhs, m);
    let mut energies = vec![mean; num_elements];
    for (k, &z) in present.iter().enumerate() {
        energies[z] = solution[k];
    }
    energies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(numbers: Vec<u32>, energy: f64) -> SinglePoint {
        let n = numbers.len();
        let positions = (0..n).map(|k| [k as f64 * 2.0, 0.0, 0.0]).collect();
        let lattice = [[2.0 * n as f64, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]];
        SinglePoint {
            structure: Structure::new(lattice, positions, numbers).unwrap(),
            energy,
            forces: vec![[0.0; 3]; n],
            virial_per_atom: [[0.0; 3]; 3],
        }
    }

    /// Energies made exactly of per-element terms are read back by the fit
    /// (up to the ridge's pull, 1e-3 against counts of order 1).
    #[test]
    fn element_energies_reproduce_additive_labels() {
        let (na, cl, o) = (-1.5, -2.5, -4.0);
        let points = vec![
            labelled(vec![11, 17], na + cl),
            labelled(vec![11, 11, 8], 2.0 * na + o),
            labelled(vec![17, 8, 8], cl + 2.0 * o),
            labelled(vec![11, 17, 17, 8], na + 2.0 * cl + o),
        ];
        let fit = fit_element_energies(&points, 20);
        for (z, expected) in [(11, na), (17, cl), (8, o)] {
            assert!(
                (fit[z] - expected).abs() < 5e-3,
                "Z={z}: {} vs {expected}",
                fit[z]
            );
        }
    }

    /// A frame as the generator writes it: the virial per atom is the
    /// stress times the volume per atom, and a frame without forces is an
    /// error that names what is missing.
    #[test]
    fn reads_the_generator_format_and_names_what_is_missing() {
        let frame = "2\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3:forces:R:3 energy=-7.5 stress=\"0.01 0 0 0 0.02 0 0 0 0.03\" prototype=p pbc=\"T T T\"\nNa 0 0 0 0.1 0.2 0.3\nCl 2 2 2 -0.1 -0.2 -0.3\n";
        let structure = io::parse(frame, Format::ExtXyz).unwrap().remove(0);
        let point = single_point(structure, "test").unwrap();
        assert_eq!(point.energy, -7.5);
        assert_eq!(point.forces[1], [-0.1, -0.2, -0.3]);
        assert!((point.virial_per_atom[1][1] - 0.02 * 32.0).abs() < 1e-12);
        let without = frame.replace(":forces:R:3", "").replace(" 0.1 0.2 0.3", "");
        let without = without.replace(" -0.1 -0.2 -0.3", "");
        let structure = io::parse(&without, Format::ExtXyz).unwrap().remove(0);
        let error = single_point(structure, "test").unwrap_err().to_string();
        assert!(error.contains("no `forces` column"), "{error}");
    }
}
