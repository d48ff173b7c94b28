//! Frozen coordinates: atoms, or single axes of atoms, that the user marked
//! as fixed (VASP selective dynamics, ASE `FixAtoms` / `FixCartesian` as an
//! extended XYZ `move_mask`, Quantum ESPRESSO `if_pos`, a LAMMPS group, the
//! C ABI's move mask) come back where the user left them.
//!
//! What "where the user left them" means:
//!
//! * **Fixed cell**: a frozen coordinate is returned bit for bit as given.
//! * **Variable cell**: a frozen atom keeps its *fractional* coordinates, so
//!   it follows the cell's homogeneous deformation. A DFT code does the
//!   same (a VASP `F F F` atom under `ISIF = 3`, an ASE `FixAtoms` atom
//!   under a cell filter): a frozen far field that stayed put in Cartesian
//!   space while the cell around it shrank would be compressed against its
//!   own periodic images.
//! * The prediction is defined up to a rigid translation (the network keeps
//!   each crystal's mean fractional coordinate); frozen atoms pin that
//!   gauge. Along every frozen axis the prediction is first shifted so
//!   that the frozen atoms' mean predicted displacement is zero, then their
//!   own displacement is dropped: the free atoms keep their predicted
//!   positions *relative to the frozen ones*, which is what a constrained
//!   relaxation relaxes.
//!
//! Axes: a flag refers to a Cartesian axis ([`AxisFrame::Cartesian`]: ASE,
//! Quantum ESPRESSO, LAMMPS) or to a lattice vector, i.e. it freezes one
//! fractional coordinate ([`AxisFrame::Lattice`]: VASP, pymatgen). For an
//! atom frozen on all three axes the two mean the same.
//!
//! Symmetrisation uses only the operations that map frozen atoms onto
//! atoms frozen the same way (see [`crate::symmetry`]).

use crate::error::{Error, Result};
use crate::linalg::{self, Mat3, Vec3};
use crate::structure::Structure;

/// The axes that per-axis move flags refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AxisFrame {
    /// Flag k is Cartesian axis k (ASE `FixCartesian`, QE `if_pos`).
    #[default]
    Cartesian,
    /// Flag k is lattice vector k: it freezes fractional coordinate k
    /// (VASP selective dynamics, pymatgen `selective_dynamics`).
    Lattice,
}

impl std::str::FromStr for AxisFrame {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cartesian" => Ok(AxisFrame::Cartesian),
            "lattice" => Ok(AxisFrame::Lattice),
            other => Err(Error::InvalidArgument(format!(
                "unknown move-mask axes '{other}' (expected \"cartesian\" or \"lattice\")"
            ))),
        }
    }
}

/// Whether flag `axis` of a partly frozen atom means the same in both
/// frames for this lattice: reciprocal vector `axis` (the direction a
/// fractional coordinate measures) is parallel to Cartesian axis `axis`.
pub fn frames_agree_on_axis(lattice: &Mat3, axis: usize) -> bool {
    let inverse = linalg::inverse(lattice).expect("validated lattice");
    let column: Vec3 = [inverse[0][axis], inverse[1][axis], inverse[2][axis]];
    let off: f64 = (0..3)
        .filter(|&k| k != axis)
        .map(|k| column[k] * column[k])
        .sum();
    off.sqrt() <= 1e-12 * linalg::norm(column)
}

/// Checks that flags stored in `from` can be written in a format whose
/// flags mean `to`: every partly frozen atom's frozen axes must mean the
/// same in both frames (fully frozen and free atoms always do). The error
/// names the atom.
pub fn check_frame_conversion(s: &Structure, to: AxisFrame, format: &str) -> Result<()> {
    let Some(flags) = &s.selective_dynamics else {
        return Ok(());
    };
    if s.selective_dynamics_axes == to {
        return Ok(());
    }
    for (i, f) in flags.iter().enumerate() {
        let partial = f.iter().any(|&m| m) && f.iter().any(|&m| !m);
        if !partial {
            continue;
        }
        for axis in (0..3).filter(|&k| !f[k]) {
            if !frames_agree_on_axis(&s.lattice, axis) {
                let (have, want) = match to {
                    AxisFrame::Cartesian => ("lattice vector", "Cartesian axis"),
                    AxisFrame::Lattice => ("Cartesian axis", "lattice vector"),
                };
                return Err(Error::InvalidArgument(format!(
                    "atom {} is frozen along {have} {} only; {format} flags refer to {want}s, which differ in this cell: the constraint cannot be written without changing its meaning",
                    i + 1,
                    axis + 1
                )));
            }
        }
    }
    Ok(())
}

/// True when some coordinate of `s` is frozen.
pub fn has_frozen(s: &Structure) -> bool {
    s.selective_dynamics
        .as_ref()
        .is_some_and(|flags| flags.iter().flatten().any(|&m| !m))
}

/// Returns `predicted` (a prediction for `input`, same atoms) with the
/// input's frozen coordinates honoured as described in the module docs.
/// With `fixed_cell` the lattice is the input's and frozen coordinates are
/// copied bit for bit.
pub fn honour(input: &Structure, mut predicted: Structure, fixed_cell: bool) -> Structure {
    if fixed_cell {
        // Bit for bit, also where a path (a trust policy, the line search)
        // rebuilt the cell from the input's and its strain, zero up to
        // round-off.
        predicted.lattice = input.lattice;
    }
    let Some(flags) = input
        .selective_dynamics
        .as_ref()
        .filter(|_| has_frozen(input))
    else {
        return predicted;
    };
    // The input's with `fixed_cell` (set above).
    let lattice = predicted.lattice;
    // Where each atom goes if it only follows the cell: x D, D = L^-1 L'.
    let carried: Vec<Vec3> = if fixed_cell {
        input.positions.clone()
    } else {
        let deformation = linalg::matmul(
            &linalg::inverse(&input.lattice).expect("validated lattice"),
            &lattice,
        );
        input
            .positions
            .iter()
            .map(|&x| linalg::vec_mat(x, &deformation))
            .collect()
    };
    // Displacements beyond the cell's deformation, in the flags' frame.
    let inverse = linalg::inverse(&lattice).expect("predicted lattice is checked");
    let to_frame = |u: Vec3| match input.selective_dynamics_axes {
        AxisFrame::Cartesian => u,
        AxisFrame::Lattice => linalg::vec_mat(u, &inverse),
    };
    let from_frame = |u: Vec3| match input.selective_dynamics_axes {
        AxisFrame::Cartesian => u,
        AxisFrame::Lattice => linalg::vec_mat(u, &lattice),
    };
    let mut displacement: Vec<Vec3> = predicted
        .positions
        .iter()
        .zip(&carried)
        .map(|(&p, &c)| to_frame(linalg::sub(p, c)))
        .collect();
    // The frozen atoms pin the translation gauge, axis by axis.
    for axis in 0..3 {
        let frozen: Vec<f64> = flags
            .iter()
            .zip(&displacement)
            .filter(|(f, _)| !f[axis])
            .map(|(_, u)| u[axis])
            .collect();
        if frozen.is_empty() {
            continue;
        }
        let shift = frozen.iter().sum::<f64>() / frozen.len() as f64;
        for u in &mut displacement {
            u[axis] -= shift;
        }
    }
    for ((position, &c), (f, u)) in predicted
        .positions
        .iter_mut()
        .zip(&carried)
        .zip(flags.iter().zip(&mut displacement))
    {
        if f.iter().all(|&m| !m) {
            *position = c;
            continue;
        }
        for axis in 0..3 {
            if !f[axis] {
                u[axis] = 0.0;
            }
        }
        let moved = from_frame(*u);
        *position = match input.selective_dynamics_axes {
            // Adding an exact 0.0 leaves a frozen Cartesian component as
            // it was carried (as given, with a fixed cell).
            AxisFrame::Cartesian => [0, 1, 2].map(|k| if f[k] { c[k] + moved[k] } else { c[k] }),
            AxisFrame::Lattice => linalg::add(c, moved),
        };
    }
    predicted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crystal() -> Structure {
        let lattice = [[4.0, 0.0, 0.0], [1.0, 4.5, 0.0], [0.3, -0.2, 5.0]];
        let positions = vec![
            [0.0, 0.0, 0.0],
            [2.1, 1.9, 2.4],
            [1.2, 3.1, 1.0],
            [3.3, 0.8, 3.9],
        ];
        let mut s = Structure::new(lattice, positions, vec![14, 8, 8, 14]).unwrap();
        s.selective_dynamics = Some(vec![[false; 3], [true; 3], [true, true, false], [true; 3]]);
        s
    }

    /// A prediction: a rigid shift of everything plus a small own move of
    /// each atom, in a strained cell.
    fn predicted(s: &Structure, fixed_cell: bool) -> Structure {
        let mut p = s.clone();
        if !fixed_cell {
            p.lattice = linalg::matmul(
                &s.lattice,
                &[[1.02, 0.01, 0.0], [0.01, 0.97, 0.0], [0.0, 0.0, 1.01]],
            );
        }
        let d = linalg::matmul(&linalg::inverse(&s.lattice).unwrap(), &p.lattice);
        for (i, x) in p.positions.iter_mut().enumerate() {
            let own = [0.01 * i as f64, -0.02, 0.03 * (i % 2) as f64];
            *x = linalg::add(
                linalg::add(linalg::vec_mat(*x, &d), [0.05, 0.07, -0.04]),
                own,
            );
        }
        p
    }

    #[test]
    fn fixed_cell_frozen_coordinates_are_bit_for_bit() {
        let s = crystal();
        let out = honour(&s, predicted(&s, true), true);
        assert_eq!(out.positions[0], s.positions[0]);
        assert_eq!(out.positions[2][2].to_bits(), s.positions[2][2].to_bits());
        assert_ne!(out.positions[2][0], s.positions[2][0]);
        assert_ne!(out.positions[1], s.positions[1]);
    }

    #[test]
    fn frozen_atoms_pin_the_translation_and_free_atoms_keep_relative_positions() {
        let s = crystal();
        let p = predicted(&s, true);
        let out = honour(&s, p.clone(), true);
        // Atom 0 is frozen on every axis and atom 2 on z: the x and y
        // shift is atom 0's predicted move, z the mean of atoms 0 and 2.
        let shift = [
            p.positions[0][0] - s.positions[0][0],
            p.positions[0][1] - s.positions[0][1],
            ((p.positions[0][2] - s.positions[0][2]) + (p.positions[2][2] - s.positions[2][2]))
                / 2.0,
        ];
        for i in [1, 3] {
            for (k, shift) in shift.iter().enumerate() {
                let expected = p.positions[i][k] - shift;
                assert!((out.positions[i][k] - expected).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn variable_cell_frozen_atoms_keep_fractional_coordinates() {
        for frame in [AxisFrame::Cartesian, AxisFrame::Lattice] {
            let mut s = crystal();
            s.selective_dynamics_axes = frame;
            let p = predicted(&s, false);
            let out = honour(&s, p.clone(), false);
            assert_eq!(out.lattice, p.lattice);
            let before = s.fractional_positions();
            let after = out.fractional_positions();
            for k in 0..3 {
                assert!((after[0][k] - before[0][k]).abs() < 1e-12, "{frame:?}");
            }
            match frame {
                // Lattice flags: fractional coordinate 3 of atom 2 kept.
                AxisFrame::Lattice => assert!((after[2][2] - before[2][2]).abs() < 1e-12),
                // Cartesian flags: z of atom 2 follows the cell only.
                AxisFrame::Cartesian => {
                    let d = linalg::matmul(&linalg::inverse(&s.lattice).unwrap(), &p.lattice);
                    let carried = linalg::vec_mat(s.positions[2], &d);
                    assert_eq!(out.positions[2][2], carried[2]);
                }
            }
        }
    }

    #[test]
    fn no_frozen_atoms_leave_the_prediction_alone() {
        let mut s = crystal();
        s.selective_dynamics = Some(vec![[true; 3]; 4]);
        let p = predicted(&s, false);
        assert_eq!(honour(&s, p.clone(), false), p);
    }

    #[test]
    fn frames_agree_only_where_reciprocal_vectors_lie_on_the_axes() {
        let hexagonal = [[3.0, 0.0, 0.0], [-1.5, 2.598, 0.0], [0.0, 0.0, 20.0]];
        // z: c is along z and a, b lie in the plane: freezing z is freezing
        // the third fractional coordinate.
        assert!(frames_agree_on_axis(&hexagonal, 2));
        assert!(!frames_agree_on_axis(&hexagonal, 0));
        let mut s = Structure::new(hexagonal, vec![[0.0; 3], [1.0, 1.0, 2.0]], vec![6, 6]).unwrap();
        s.selective_dynamics = Some(vec![[true, true, false], [true; 3]]);
        s.selective_dynamics_axes = AxisFrame::Lattice;
        assert!(check_frame_conversion(&s, AxisFrame::Cartesian, "extxyz").is_ok());
        s.selective_dynamics = Some(vec![[false, true, true], [false; 3]]);
        let err = check_frame_conversion(&s, AxisFrame::Cartesian, "extended XYZ move_mask")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("atom 1") && err.contains("lattice vector 1"),
            "{err}"
        );
    }
}
