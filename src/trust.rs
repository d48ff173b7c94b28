//! A trust policy: move each crystal only as far as the model can be
//! trusted, falling back towards the input where the predicted change is
//! no larger than the model's typical error.
//!
//! The network's prediction for an already relaxed crystal is the relaxed
//! structure plus the model's own error, so it moves such a crystal by
//! about that error; for a crystal far from its minimum the predicted
//! change is mostly signal. Each crystal's predicted change is therefore
//! shrunk, separately for the cell and for the atoms, by the factor
//! `c^2 / (c^2 + s^2)` (a Wiener filter), where `c` is the size of the
//! predicted change (the Frobenius norm of the cell strain `L^-1 L' - I`;
//! the root mean square of the atoms' displacements beyond the cell's
//! deformation, Å) and `s` the scale of the model's error on it. One factor
//! per crystal keeps the prediction symmetric, invariant and continuous;
//! `s = 0` is the raw prediction.
//!
//! The **surface trust** asks the model's energy-surface heads instead
//! (`ModelConfig::surface_heads`): a crystal whose predicted forces and
//! virial at the input are no larger than the heads' own output on relaxed
//! crystals is probably at its minimum already, so its change is shrunk by
//! `r^2p / (1 + r^2p)`, `r^2 = (F/f)^2 + (W/w)^2`, with `F` the root mean
//! square of the predicted forces on the atoms that may move (eV/Å), `W`
//! the Frobenius norm of the predicted virial per atom (eV/atom; left out
//! for a fixed cell) and `f`, `w` the heads' root-mean-square output on
//! relaxed crystals never trained on ([`SurfaceTrust`], measured by
//! `e3relax calibrate` into the model's `surface_trust.json`). The heads
//! read the input itself, not the prediction: unlike the scales above,
//! they can tell a relaxed input from one that needs a small move. The
//! sharpness `p` (1 unless the calibration file says otherwise) makes the
//! gate steeper around `r = 1`, where it always halves the change: a
//! larger `p` holds back the crystals the heads read as at rest more
//! firmly and lets the clearly strained ones move more, which is what the
//! heads' overlap between relaxed and unrelaxed inputs rewards (the model
//! card measures it).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg::{self, Mat3, Vec3};
use crate::structure::Structure;

/// The error scales of the trust policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trust {
    /// Scale of the model's error on the cell strain (dimensionless).
    pub strain: f64,
    /// Scale of the model's error on the atoms' displacements, Å.
    pub displacement: f64,
}

/// `c^2 / (c^2 + s^2)`, 1 for `s = 0`.
fn factor(change: f64, scale: f64) -> f64 {
    if scale <= 0.0 {
        return 1.0;
    }
    change * change / (change * change + scale * scale)
}

/// The change a prediction makes to its input: the cell strain
/// `L^-1 L' - I` and each atom's fractional move beyond the cell's
/// deformation (fractional coordinates in the predicted cell minus those
/// in the input cell). The trust policy, the fixed-point report and the
/// ensemble's spread all measure this.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub strain: Mat3,
    pub moves: Vec<Vec3>,
}

impl Change {
    pub fn of(input: &Structure, predicted: &Structure) -> Change {
        let mut strain = linalg::matmul(
            &linalg::inverse(&input.lattice).expect("validated lattice"),
            &predicted.lattice,
        );
        for (k, row) in strain.iter_mut().enumerate() {
            row[k] -= 1.0;
        }
        let before = input.fractional_positions();
        let moves = predicted
            .fractional_positions()
            .iter()
            .zip(&before)
            .map(|(&a, &b)| linalg::sub(a, b))
            .collect();
        Change { strain, moves }
    }

    /// The cell after `t` times this strain: `L0 (I + t S)` (`t = 1`: the
    /// prediction's cell; the trust policies and the line search move
    /// along this path).
    pub fn lattice_at(&self, input: &Structure, t: f64) -> Mat3 {
        let mut kept: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        for (row, strain_row) in kept.iter_mut().zip(&self.strain) {
            for (x, e) in row.iter_mut().zip(strain_row) {
                *x += t * e;
            }
        }
        linalg::matmul(&input.lattice, &kept)
    }

    /// The size of the strain (Frobenius norm).
    pub fn strain_size(&self) -> f64 {
        linalg::frobenius(&self.strain)
    }

    /// The moves in Å, measured in `lattice` (the predicted cell).
    pub fn displacements(&self, lattice: &Mat3) -> Vec<Vec3> {
        self.moves
            .iter()
            .map(|&u| linalg::vec_mat(u, lattice))
            .collect()
    }

    /// Root mean square of [`Change::displacements`], Å.
    pub fn displacement_rms(&self, lattice: &Mat3) -> f64 {
        let squared: f64 = self
            .displacements(lattice)
            .iter()
            .map(|&d| linalg::dot(d, d))
            .sum();
        (squared / self.moves.len().max(1) as f64).sqrt()
    }
}

/// The prediction for `input` shrunk towards it (see the module docs).
pub fn shrink(input: &Structure, predicted: &Structure, trust: &Trust) -> Structure {
    let change = Change::of(input, predicted);
    let cell_factor = factor(change.strain_size(), trust.strain);
    let atom_factor = factor(
        change.displacement_rms(&predicted.lattice),
        trust.displacement,
    );
    shrink_by(input, predicted, &change, cell_factor, atom_factor)
}

/// File of a model directory with its surface-trust scales.
pub const SURFACE_TRUST_FILE: &str = "surface_trust.json";

/// The scales of the surface trust: the energy-surface heads' root mean
/// square output on relaxed crystals (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SurfaceTrust {
    /// Forces, eV/Å.
    pub force: f64,
    /// Virial per atom, eV/atom.
    pub virial: f64,
    /// The gate's sharpness `p` (`r^2p / (1 + r^2p)`); calibration files
    /// written before it existed mean 1.
    #[serde(default = "unit_sharpness")]
    pub sharpness: f64,
}

fn unit_sharpness() -> f64 {
    1.0
}

/// `surface_trust.json`: the scales and what they were measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurfaceCalibration {
    #[serde(flatten)]
    pub scales: SurfaceTrust,
    /// Relaxed structures the scales were measured on.
    pub structures: usize,
    /// Where they came from (dataset folders).
    pub data: Vec<String>,
    /// The `K` a prediction with this model uses when its caller does not
    /// choose (the CLI without `--surface-trust`, the C ABI without the
    /// option); absent: the raw prediction unless asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<f64>,
    /// Model directories inside this one whose energy-surface heads read
    /// the inputs, their readings averaged (and the scales measured on
    /// that average); empty: the model's own heads. The file's `reader`
    /// is one name or a list of them.
    #[serde(
        default,
        rename = "reader",
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "one_or_many::serialize",
        deserialize_with = "one_or_many::deserialize"
    )]
    pub readers: Vec<String>,
}

/// `reader` in `surface_trust.json`: a name (one reader, as files written
/// before several existed have it) or a list of names.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        One(String),
        Many(Vec<String>),
    }

    pub fn serialize<S: Serializer>(names: &[String], out: S) -> Result<S::Ok, S::Error> {
        match names {
            [one] => out.serialize_str(one),
            many => out.collect_seq(many),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Vec<String>, D::Error> {
        match Names::deserialize(input).map_err(|_| {
            serde::de::Error::custom("reader must be a folder name or a list of folder names")
        })? {
            Names::One(name) => Ok(vec![name]),
            Names::Many(names) if names.is_empty() => Err(serde::de::Error::custom(
                "reader must name at least one folder (or be left out)",
            )),
            Names::Many(names) => Ok(names),
        }
    }
}

impl SurfaceCalibration {
    /// The surface readers' directories that `model_dir`'s calibration
    /// file names (none without a file or a `reader`); an error for a file
    /// that cannot be read or a reader that is not a folder inside
    /// `model_dir`.
    pub fn readers_of(model_dir: &Path) -> Result<Vec<std::path::PathBuf>> {
        if !model_dir.join(SURFACE_TRUST_FILE).is_file() {
            return Ok(Vec::new());
        }
        let calibration = SurfaceCalibration::load(model_dir)?;
        Ok(calibration
            .readers
            .iter()
            .map(|r| model_dir.join(r))
            .collect())
    }

    /// Why `names` cannot name the surface readers of a model directory,
    /// if they cannot: an empty list, a name that is not a folder inside
    /// it, or a name given twice.
    pub fn readers_problem(names: &[String]) -> Option<String> {
        if names.is_empty() {
            return Some("reader must name at least one folder (or be left out)".into());
        }
        for (i, name) in names.iter().enumerate() {
            if !SurfaceCalibration::reader_name_is_valid(name) {
                return Some(format!(
                    "reader must be a folder inside the model directory (a relative path without `..`), got {name:?}"
                ));
            }
            if names[..i].contains(name) {
                return Some(format!("reader {name:?} is named twice"));
            }
        }
        None
    }

    /// Whether `name` may name a surface reader: a relative path of plain
    /// folder names (no `..`, no root), so that the reader lives inside
    /// the model directory and travels with it when it is installed.
    pub fn reader_name_is_valid(name: &str) -> bool {
        let path = Path::new(name);
        !name.is_empty()
            && path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
    }

    /// The scales of a model directory, or an error saying how to make
    /// them.
    pub fn load(model_dir: &Path) -> Result<SurfaceCalibration> {
        let path = model_dir.join(SURFACE_TRUST_FILE);
        if !path.is_file() {
            return Err(Error::Model(format!(
                "{}: no such file; the surface trust needs the scales of this model's energy-surface heads (make them with `e3relax calibrate --model {} --data RELAXED_PAIRS`)",
                path.display(),
                model_dir.display()
            )));
        }
        let text = crate::io::read_regular_text(&path, 1 << 16)?;
        let calibration: SurfaceCalibration = serde_json::from_str(&text)
            .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
        if let Some(k) = calibration.default {
            if !(k.is_finite() && k > 0.0) {
                return Err(Error::Model(format!(
                    "{}: default must be a finite number above 0, got {k}",
                    path.display()
                )));
            }
        }
        let SurfaceTrust {
            force,
            virial,
            sharpness,
        } = calibration.scales;
        if !(force.is_finite() && force > 0.0 && virial.is_finite() && virial > 0.0) {
            return Err(Error::Model(format!(
                "{}: the scales must be positive and finite (force {force}, virial {virial})",
                path.display()
            )));
        }
        if !SurfaceTrust::sharpness_is_valid(sharpness) {
            return Err(Error::Model(format!(
                "{}: sharpness must be a finite number of at least 1, got {sharpness}",
                path.display()
            )));
        }
        if !calibration.readers.is_empty() {
            if let Some(problem) = SurfaceCalibration::readers_problem(&calibration.readers) {
                return Err(Error::Model(format!("{}: {problem}", path.display())));
            }
        }
        for reader in &calibration.readers {
            if !model_dir.join(reader).is_dir() {
                return Err(Error::Model(format!(
                    "{}: reader {reader:?} is not a folder of {}",
                    path.display(),
                    model_dir.display()
                )));
            }
        }
        Ok(calibration)
    }

    /// Scales measured on `readings` of relaxed crystals (root mean squares).
    pub fn measure(readings: &[SurfaceReading], data: Vec<String>) -> Result<SurfaceCalibration> {
        if readings.is_empty() {
            return Err(Error::InvalidArgument(
                "the surface trust's scales need at least one relaxed structure".into(),
            ));
        }
        let rms = |values: Vec<f64>| {
            (values.iter().map(|v| v * v).sum::<f64>() / values.len() as f64).sqrt()
        };
        Ok(SurfaceCalibration {
            scales: SurfaceTrust {
                force: rms(readings.iter().map(|r| r.force_rms).collect()),
                virial: rms(readings.iter().map(|r| r.virial_norm).collect()),
                sharpness: 1.0,
            },
            structures: readings.len(),
            data,
            default: None,
            readers: Vec::new(),
        })
    }
}

impl SurfaceTrust {
    /// Whether `p` is a sharpness the gate accepts: finite and at least 1
    /// (the calibration file, the CLI and `RelaxOptions` all check this).
    pub fn sharpness_is_valid(p: f64) -> bool {
        p.is_finite() && p >= 1.0
    }

    /// Both scales times `k` (the CLI's `--surface-trust K`).
    pub fn times(self, k: f64) -> SurfaceTrust {
        SurfaceTrust {
            force: k * self.force,
            virial: k * self.virial,
            sharpness: self.sharpness,
        }
    }

    /// The factor of a crystal's change, `r^2p / (1 + r^2p)`; the virial
    /// counts only where the cell may change.
    pub fn factor(&self, reading: &SurfaceReading, fixed_cell: bool) -> f64 {
        let ratio = |value: f64, scale: f64| {
            if scale > 0.0 {
                value / scale
            } else if value > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        };
        let mut r2 = ratio(reading.force_rms, self.force).powi(2);
        if !fixed_cell {
            r2 += ratio(reading.virial_norm, self.virial).powi(2);
        }
        let gate = r2.powf(self.sharpness);
        if gate.is_infinite() {
            1.0
        } else {
            gate / (1.0 + gate)
        }
    }
}

/// What the energy-surface heads say about one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurfaceReading {
    /// Root mean square of the predicted forces on the atoms that may
    /// move (an atom frozen along all three axes does not count), eV/Å.
    pub force_rms: f64,
    /// Frobenius norm of the predicted virial per atom, eV/atom.
    pub virial_norm: f64,
}

impl SurfaceReading {
    /// One reading per crystal of a batch: `forces` `[N,3]` and `virial`
    /// `[B,3,3]` flattened, the crystals' atoms in order.
    pub fn of_batch(
        forces: &[f64],
        virial: &[f64],
        crystals: &[&Structure],
    ) -> Result<Vec<SurfaceReading>> {
        let atoms: usize = crystals.iter().map(|c| c.positions.len()).sum();
        if forces.len() != 3 * atoms || virial.len() != 9 * crystals.len() {
            return Err(Error::Model(
                "the energy-surface heads returned the wrong number of values".into(),
            ));
        }
        let mut readings = Vec::with_capacity(crystals.len());
        let mut first = 0;
        for (b, crystal) in crystals.iter().enumerate() {
            let n = crystal.positions.len();
            let mut squared = 0.0;
            let mut moving = 0;
            for i in 0..n {
                let free = crystal
                    .selective_dynamics
                    .as_ref()
                    .is_none_or(|flags| flags[i].iter().any(|&f| f));
                if free {
                    squared += forces[3 * (first + i)..3 * (first + i) + 3]
                        .iter()
                        .map(|f| f * f)
                        .sum::<f64>();
                    moving += 1;
                }
            }
            first += n;
            readings.push(SurfaceReading {
                force_rms: (squared / moving.max(1) as f64).sqrt(),
                virial_norm: virial[9 * b..9 * b + 9]
                    .iter()
                    .map(|w| w * w)
                    .sum::<f64>()
                    .sqrt(),
            });
        }
        Ok(readings)
    }
}

/// The prediction for `input` with its cell strain scaled by `cell_factor`
/// and its atoms' moves beyond the cell's deformation by `atom_factor`
/// (1, 1: the prediction; 0, 0: the input). `change` is
/// `Change::of(input, predicted)`.
pub fn shrink_by(
    input: &Structure,
    predicted: &Structure,
    change: &Change,
    cell_factor: f64,
    atom_factor: f64,
) -> Structure {
    let lattice = change.lattice_at(input, cell_factor);
    let before = input.fractional_positions();
    let mut out = predicted.clone();
    out.lattice = lattice;
    for ((p, &b), &u) in out.positions.iter_mut().zip(&before).zip(&change.moves) {
        *p = linalg::vec_mat(linalg::add(b, linalg::scale(u, atom_factor)), &lattice);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crystal() -> Structure {
        let lattice = [[4.0, 0.0, 0.0], [0.5, 4.2, 0.0], [0.0, 0.3, 5.0]];
        Structure::new(lattice, vec![[0.0; 3], [2.0, 2.1, 2.4]], vec![14, 8]).unwrap()
    }

    fn moved(s: &Structure, strain: f64, shift: f64) -> Structure {
        let mut p = s.clone();
        let d = [
            [1.0 + strain, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0 - strain],
        ];
        p.lattice = linalg::matmul(&s.lattice, &d);
        let frac = s.fractional_positions();
        p.positions = frac
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let g = [f[0] + if i == 1 { shift } else { -shift }, f[1], f[2]];
                linalg::vec_mat(g, &p.lattice)
            })
            .collect();
        p
    }

    #[test]
    fn no_scale_is_the_raw_prediction_and_small_changes_shrink_most() {
        let s = crystal();
        let p = moved(&s, 0.02, 0.01);
        let raw = shrink(
            &s,
            &p,
            &Trust {
                strain: 0.0,
                displacement: 0.0,
            },
        );
        for (a, b) in raw.positions.iter().zip(&p.positions) {
            assert!((0..3).all(|k| (a[k] - b[k]).abs() < 1e-12));
        }
        let trust = Trust {
            strain: 0.02,
            displacement: 0.04,
        };
        // Strain norm 0.02 * sqrt 2: factor 2/3; a change 10x the scale
        // is kept at 99.5 %.
        let out = shrink(&s, &p, &trust);
        let e = (out.lattice[0][0] / s.lattice[0][0]) - 1.0;
        assert!((e - 0.02 * 2.0 / 3.0).abs() < 1e-12, "{e}");
        let big = shrink(&s, &moved(&s, 0.2, 0.0), &trust);
        assert!((big.lattice[0][0] / s.lattice[0][0] - 1.0 - 0.2 * 200.0 / 201.0).abs() < 1e-12);
        // Atoms: each fractional move scaled by the same factor.
        let (f0, f1, fp) = (
            s.fractional_positions(),
            out.fractional_positions(),
            p.fractional_positions(),
        );
        let ratio = (f1[1][0] - f0[1][0]) / (fp[1][0] - f0[1][0]);
        assert!(ratio > 0.0 && ratio < 1.0);
        assert!(((f1[0][0] - f0[0][0]) / (fp[0][0] - f0[0][0]) - ratio).abs() < 1e-12);
    }

    #[test]
    fn the_surface_factor_leaves_a_crystal_at_rest_alone() {
        let scales = SurfaceTrust {
            force: 0.5,
            virial: 0.2,
            sharpness: 1.0,
        };
        let at_rest = SurfaceReading {
            force_rms: 0.0,
            virial_norm: 0.0,
        };
        assert_eq!(scales.factor(&at_rest, false), 0.0);
        // Forces and virial at their scales: r^2 = 2, factor 2/3.
        let typical = SurfaceReading {
            force_rms: 0.5,
            virial_norm: 0.2,
        };
        assert!((scales.factor(&typical, false) - 2.0 / 3.0).abs() < 1e-15);
        // A fixed cell: the virial does not count.
        assert!((scales.factor(&typical, true) - 0.5).abs() < 1e-15);
        let far = SurfaceReading {
            force_rms: 50.0,
            virial_norm: 0.0,
        };
        assert!(scales.factor(&far, false) > 0.9999);
        assert_eq!(
            SurfaceTrust {
                force: 0.0,
                virial: 0.0,
                sharpness: 1.0,
            }
            .factor(&far, false),
            1.0
        );
        assert_eq!(scales.times(2.0).force, 1.0);
    }

    #[test]
    fn a_sharper_gate_halves_at_the_scale_and_separates_more_on_either_side() {
        let gentle = SurfaceTrust {
            force: 1.0,
            virial: 1.0,
            sharpness: 1.0,
        };
        let sharp = SurfaceTrust {
            sharpness: 3.0,
            ..gentle
        };
        let reading = |force_rms: f64| SurfaceReading {
            force_rms,
            virial_norm: 0.0,
        };
        // At the scale (r = 1) both halve the change.
        assert!((sharp.factor(&reading(1.0), false) - 0.5).abs() < 1e-15);
        // Below it the sharper gate holds back more, above it less; the
        // slow obvious formula r^6 / (1 + r^6).
        for r in [0.2f64, 0.5, 0.9, 1.1, 2.0, 5.0] {
            let expected = r.powi(6) / (1.0 + r.powi(6));
            let got = sharp.factor(&reading(r), false);
            assert!(
                (got - expected).abs() < 1e-14,
                "r {r}: {got} against {expected}"
            );
            let softer = gentle.factor(&reading(r), false);
            if r < 1.0 {
                assert!(got < softer);
            } else {
                assert!(got > softer);
            }
        }
        // K scales the reading, not the sharpness.
        assert_eq!(sharp.times(2.0).sharpness, 3.0);
        assert_eq!(sharp.factor(&reading(0.0), false), 0.0);
        assert_eq!(sharp.factor(&reading(1e200), false), 1.0);
    }

    #[test]
    fn calibration_files_without_a_sharpness_mean_one_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| std::fs::write(dir.path().join(SURFACE_TRUST_FILE), text).unwrap();
        write(r#"{"force": 0.6, "virial": 0.3, "structures": 5, "data": []}"#);
        let old = SurfaceCalibration::load(dir.path()).unwrap();
        assert_eq!(old.scales.sharpness, 1.0);
        write(r#"{"force": 0.6, "virial": 0.3, "sharpness": 3, "structures": 5, "data": []}"#);
        assert_eq!(
            SurfaceCalibration::load(dir.path())
                .unwrap()
                .scales
                .sharpness,
            3.0
        );
        for bad in ["0", "0.5", "-1"] {
            write(&format!(
                r#"{{"force": 0.6, "virial": 0.3, "sharpness": {bad}, "structures": 5, "data": []}}"#
            ));
            let error = SurfaceCalibration::load(dir.path())
                .unwrap_err()
                .to_string();
            assert!(error.contains("sharpness"), "{bad}: {error}");
        }
    }

    #[test]
    fn surface_readers_must_be_folders_inside_the_model_directory() {
        let dir = tempfile::tempdir().unwrap();
        let write = |reader: &str| {
            std::fs::write(
                dir.path().join(SURFACE_TRUST_FILE),
                format!(
                    r#"{{"force": 0.6, "virial": 0.3, "structures": 5, "data": [], "reader": {reader}}}"#
                ),
            )
            .unwrap()
        };
        // No file, or a file without a reader: the model's own heads.
        assert!(SurfaceCalibration::readers_of(dir.path())
            .unwrap()
            .is_empty());
        std::fs::write(
            dir.path().join(SURFACE_TRUST_FILE),
            r#"{"force": 0.6, "virial": 0.3, "structures": 5, "data": []}"#,
        )
        .unwrap();
        assert!(SurfaceCalibration::readers_of(dir.path())
            .unwrap()
            .is_empty());
        for name in ["surface-reader", "surface-reader-2"] {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
        }
        // One name (as files before several readers have it) or a list.
        write(r#""surface-reader""#);
        assert_eq!(
            SurfaceCalibration::readers_of(dir.path()).unwrap(),
            vec![dir.path().join("surface-reader")]
        );
        write(r#"["surface-reader", "surface-reader-2"]"#);
        assert_eq!(
            SurfaceCalibration::readers_of(dir.path()).unwrap(),
            vec![
                dir.path().join("surface-reader"),
                dir.path().join("surface-reader-2")
            ]
        );
        for (bad, why) in [
            (r#""missing""#, "not a folder"),
            (r#"["surface-reader", "missing"]"#, "not a folder"),
            (r#""../surface-reader""#, "inside the model directory"),
            (r#""/tmp""#, "inside the model directory"),
            (r#""""#, "inside the model directory"),
            (
                r#"["surface-reader", "../x"]"#,
                "inside the model directory",
            ),
            (r#"[]"#, "at least one folder"),
            (r#"["surface-reader", "surface-reader"]"#, "named twice"),
            (r#"3"#, "a folder name or a list of folder names"),
        ] {
            write(bad);
            let error = SurfaceCalibration::readers_of(dir.path())
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(SurfaceCalibration::reader_name_is_valid("readers/forces"));
        assert!(!SurfaceCalibration::reader_name_is_valid("./reader"));
    }

    /// One reader is written back as a name (files stay readable by the
    /// versions before several readers), several as a list.
    #[test]
    fn readers_are_written_as_a_name_or_a_list() {
        let mut calibration = SurfaceCalibration::measure(
            &[SurfaceReading {
                force_rms: 0.5,
                virial_norm: 0.25,
            }],
            vec!["data".into()],
        )
        .unwrap();
        let text = serde_json::to_value(&calibration).unwrap();
        assert!(text.get("reader").is_none(), "{text}");
        calibration.readers = vec!["surface-reader".into()];
        let text = serde_json::to_value(&calibration).unwrap();
        assert_eq!(text["reader"], "surface-reader");
        calibration.readers.push("surface-reader-2".into());
        let text = serde_json::to_value(&calibration).unwrap();
        assert_eq!(
            text["reader"],
            serde_json::json!(["surface-reader", "surface-reader-2"])
        );
        let back: SurfaceCalibration = serde_json::from_value(text).unwrap();
        assert_eq!(back, calibration);
    }

    #[test]
    fn surface_readings_leave_out_frozen_atoms_and_the_scales_are_root_mean_squares() {
        let mut s = crystal();
        let forces = [3.0, 0.0, 4.0, 0.0, 1.0, 0.0];
        let virial = [1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 2.0];
        let all = SurfaceReading::of_batch(&forces, &virial, &[&s]).unwrap();
        assert!((all[0].force_rms - (26.0f64 / 2.0).sqrt()).abs() < 1e-12);
        assert!((all[0].virial_norm - 3.0).abs() < 1e-12);
        // Atom 0 frozen along every axis: only atom 1's force counts; one
        // free axis is enough to count.
        s.selective_dynamics = Some(vec![[false; 3], [false, false, true]]);
        let free = SurfaceReading::of_batch(&forces, &virial, &[&s]).unwrap();
        assert!((free[0].force_rms - 1.0).abs() < 1e-12);
        // Two crystals but one crystal's values: refused.
        assert!(SurfaceReading::of_batch(&forces, &virial, &[&s, &s]).is_err());

        let calibration =
            SurfaceCalibration::measure(&[all[0], free[0]], vec!["somewhere".into()]).unwrap();
        assert!((calibration.scales.force - ((13.0 + 1.0) / 2.0f64).sqrt()).abs() < 1e-12);
        assert!((calibration.scales.virial - 3.0).abs() < 1e-12);
        assert!(SurfaceCalibration::measure(&[], vec![]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let missing = SurfaceCalibration::load(dir.path())
            .unwrap_err()
            .to_string();
        assert!(missing.contains("e3relax calibrate"), "{missing}");
        std::fs::write(
            dir.path().join(SURFACE_TRUST_FILE),
            serde_json::to_string(&calibration).unwrap(),
        )
        .unwrap();
        assert_eq!(SurfaceCalibration::load(dir.path()).unwrap(), calibration);
        std::fs::write(
            dir.path().join(SURFACE_TRUST_FILE),
            r#"{"force": -1, "virial": 1, "structures": 1, "data": []}"#,
        )
        .unwrap();
        let bad = SurfaceCalibration::load(dir.path())
            .unwrap_err()
            .to_string();
        assert!(bad.contains("positive"), "{bad}");
    }
}
