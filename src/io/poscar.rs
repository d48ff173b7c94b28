//! VASP POSCAR / CONTCAR (VASP 5 with a species line; VASP 4 files whose
//! comment line names the species, as ASE writes them, are read too).
//! Direct and Cartesian coordinates, one scale factor (negative = target
//! volume) or three per-axis factors, selective dynamics kept. A file holds
//! one structure.

use crate::elements;
use crate::error::{Error, Result};
use crate::linalg;
use crate::structure::Structure;

fn numbers(line: &str, line_no: usize, what: &str) -> Result<Vec<f64>> {
    line.split_whitespace()
        .map(|t| {
            t.parse::<f64>()
                .map_err(|_| Error::format(Some(line_no), format!("{what}: '{t}' is not a number")))
        })
        .collect()
}

pub fn read(text: &str) -> Result<Structure> {
    let lines: Vec<&str> = text.lines().collect();
    let line = |i: usize, what: &str| -> Result<&str> {
        lines.get(i).copied().ok_or_else(|| {
            Error::format(Some(i + 1), format!("file ends where the {what} should be"))
        })
    };
    let comment = line(0, "comment line")?.trim().to_string();
    let scale = numbers(line(1, "scale factor")?, 2, "scale factor")?;
    let mut lattice = [[0.0; 3]; 3];
    for (a, row) in lattice.iter_mut().enumerate() {
        let v = numbers(line(2 + a, "lattice")?, 3 + a, "lattice vector")?;
        if v.len() < 3 {
            return Err(Error::format(
                Some(3 + a),
                "a lattice vector needs 3 numbers",
            ));
        }
        *row = [v[0], v[1], v[2]];
    }
    // Line 6 is the species line (VASP 5) unless it already holds counts.
    let mut next = 5;
    let first: Vec<&str> = line(next, "species or counts line")?
        .split_whitespace()
        .collect();
    let species_line = first.first().is_some_and(|t| t.parse::<usize>().is_err());
    let symbols: Vec<&str> = if species_line {
        next += 1;
        first
    } else {
        Vec::new()
    };
    let counts: Vec<usize> = line(next, "atom counts")?
        .split_whitespace()
        .map(|t| {
            t.parse::<usize>().map_err(|_| {
                Error::format(
                    Some(next + 1),
                    format!("atom count '{t}' is not a whole number"),
                )
            })
        })
        .collect::<Result<_>>()?;
    if counts.is_empty() {
        return Err(Error::format(Some(next + 1), "no atom counts"));
    }
    let numbers: Vec<u32> = if species_line {
        // Every entry must be a symbol (a POTCAR suffix allowed): a
        // species is never guessed from a prefix.
        let numbers = symbols
            .iter()
            .map(|sym| {
                elements::atomic_number_of_potcar_label(sym).ok_or_else(|| {
                    Error::format(
                        Some(6),
                        format!("unknown element '{sym}' on the species line"),
                    )
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        if numbers.len() != counts.len() {
            return Err(Error::format(
                Some(7),
                format!(
                    "the species line names {} species but the counts line has {} counts",
                    numbers.len(),
                    counts.len()
                ),
            ));
        }
        numbers
    } else {
        // VASP 4 has no species line. ASE then puts the symbols on the
        // comment line: accepted only when that line is nothing but one
        // symbol per count, so a title is never read as elements.
        let from_comment: Option<Vec<u32>> = comment
            .split_whitespace()
            .map(elements::atomic_number_of_potcar_label)
            .collect();
        match from_comment {
            Some(numbers) if numbers.len() == counts.len() => numbers,
            _ => {
                return Err(Error::format(
                    Some(6),
                    format!(
                        "no species line (VASP 4 format), and the comment line '{}' is not one element symbol per count: the species of the atoms are unknown; add a line of element symbols (VASP 5) above the counts",
                        comment.trim()
                    ),
                ))
            }
        }
    };
    // Counts come from the file: never allocate more atoms than it has lines.
    let total = counts.iter().try_fold(0usize, |acc, &n| acc.checked_add(n));
    if total.is_none_or(|t| t > lines.len()) {
        return Err(Error::format(
            Some(next + 1),
            format!(
                "atom counts {counts:?} exceed the {} lines of the file",
                lines.len()
            ),
        ));
    }
    let mut species = Vec::new();
    for (&z, &n) in numbers.iter().zip(&counts) {
        species.extend(std::iter::repeat_n(z, n));
    }
    next += 1;
    let mut mode = line(next, "coordinate mode")?.trim().to_string();
    let selective = mode.starts_with(['S', 's']);
    if selective {
        next += 1;
        mode = line(next, "coordinate mode")?.trim().to_string();
    }
    let cartesian = mode.starts_with(['C', 'c', 'K', 'k']);
    if !cartesian && !mode.starts_with(['D', 'd']) {
        return Err(Error::format(
            Some(next + 1),
            format!("expected 'Direct' or 'Cartesian', found '{mode}'"),
        ));
    }
    // Scale: one positive factor, a negative target volume, or 3 factors.
    let factors = match scale.as_slice() {
        [s] if *s < 0.0 => {
            let volume = linalg::det(&lattice).abs();
            if volume == 0.0 {
                return Err(Error::format(Some(2), "negative scale (a volume) with a singular lattice"));
            }
            [(-s / volume).cbrt(); 3]
        }
        [s] if *s > 0.0 => [*s; 3],
        [a, b, c] if *a > 0.0 && *b > 0.0 && *c > 0.0 => [*a, *b, *c],
        _ => {
            return Err(Error::format(
                Some(2),
                "the scale factor must be one positive number, one negative volume, or three positive factors",
            ))
        }
    };
    for row in lattice.iter_mut() {
        for (a, v) in row.iter_mut().enumerate() {
            *v *= factors[a];
        }
    }
    let natoms = species.len();
    let mut positions = Vec::with_capacity(natoms);
    let mut flags = Vec::with_capacity(natoms);
    for atom in 0..natoms {
        let line_no = next + 2 + atom;
        let tokens: Vec<&str> = line(next + 1 + atom, "atom coordinates")?
            .split_whitespace()
            .collect();
        let needed = if selective { 6 } else { 3 };
        if tokens.len() < needed {
            return Err(Error::format(
                Some(line_no),
                format!(
                    "atom {} needs {needed} entries, found {}",
                    atom + 1,
                    tokens.len()
                ),
            ));
        }
        let mut v = [0.0; 3];
        for a in 0..3 {
            v[a] = tokens[a].parse().map_err(|_| {
                Error::format(
                    Some(line_no),
                    format!(
                        "coordinate '{}' of atom {} is not a number",
                        tokens[a],
                        atom + 1
                    ),
                )
            })?;
        }
        positions.push(if cartesian {
            [v[0] * factors[0], v[1] * factors[1], v[2] * factors[2]]
        } else {
            linalg::vec_mat(v, &lattice)
        });
        if selective {
            let mut f = [true; 3];
            for a in 0..3 {
                f[a] = match tokens[3 + a] {
                    "T" | "t" => true,
                    "F" | "f" => false,
                    other => {
                        return Err(Error::format(
                            Some(line_no),
                            format!(
                                "selective-dynamics flag '{other}' of atom {} is not T or F",
                                atom + 1
                            ),
                        ))
                    }
                };
            }
            flags.push(f);
        }
    }
    let mut s = Structure::new_unchecked(lattice, positions, species);
    if !comment.is_empty() {
        s.set_info("comment", comment);
    }
    if selective {
        s.selective_dynamics = Some(flags);
        // VASP's flags refer to the lattice vectors.
        s.selective_dynamics_axes = crate::frozen::AxisFrame::Lattice;
    }
    Ok(s)
}

/// Writes a VASP 5 POSCAR in Cartesian coordinates (scale 1). Atom order is
/// kept: a species that reappears later gets a block of its own on the
/// species line, which VASP accepts. The comment line is the id, else the
/// `comment` info key, else the formula.
pub fn write(s: &Structure) -> Result<String> {
    crate::frozen::check_frame_conversion(
        s,
        crate::frozen::AxisFrame::Lattice,
        "POSCAR selective-dynamics",
    )?;
    let mut out = String::new();
    let comment =
        s.id.clone()
            .or_else(|| s.info_value("comment").map(str::to_string))
            .unwrap_or_else(|| s.formula());
    out.push_str(&comment.replace('\n', " "));
    out.push_str("\n1.0\n");
    for row in &s.lattice {
        out.push_str(&format!("  {:>22} {:>22} {:>22}\n", row[0], row[1], row[2]));
    }
    let mut blocks: Vec<(u32, usize)> = Vec::new();
    for &z in &s.numbers {
        match blocks.last_mut() {
            Some((last, n)) if *last == z => *n += 1,
            _ => blocks.push((z, 1)),
        }
    }
    let symbols: Vec<String> = blocks
        .iter()
        .map(|(z, _)| format!("{:>4}", elements::symbol(*z).unwrap_or("X")))
        .collect();
    let counts: Vec<String> = blocks.iter().map(|(_, n)| format!("{n:>4}")).collect();
    out.push_str(&format!("{}\n{}\n", symbols.join(" "), counts.join(" ")));
    if s.selective_dynamics.is_some() {
        out.push_str("Selective dynamics\n");
    }
    out.push_str("Cartesian\n");
    for (atom, p) in s.positions.iter().enumerate() {
        out.push_str(&format!("  {:>22} {:>22} {:>22}", p[0], p[1], p[2]));
        if let Some(flags) = &s.selective_dynamics {
            for f in flags[atom] {
                out.push_str(if f { " T" } else { " F" });
            }
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRECT: &str = "NaCl rocksalt
 5.64
  0.0 0.5 0.5
  0.5 0.0 0.5
  0.5 0.5 0.0
Na Cl
1 1
Direct
0.0 0.0 0.0 Na
0.5 0.5 0.5 Cl
";

    #[test]
    fn reads_direct_with_scale() {
        let s = read(DIRECT).unwrap();
        assert_eq!(s.numbers, vec![11, 17]);
        assert_eq!(s.lattice[0], [0.0, 2.82, 2.82]);
        assert!((s.positions[1][0] - 2.82).abs() < 1e-12);
        assert_eq!(s.info_value("comment"), Some("NaCl rocksalt"));
    }

    #[test]
    fn negative_scale_is_a_volume() {
        let text = DIRECT.replace(" 5.64", " -44.851536");
        let s = read(&text).unwrap();
        assert!((s.volume() - 44.851536).abs() < 1e-9);
        // 5.64^3 / 4 = 44.851536: the same cell as the positive scale.
        assert!((s.lattice[0][1] - 2.82).abs() < 1e-9);
    }

    #[test]
    fn cartesian_selective_dynamics_round_trip() {
        let text = "test
1.0
4 0 0
0 4 0
0 0 4
Fe_pv O
1 2
Selective dynamics
Cartesian
0 0 0 T T F
2 0 0 F F F
0 2 0 T T T
";
        let s = read(text).unwrap();
        assert_eq!(s.numbers, vec![26, 8, 8]);
        assert_eq!(
            s.selective_dynamics.as_ref().unwrap()[0],
            [true, true, false]
        );
        let again = read(&write(&s).unwrap()).unwrap();
        assert_eq!(again.positions, s.positions);
        assert_eq!(again.lattice, s.lattice);
        assert_eq!(again.selective_dynamics, s.selective_dynamics);
    }

    #[test]
    fn unsorted_species_keep_atom_order() {
        let mut s = read(DIRECT).unwrap();
        s.numbers = vec![11, 17];
        s.positions.push([1.0, 1.0, 1.0]);
        s.numbers.push(11);
        let text = write(&s).unwrap();
        assert!(text.contains("Na   Cl   Na"));
        assert_eq!(read(&text).unwrap().numbers, vec![11, 17, 11]);
    }

    #[test]
    fn vasp4_without_symbols_is_rejected_clearly() {
        let text = DIRECT.replace("Na Cl\n", "").replace("NaCl rocksalt", "");
        let e = read(&text).unwrap_err().to_string();
        assert!(e.contains("no species line"), "{e}");
        let vasp4_ase = DIRECT
            .replace("Na Cl\n", "")
            .replace("NaCl rocksalt", "Na Cl");
        assert_eq!(read(&vasp4_ase).unwrap().numbers, vec![11, 17]);
        // A title is never read as elements by prefix ("bulk" is not B,
        // "Relaxed structure" not ReS), nor is a symbol list of the wrong
        // length.
        for title in ["bulk silicon", "Relaxed structure", "Na", "Na Cl O", "NaCl"] {
            let text = DIRECT
                .replace("Na Cl\n", "")
                .replace("NaCl rocksalt", title);
            let e = read(&text).unwrap_err().to_string();
            assert!(
                e.contains("line 6: no species line") && e.contains(title),
                "{e}"
            );
        }
    }

    #[test]
    fn species_lines_hold_only_symbols() {
        for (line, bad) in [
            ("Uue Cl", "Uue"),
            ("Na Chlorine", "Chlorine"),
            ("Na1 Cl", "Na1"),
        ] {
            let text = DIRECT.replace("Na Cl\n", &format!("{line}\n"));
            let e = read(&text).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "line 6: unknown element '{bad}' on the species line"
                )),
                "{e}"
            );
        }
        let three = DIRECT.replace("Na Cl\n", "Na Cl O\n");
        let e = read(&three).unwrap_err().to_string();
        assert!(
            e.contains("names 3 species but the counts line has 2"),
            "{e}"
        );
        let potcar = DIRECT.replace("Na Cl\n", "Na_pv Cl/abc\n");
        assert_eq!(read(&potcar).unwrap().numbers, vec![11, 17]);
    }

    #[test]
    fn absurd_atom_counts_are_an_error_not_an_allocation() {
        // Found by fuzzing: a count of 10^12 must not allocate 10^12 atoms.
        let text = DIRECT.replace("1 1\n", "1 999999999999\n");
        let e = read(&text).unwrap_err().to_string();
        assert!(e.contains("exceed the 10 lines of the file"), "{e}");
        let overflow = DIRECT.replace("1 1\n", "18446744073709551615 1\n");
        assert!(read(&overflow).is_err());
    }

    #[test]
    fn truncated_file_names_what_is_missing() {
        let text: String = DIRECT.lines().take(8).collect::<Vec<_>>().join("\n");
        let e = read(&text).unwrap_err().to_string();
        assert!(
            e.contains("line 9: file ends where the atom coordinates should be"),
            "{e}"
        );
    }
}
