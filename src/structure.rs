//! The crystal structure handed to and returned by the library, and its
//! validation.
//!
//! Conventions (as everywhere in e3relax): lengths in Å, `lattice[i]` is
//! lattice vector *i* (rows), positions are Cartesian, species are atomic
//! numbers. Left-handed lattices (negative determinant) are accepted: every
//! quantity uses `|det L|` for the volume, and the network treats a mirrored
//! crystal as the mirror image of the original (it is reflection-equivariant).

use crate::elements;
use crate::error::{Error, Result};
use crate::graph;
use crate::linalg::{self, Mat3, Vec3};

/// A per-atom column of an extended XYZ file that e3relax does not use but
/// keeps, so that `convert` and `relax` do not lose a user's data.
#[derive(Debug, Clone, PartialEq)]
pub struct AtomProperty {
    pub name: String,
    /// extxyz type letter: `S` string, `R` real, `I` integer, `L` logical.
    pub kind: char,
    pub columns: usize,
    /// `natoms * columns` tokens, atom-major, as written in the file.
    pub values: Vec<String>,
}

/// One periodic crystal.
#[derive(Debug, Clone, PartialEq)]
pub struct Structure {
    /// Rows are the lattice vectors, Å.
    pub lattice: Mat3,
    /// Cartesian positions, Å.
    pub positions: Vec<Vec3>,
    /// Atomic numbers.
    pub numbers: Vec<u32>,
    /// Identifier (extxyz `id`, CIF data block name, POSCAR comment).
    pub id: Option<String>,
    /// Other metadata as `key = raw value` in file order (extxyz info keys).
    pub info: Vec<(String, String)>,
    /// Extra per-atom columns kept from extended XYZ files.
    pub atom_properties: Vec<AtomProperty>,
    /// Per-atom, per-axis move flags (`true` = may move): VASP selective
    /// dynamics, an extended XYZ `move_mask`. A prediction honours them
    /// (see [`crate::frozen`]).
    pub selective_dynamics: Option<Vec<[bool; 3]>>,
    /// What the flags' axes are: Cartesian axes (extended XYZ, ASE) or
    /// lattice vectors (POSCAR, as VASP reads them).
    pub selective_dynamics_axes: crate::frozen::AxisFrame,
}

/// Limits applied by [`Structure::validate_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidationOptions {
    /// Two atoms (or an atom and its own image) closer than this are an
    /// error, Å. The shared datasets reject pairs closer than 0.6 Å.
    pub min_distance: f64,
    /// Largest accepted atomic number (the model's element table size).
    pub max_atomic_number: u32,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions {
            min_distance: 0.5,
            max_atomic_number: elements::MAX_ATOMIC_NUMBER,
        }
    }
}

/// Most atoms in one structure. The network's memory grows with the edges
/// (about 50 per atom): at F = 64 a 20,000-atom cell needs a few GB, and
/// larger systems are not what a pre-relaxer of unit cells and defect
/// supercells is for.
pub const MAX_ATOMS: usize = 20_000;

/// Longest accepted lattice vector, Å: longer is a unit error, and lengths
/// near 10^154 would overflow the geometry.
pub const MAX_LATTICE_LENGTH: f64 = 1e5;

/// Atoms further than this many cells from the unit cell are rejected:
/// image offsets are integers of limited range.
pub const MAX_CELLS_AWAY: f64 = 1e6;

/// Below this `|det L| / (|a| |b| |c|)` a lattice counts as near-singular
/// (the three vectors are within ~0.0006 degrees of a plane).
pub const NEAR_SINGULAR_RATIO: f64 = 1e-5;

impl Structure {
    /// Builds and validates a structure with the default limits.
    pub fn new(lattice: Mat3, positions: Vec<Vec3>, numbers: Vec<u32>) -> Result<Self> {
        let s = Structure::new_unchecked(lattice, positions, numbers);
        s.validate()?;
        Ok(s)
    }

    /// Builds a structure without validating it (readers validate after
    /// they attached metadata, so errors can name the frame).
    pub fn new_unchecked(lattice: Mat3, positions: Vec<Vec3>, numbers: Vec<u32>) -> Self {
        Structure {
            lattice,
            positions,
            numbers,
            id: None,
            info: Vec::new(),
            atom_properties: Vec::new(),
            selective_dynamics: None,
            selective_dynamics_axes: Default::default(),
        }
    }

    pub fn natoms(&self) -> usize {
        self.numbers.len()
    }

    /// Cell volume `|det L|`, Å^3.
    pub fn volume(&self) -> f64 {
        linalg::det(&self.lattice).abs()
    }

    /// Validates with [`ValidationOptions::default`].
    pub fn validate(&self) -> Result<()> {
        self.validate_with(&ValidationOptions::default())
    }

    /// Checks everything the network needs, from cheapest to dearest; the
    /// error names the first problem found (and the atom, where one is).
    pub fn validate_with(&self, options: &ValidationOptions) -> Result<()> {
        let invalid = |msg: String| Err(Error::InvalidStructure(msg));
        if self.numbers.is_empty() {
            return invalid("the structure has no atoms".into());
        }
        if self.numbers.len() > MAX_ATOMS {
            return invalid(format!(
                "{} atoms: more than the {MAX_ATOMS} one structure may hold",
                self.numbers.len()
            ));
        }
        if self.positions.len() != self.numbers.len() {
            return invalid(format!(
                "{} positions but {} atomic numbers",
                self.positions.len(),
                self.numbers.len()
            ));
        }
        if let Some(flags) = &self.selective_dynamics {
            if flags.len() != self.numbers.len() {
                return invalid(format!(
                    "{} selective-dynamics flags for {} atoms",
                    flags.len(),
                    self.numbers.len()
                ));
            }
        }
        for (i, row) in self.lattice.iter().enumerate() {
            if row.iter().any(|v| !v.is_finite()) {
                return invalid(format!("lattice vector {} is not finite: {row:?}", i + 1));
            }
        }
        for (i, p) in self.positions.iter().enumerate() {
            if p.iter().any(|v| !v.is_finite()) {
                return invalid(format!("position of atom {} is not finite: {p:?}", i + 1));
            }
        }
        for (i, &z) in self.numbers.iter().enumerate() {
            if z == 0 || z > options.max_atomic_number {
                return invalid(format!(
                    "atom {} has atomic number {z}, outside 1..={}",
                    i + 1,
                    options.max_atomic_number
                ));
            }
        }
        let lengths = self.lattice.map(linalg::norm);
        if let Some(i) = lengths.iter().position(|&l| l > MAX_LATTICE_LENGTH) {
            return invalid(format!(
                "lattice vector {} has length {:.3e} Å (more than {MAX_LATTICE_LENGTH:e} Å)",
                i + 1,
                lengths[i]
            ));
        }
        if let Some(i) = lengths.iter().position(|&l| l < 1e-3) {
            return invalid(format!(
                "lattice vector {} has length {:.3e} Å",
                i + 1,
                lengths[i]
            ));
        }
        let ratio = self.volume() / (lengths[0] * lengths[1] * lengths[2]);
        if ratio < NEAR_SINGULAR_RATIO {
            return invalid(format!(
                "the lattice is singular or nearly so (volume {:.3e} Å^3; volume / (|a||b||c|) = {ratio:.1e} < {NEAR_SINGULAR_RATIO:e})",
                self.volume()
            ));
        }
        let inverse = linalg::inverse(&self.lattice).expect("non-singular lattice");
        for (i, p) in self.positions.iter().enumerate() {
            let f = linalg::vec_mat(*p, &inverse);
            if f.iter().any(|v| v.abs() > MAX_CELLS_AWAY) {
                return invalid(format!(
                    "atom {} lies {:.1e} cells away from the unit cell (fractional {f:?})",
                    i + 1,
                    f.iter().fold(0.0f64, |m, v| m.max(v.abs()))
                ));
            }
        }
        if options.min_distance > 0.0 {
            graph::check_search_size(&self.lattice, options.min_distance)
                .map(|_| ())
                .or_else(&invalid)?;
            if let Some((i, j, d)) =
                graph::closest_pair_within(&self.lattice, &self.positions, options.min_distance)
            {
                let what = if i == j {
                    format!("atom {} is {d:.4} Å from its own periodic image", i + 1)
                } else {
                    format!("atoms {} and {} are {d:.4} Å apart", i + 1, j + 1)
                };
                return invalid(format!(
                    "{what} (closer than the minimum of {} Å)",
                    options.min_distance
                ));
            }
        }
        Ok(())
    }

    /// Fractional coordinates `f` with `pos = f . L`.
    pub fn fractional_positions(&self) -> Vec<Vec3> {
        let inv = linalg::inverse(&self.lattice).expect("validated lattice is invertible");
        self.positions
            .iter()
            .map(|&p| linalg::vec_mat(p, &inv))
            .collect()
    }

    /// Lattice parameters `(a, b, c, alpha, beta, gamma)`, Å and degrees.
    pub fn lattice_parameters(&self) -> [f64; 6] {
        lattice_parameters(&self.lattice)
    }

    /// Chemical formula in Hill order (C, H, then alphabetical; purely
    /// alphabetical without carbon), e.g. `K4P4Te8`.
    pub fn formula(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for &z in &self.numbers {
            let sym = elements::symbol(z).unwrap_or("X");
            match counts.iter_mut().find(|(s, _)| *s == sym) {
                Some((_, n)) => *n += 1,
                None => counts.push((sym, 1)),
            }
        }
        let has_carbon = counts.iter().any(|(s, _)| *s == "C");
        let rank = |s: &str| match (has_carbon, s) {
            (true, "C") => 0,
            (true, "H") => 1,
            _ => 2,
        };
        counts.sort_by(|a, b| (rank(a.0), a.0).cmp(&(rank(b.0), b.0)));
        counts
            .iter()
            .map(|(s, n)| {
                if *n == 1 {
                    s.to_string()
                } else {
                    format!("{s}{n}")
                }
            })
            .collect()
    }

    /// Mass density, g/cm^3.
    pub fn density(&self) -> f64 {
        // 1 u / 1 Å^3 = 1.660 539 066 60 g/cm^3 (CODATA 2018).
        const U_PER_A3_IN_G_PER_CM3: f64 = 1.660_539_066_60;
        let mass: f64 = self.numbers.iter().filter_map(|&z| elements::mass(z)).sum();
        mass * U_PER_A3_IN_G_PER_CM3 / self.volume()
    }

    /// The structure rotated by `r` (lattice rows and positions become
    /// `v R^T`), everything else kept.
    pub fn rotated(&self, r: &Mat3) -> Structure {
        let rt = linalg::transpose(r);
        let mut out = self.clone();
        out.lattice = self.lattice.map(|row| linalg::vec_mat(row, &rt));
        out.positions = self
            .positions
            .iter()
            .map(|&p| linalg::vec_mat(p, &rt))
            .collect();
        out
    }

    /// Looks up an info key.
    pub fn info_value(&self, key: &str) -> Option<&str> {
        self.info
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets an info key, replacing an existing value in place.
    pub fn set_info(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.info.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.info.push((key.to_string(), value)),
        }
    }

    /// A name for messages: the id, else `frame N` (1-based).
    pub fn label(&self, index: usize) -> String {
        match &self.id {
            Some(id) => format!("{id} (frame {})", index + 1),
            None => format!("frame {}", index + 1),
        }
    }
}

/// Lattice parameters `(a, b, c, alpha, beta, gamma)` of a lattice.
pub fn lattice_parameters(lattice: &Mat3) -> [f64; 6] {
    let [a, b, c] = lattice.map(linalg::norm);
    let angle = |u: Vec3, v: Vec3| {
        let cos = linalg::dot(u, v) / (linalg::norm(u) * linalg::norm(v));
        cos.clamp(-1.0, 1.0).acos().to_degrees()
    };
    [
        a,
        b,
        c,
        angle(lattice[1], lattice[2]),
        angle(lattice[0], lattice[2]),
        angle(lattice[0], lattice[1]),
    ]
}

/// Why six lattice parameters cannot describe a cell, if they cannot:
/// lengths must be positive and finite, angles strictly between 0 and 180
/// degrees, and the three angles must close into a cell of positive volume
/// (each smaller than the sum of the other two, their sum below 360).
pub fn check_lattice_parameters(params: [f64; 6]) -> std::result::Result<(), String> {
    let [a, b, c, alpha, beta, gamma] = params;
    for (name, v) in [("a", a), ("b", b), ("c", c)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!(
                "cell length {name} = {v} must be a positive number"
            ));
        }
    }
    for (name, v) in [("alpha", alpha), ("beta", beta), ("gamma", gamma)] {
        if !(v > 0.0 && v < 180.0) {
            return Err(format!(
                "cell angle {name} = {v} degrees must lie strictly between 0 and 180"
            ));
        }
    }
    let [ca, cb, cg] = [alpha, beta, gamma].map(|x| x.to_radians().cos());
    let volume_factor = 1.0 - ca * ca - cb * cb - cg * cg + 2.0 * ca * cb * cg;
    if volume_factor <= 1e-12 {
        return Err(format!(
            "cell angles {alpha}, {beta}, {gamma} degrees do not close into a cell (each must be smaller than the sum of the other two, and all three below 360 together)"
        ));
    }
    Ok(())
}

/// The lattice with given parameters in the usual orientation (as ASE's
/// `cellpar_to_cell`): `a` along x, `b` in the xy plane, right-handed.
/// The parameters must pass [`check_lattice_parameters`].
pub fn lattice_from_parameters(params: [f64; 6]) -> Mat3 {
    debug_assert!(check_lattice_parameters(params).is_ok());
    let [a, b, c, alpha, beta, gamma] = params;
    let (cos_a, cos_b) = (alpha.to_radians().cos(), beta.to_radians().cos());
    let (cos_g, sin_g) = (gamma.to_radians().cos(), gamma.to_radians().sin());
    let cx = cos_b;
    let cy = (cos_a - cos_b * cos_g) / sin_g;
    let cz = (1.0 - cx * cx - cy * cy).max(0.0).sqrt();
    [
        [a, 0.0, 0.0],
        [b * cos_g, b * sin_g, 0.0],
        [c * cx, c * cy, c * cz],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rocksalt() -> Structure {
        let a = 5.64;
        Structure::new(
            [
                [0.0, a / 2.0, a / 2.0],
                [a / 2.0, 0.0, a / 2.0],
                [a / 2.0, a / 2.0, 0.0],
            ],
            vec![[0.0; 3], [a / 2.0, 0.0, 0.0]],
            vec![11, 17],
        )
        .unwrap()
    }

    fn message(r: Result<Structure>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn derived_quantities() {
        let s = rocksalt();
        assert!((s.volume() - 5.64f64.powi(3) / 4.0).abs() < 1e-10);
        assert_eq!(s.formula(), "ClNa");
        // NaCl: 2.16 g/cm^3.
        assert!((s.density() - 2.165).abs() < 0.01, "{}", s.density());
        let p = s.lattice_parameters();
        assert!((p[0] - 5.64 / 2f64.sqrt()).abs() < 1e-12);
        assert!((p[3] - 60.0).abs() < 1e-9 && (p[5] - 60.0).abs() < 1e-9);
    }

    #[test]
    fn lattice_parameters_round_trip() {
        let params = [4.1, 5.3, 6.7, 81.0, 97.5, 112.0];
        let l = lattice_from_parameters(params);
        let back = lattice_parameters(&l);
        for k in 0..6 {
            assert!((params[k] - back[k]).abs() < 1e-10);
        }
        assert!(linalg::det(&l) > 0.0);
    }

    #[test]
    fn impossible_lattice_parameters_are_named() {
        let ok = [4.0, 4.0, 4.0, 90.0, 90.0, 90.0];
        assert!(check_lattice_parameters(ok).is_ok());
        let with = |k: usize, v: f64| {
            let mut p = ok;
            p[k] = v;
            check_lattice_parameters(p).unwrap_err()
        };
        assert!(with(3, 200.0).contains("alpha = 200"));
        assert!(with(5, 180.0).contains("gamma"));
        assert!(with(4, 0.0).contains("beta"));
        assert!(with(4, f64::NAN).contains("beta"));
        assert!(with(0, -1.0).contains("length a"));
        assert!(with(2, f64::INFINITY).contains("length c"));
        // 60 + 60 < 150: the third vector cannot close the cell.
        let e = check_lattice_parameters([4.0, 4.0, 4.0, 60.0, 60.0, 150.0]).unwrap_err();
        assert!(e.contains("do not close"), "{e}");
    }

    #[test]
    fn hill_order_with_carbon() {
        let s = Structure::new(
            [[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]],
            vec![[0.0; 3], [1.0, 0.0, 0.0], [0.0, 1.1, 0.0], [0.0, 0.0, 1.2]],
            vec![8, 1, 6, 1],
        )
        .unwrap();
        assert_eq!(s.formula(), "CH2O");
    }

    #[test]
    fn each_invalid_input_names_its_problem() {
        let cubic = [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]];
        let one = vec![[0.0; 3]];
        assert!(message(Structure::new(cubic, vec![], vec![])).contains("no atoms"));
        assert!(
            message(Structure::new(cubic, vec![[f64::NAN, 0.0, 0.0]], vec![1]))
                .contains("atom 1 is not finite")
        );
        let mut inf_lattice = cubic;
        inf_lattice[1][2] = f64::INFINITY;
        assert!(message(Structure::new(inf_lattice, one.clone(), vec![1]))
            .contains("lattice vector 2 is not finite"));
        assert!(
            message(Structure::new(cubic, one.clone(), vec![119])).contains("atomic number 119")
        );
        assert!(message(Structure::new(cubic, one.clone(), vec![0])).contains("atomic number 0"));
        let flat = [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [4.0, 4.0, 1e-7]];
        assert!(message(Structure::new(flat, one.clone(), vec![1])).contains("singular"));
        let zero = [[4.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 4.0]];
        assert!(message(Structure::new(zero, one.clone(), vec![1]))
            .contains("lattice vector 2 has length"));
        let close = Structure::new(cubic, vec![[0.0; 3], [0.0, 0.0, 3.8]], vec![1, 1]);
        assert!(message(close).contains("atoms 1 and 2 are 0.2000 Å apart"));
        let huge = [[1e300, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]];
        assert!(message(Structure::new(huge, one.clone(), vec![1])).contains("more than 1e5 Å"));
        assert!(
            message(Structure::new(cubic, vec![[4e7, 0.0, 0.0]], vec![1]))
                .contains("1.0e7 cells away")
        );
        let thin = [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [3.0, 2.0, 1e-4]];
        assert!(message(Structure::new(thin, one.clone(), vec![1])).contains("too thin or skewed"));
        let tiny = [[0.3, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]];
        assert!(message(Structure::new(tiny, one.clone(), vec![1])).contains("own periodic image"));
        assert!(message(Structure::new(cubic, one, vec![1, 2])).contains("1 positions but 2"));
    }

    #[test]
    fn left_handed_lattice_is_accepted_with_positive_volume() {
        let left = [[4.0, 0.0, 0.0], [0.0, 0.0, 4.0], [0.0, 4.0, 0.0]];
        let s = Structure::new(left, vec![[0.0; 3]], vec![1]).unwrap();
        assert!(linalg::det(&s.lattice) < 0.0);
        assert!((s.volume() - 64.0).abs() < 1e-12);
    }
}
