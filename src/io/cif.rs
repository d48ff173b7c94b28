//! CIF: reads cell parameters and fractional sites, expands the symmetry
//! operations and merges the duplicates they make; writes P1. Partial
//! occupancy (disorder) is rejected with a message naming the site. A file
//! may hold several data blocks (one structure each).
//!
//! Reading gives the lattice in the standard orientation of
//! [`lattice_from_parameters`] (a along x, b in the xy plane): a CIF stores
//! no orientation.

use std::collections::HashMap;

use crate::elements;
use crate::error::{Error, Result};
use crate::linalg::{self, Vec3};
use crate::structure::{check_lattice_parameters, lattice_from_parameters, Structure};

/// Two symmetry images closer than this (fractional, per axis, nearest
/// image) are one site: CIFs round coordinates to ~4 decimals.
const MERGE_TOLERANCE: f64 = 1e-3;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Data(String),
    Loop,
    Tag(String),
    Value(String),
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>> {
    let mut tokens = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut l = 0;
    while l < lines.len() {
        let line = lines[l];
        if let Some(first) = line.strip_prefix(';') {
            // Multi-line text field, closed by a line starting with ';'.
            let start = l;
            let mut field = vec![first];
            l += 1;
            while l < lines.len() && !lines[l].starts_with(';') {
                field.push(lines[l]);
                l += 1;
            }
            if l == lines.len() {
                return Err(Error::format(
                    Some(start + 1),
                    "text field opened with ';' is never closed",
                ));
            }
            tokens.push((Token::Value(field.join("\n").trim().to_string()), start + 1));
            l += 1;
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
            } else if c == '#' {
                break;
            } else if c == '\'' || c == '"' {
                // A quote closes only when followed by whitespace or the end.
                let mut j = i + 1;
                while j < chars.len()
                    && !(chars[j] == c && chars.get(j + 1).is_none_or(|n| n.is_whitespace()))
                {
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(Error::format(
                        Some(l + 1),
                        format!("unterminated {c}-quoted value"),
                    ));
                }
                tokens.push((Token::Value(chars[i + 1..j].iter().collect()), l + 1));
                i = j + 1;
            } else {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let lower = word.to_ascii_lowercase();
                let token = if lower.starts_with("data_") {
                    Token::Data(word[5..].to_string())
                } else if lower == "loop_" {
                    Token::Loop
                } else if word.starts_with('_') {
                    Token::Tag(lower)
                } else {
                    Token::Value(word)
                };
                tokens.push((token, l + 1));
            }
        }
        l += 1;
    }
    Ok(tokens)
}

/// One data block: every tag with its values (one for a plain item, one per
/// row for a loop column) and the line of its first value.
struct Block {
    name: String,
    line: usize,
    items: HashMap<String, (Vec<String>, usize)>,
}

fn parse_blocks(tokens: &[(Token, usize)]) -> Result<Vec<Block>> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut i = 0;
    let current = |blocks: &mut Vec<Block>, line: usize| -> Result<usize> {
        if blocks.is_empty() {
            return Err(Error::format(
                Some(line),
                "data before the first data_ block",
            ));
        }
        Ok(blocks.len() - 1)
    };
    while i < tokens.len() {
        let (token, line) = &tokens[i];
        match token {
            Token::Data(name) => {
                blocks.push(Block {
                    name: name.clone(),
                    line: *line,
                    items: HashMap::new(),
                });
                i += 1;
            }
            Token::Tag(tag) => {
                let b = current(&mut blocks, *line)?;
                match tokens.get(i + 1) {
                    Some((Token::Value(v), vline)) => {
                        blocks[b]
                            .items
                            .insert(tag.clone(), (vec![v.clone()], *vline));
                        i += 2;
                    }
                    _ => {
                        return Err(Error::format(
                            Some(*line),
                            format!("tag {tag} has no value"),
                        ))
                    }
                }
            }
            Token::Loop => {
                let b = current(&mut blocks, *line)?;
                let mut tags = Vec::new();
                i += 1;
                while let Some((Token::Tag(t), _)) = tokens.get(i) {
                    tags.push(t.clone());
                    i += 1;
                }
                if tags.is_empty() {
                    return Err(Error::format(Some(*line), "loop_ without tags"));
                }
                let mut values = Vec::new();
                let first_value_line = tokens.get(i).map_or(*line, |t| t.1);
                while let Some((Token::Value(v), _)) = tokens.get(i) {
                    values.push(v.clone());
                    i += 1;
                }
                if values.len() % tags.len() != 0 {
                    return Err(Error::format(
                        Some(*line),
                        format!(
                            "loop of {} tags has {} values, not a whole number of rows",
                            tags.len(),
                            values.len()
                        ),
                    ));
                }
                for (k, tag) in tags.iter().enumerate() {
                    let column = values.iter().skip(k).step_by(tags.len()).cloned().collect();
                    blocks[b]
                        .items
                        .insert(tag.clone(), (column, first_value_line));
                }
            }
            Token::Value(v) => {
                return Err(Error::format(
                    Some(*line),
                    format!("value '{v}' without a tag"),
                ));
            }
        }
    }
    Ok(blocks)
}

/// A CIF number: `5.431(2)` is 5.431; `?` and `.` are unknown.
fn cif_number(value: &str) -> Option<f64> {
    let core = value.split('(').next()?.trim();
    if core == "?" || core == "." {
        return None;
    }
    core.parse().ok()
}

/// A symmetry operation `f' = R f + t` on fractional coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymOp {
    pub rotation: [[f64; 3]; 3],
    pub translation: Vec3,
}

impl SymOp {
    pub fn apply(&self, f: Vec3) -> Vec3 {
        [0, 1, 2].map(|a| linalg::dot(self.rotation[a], f) + self.translation[a])
    }
}

fn parse_fraction(s: &str) -> Option<f64> {
    match s.split_once('/') {
        Some((n, d)) => Some(n.parse::<f64>().ok()? / d.parse::<f64>().ok()?),
        None => s.parse().ok(),
    }
}

/// Parses one operation such as `-x+y, 1/2+z, x-y`.
pub fn parse_symop(text: &str) -> Option<SymOp> {
    let parts: Vec<String> = text
        .split(',')
        .map(|p| {
            p.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_lowercase()
        })
        .collect();
    if parts.len() != 3 {
        return None;
    }
    let mut op = SymOp {
        rotation: [[0.0; 3]; 3],
        translation: [0.0; 3],
    };
    for (row, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return None;
        }
        // Split into signed terms: "-x+y+1/2" -> ["-x", "+y", "+1/2"].
        let mut terms = Vec::new();
        let mut current = String::new();
        for c in part.chars() {
            if (c == '+' || c == '-') && !current.is_empty() {
                terms.push(std::mem::take(&mut current));
            }
            current.push(c);
        }
        terms.push(current);
        for term in terms {
            let (sign, body) = match term.strip_prefix('-') {
                Some(rest) => (-1.0, rest),
                None => (1.0, term.strip_prefix('+').unwrap_or(&term)),
            };
            let axis = body.find(['x', 'y', 'z']);
            match axis {
                Some(pos) => {
                    let var = body.as_bytes()[pos];
                    let before = body[..pos].trim_end_matches('*');
                    let after = &body[pos + 1..];
                    let mut coef = if before.is_empty() {
                        1.0
                    } else {
                        parse_fraction(before)?
                    };
                    if let Some(d) = after.strip_prefix('/') {
                        coef /= d.parse::<f64>().ok()?;
                    } else if !after.is_empty() {
                        return None;
                    }
                    op.rotation[row][(var - b'x') as usize] += sign * coef;
                }
                None => op.translation[row] += sign * parse_fraction(body)?,
            }
        }
    }
    Some(op)
}

fn block_to_structure(block: &Block) -> Result<Structure> {
    let err = |line: usize, m: String| Error::format(Some(line), m);
    let scalar = |tag: &str| -> Result<f64> {
        let (values, line) = block
            .items
            .get(tag)
            .ok_or_else(|| err(block.line, format!("data_{}: missing {tag}", block.name)))?;
        let value = values
            .first()
            .ok_or_else(|| err(*line, format!("{tag} has no value")))?;
        cif_number(value).ok_or_else(|| err(*line, format!("{tag} '{value}' is not a number")))
    };
    let params = [
        scalar("_cell_length_a")?,
        scalar("_cell_length_b")?,
        scalar("_cell_length_c")?,
        scalar("_cell_angle_alpha")?,
        scalar("_cell_angle_beta")?,
        scalar("_cell_angle_gamma")?,
    ];
    check_lattice_parameters(params).map_err(|m| {
        let line = block
            .items
            .get("_cell_angle_alpha")
            .map_or(block.line, |v| v.1);
        err(line, format!("data_{}: {m}", block.name))
    })?;
    let lattice = lattice_from_parameters(params);

    let symop_tags = [
        "_symmetry_equiv_pos_as_xyz",
        "_space_group_symop_operation_xyz",
        "_space_group_symop.operation_xyz",
    ];
    let ops: Vec<SymOp> = match symop_tags.iter().find_map(|t| block.items.get(*t)) {
        Some((values, line)) if values.is_empty() => {
            return Err(err(*line, "the symmetry-operation loop is empty".into()))
        }
        Some((values, line)) => values
            .iter()
            .map(|v| {
                parse_symop(v)
                    .ok_or_else(|| err(*line, format!("cannot read symmetry operation '{v}'")))
            })
            .collect::<Result<_>>()?,
        None => {
            let group = [
                "_symmetry_space_group_name_h-m",
                "_space_group_name_h-m_alt",
            ]
            .iter()
            .find_map(|t| block.items.get(*t))
            .and_then(|(v, _)| v.first())
            .map(|name| name.replace(' ', ""));
            match group.as_deref() {
                None | Some("P1") => vec![parse_symop("x,y,z").unwrap()],
                Some(g) => {
                    return Err(err(
                        block.line,
                        format!("data_{}: space group {g} is named but its symmetry operations are not listed (_symmetry_equiv_pos_as_xyz)", block.name),
                    ))
                }
            }
        }
    };

    let column = |tag: &str| block.items.get(tag);
    let (fx, line) = column("_atom_site_fract_x").ok_or_else(|| {
        err(
            block.line,
            format!(
                "data_{}: no _atom_site_fract_x loop (Cartesian-only sites are not supported)",
                block.name
            ),
        )
    })?;
    let fy = column("_atom_site_fract_y")
        .ok_or_else(|| err(*line, "missing _atom_site_fract_y".into()))?;
    let fz = column("_atom_site_fract_z")
        .ok_or_else(|| err(*line, "missing _atom_site_fract_z".into()))?;
    let labels = column("_atom_site_label");
    let has_type_symbols = column("_atom_site_type_symbol").is_some();
    let symbols = column("_atom_site_type_symbol").or(labels).ok_or_else(|| {
        err(
            *line,
            "sites have neither _atom_site_type_symbol nor _atom_site_label".into(),
        )
    })?;
    let occupancy = column("_atom_site_occupancy");
    let nsites = fx.len();
    // Every site column, optional ones included, must have one value per
    // site (tags from different loops can disagree).
    let optional = [labels, occupancy].into_iter().flatten().map(|c| c.0.len());
    if [fy.0.len(), fz.0.len(), symbols.0.len()]
        .into_iter()
        .chain(optional)
        .any(|n| n != nsites)
    {
        return Err(err(
            *line,
            "atom site columns have different lengths".into(),
        ));
    }

    let mut fractional: Vec<Vec3> = Vec::new();
    let mut numbers: Vec<u32> = Vec::new();
    let mut site_of: Vec<usize> = Vec::new();
    for site in 0..nsites {
        let name = labels.map_or_else(|| symbols.0[site].clone(), |l| l.0[site].clone());
        if let Some((occ, oline)) = occupancy {
            if let Some(o) = cif_number(&occ[site]) {
                if (o - 1.0).abs() > 1e-3 {
                    return Err(err(
                        *oline,
                        format!("site {name} has occupancy {o}: partially occupied (disordered) sites are not supported"),
                    ));
                }
            }
        }
        let z = if has_type_symbols {
            elements::atomic_number_of_cif_type(&symbols.0[site])
        } else {
            elements::atomic_number_of_cif_label(&symbols.0[site])
        };
        let z = z.ok_or_else(|| {
            err(
                symbols.1,
                format!("site {name}: unknown element '{}'", symbols.0[site]),
            )
        })?;
        let f = [&fx[site], &fy.0[site], &fz.0[site]].map(|v| cif_number(v));
        let f = match f {
            [Some(a), Some(b), Some(c)] => [a, b, c],
            _ => {
                return Err(err(
                    *line,
                    format!("site {name} has a non-numeric fractional coordinate"),
                ))
            }
        };
        for op in &ops {
            let image = op.apply(f).map(|v| v - v.floor());
            let duplicate = fractional.iter().position(|g| {
                (0..3).all(|a| {
                    let d = image[a] - g[a];
                    (d - d.round()).abs() < MERGE_TOLERANCE
                })
            });
            match duplicate {
                Some(k) if numbers[k] == z => {}
                Some(k) => {
                    return Err(err(
                        *line,
                        format!(
                            "site {name} falls on an image of site {} (a different element)",
                            site_of[k] + 1
                        ),
                    ))
                }
                None => {
                    fractional.push(image);
                    numbers.push(z);
                    site_of.push(site);
                }
            }
        }
    }
    let positions = fractional
        .iter()
        .map(|&f| linalg::vec_mat(f, &lattice))
        .collect();
    let mut s = Structure::new_unchecked(lattice, positions, numbers);
    s.id = Some(block.name.clone());
    Ok(s)
}

/// Reads every data block that holds a structure.
pub fn read(text: &str) -> Result<Vec<Structure>> {
    let blocks = parse_blocks(&tokenize(text)?)?;
    if blocks.is_empty() {
        return Err(Error::format(None, "no data_ block"));
    }
    blocks
        .iter()
        .filter(|b| {
            b.items.contains_key("_atom_site_fract_x") || b.items.contains_key("_cell_length_a")
        })
        .map(block_to_structure)
        .collect()
}

/// Writes P1 data blocks (one per structure) with all atoms as sites; the
/// fractional coordinates keep each atom's periodic image.
pub fn write(frames: &[Structure]) -> String {
    let mut out = String::from("# generated by e3relax\n");
    for (index, s) in frames.iter().enumerate() {
        let name: String =
            s.id.clone()
                .unwrap_or_else(|| format!("{}_{}", s.formula(), index + 1))
                .chars()
                .map(|c| if c.is_whitespace() { '_' } else { c })
                .collect();
        let p = s.lattice_parameters();
        out.push_str(&format!("data_{name}\n"));
        let tags = ["a", "b", "c"];
        for (k, t) in tags.iter().enumerate() {
            out.push_str(&format!("_cell_length_{t} {}\n", p[k]));
        }
        for (k, t) in ["alpha", "beta", "gamma"].iter().enumerate() {
            out.push_str(&format!("_cell_angle_{t} {}\n", p[3 + k]));
        }
        out.push_str(&format!("_cell_volume {}\n", s.volume()));
        out.push_str("_symmetry_space_group_name_H-M 'P 1'\n_symmetry_Int_Tables_number 1\n");
        out.push_str("loop_\n_symmetry_equiv_pos_as_xyz\n'x, y, z'\n");
        out.push_str("loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\n");
        // Fractional coordinates in the file's standard orientation equal
        // those in the structure's own lattice.
        for (i, (z, f)) in s.numbers.iter().zip(s.fractional_positions()).enumerate() {
            let sym = elements::symbol(*z).unwrap_or("X");
            out.push_str(&format!(
                "{sym}{} {sym} {} {} {} 1\n",
                i + 1,
                f[0],
                f[1],
                f[2]
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROCKSALT: &str = "data_NaCl
_cell_length_a 5.640(1)
_cell_length_b 5.64
_cell_length_c 5.64
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
'x, y+1/2, z+1/2'
'x+1/2, y, z+1/2'
'x+1/2, y+1/2, z'
'-x, -y, -z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Na1 Na+ 0 0 0 1.0
Cl1 Cl- 0.5 0.5 0.5 1.0
";

    #[test]
    fn symmetry_expansion_merges_duplicates() {
        let s = &read(ROCKSALT).unwrap()[0];
        assert_eq!(s.natoms(), 8);
        assert_eq!(s.numbers.iter().filter(|&&z| z == 11).count(), 4);
        assert!((s.volume() - 5.64f64.powi(3)).abs() < 1e-9);
        assert_eq!(s.id.as_deref(), Some("NaCl"));
    }

    #[test]
    fn symop_parser_handles_common_forms() {
        let op = parse_symop("-x+y, 1/2+z, x-y-0.25").unwrap();
        assert_eq!(
            op.rotation,
            [[-1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, -1.0, 0.0]]
        );
        assert_eq!(op.translation, [0.0, 0.5, -0.25]);
        assert!(parse_symop("x, y").is_none());
        assert!(parse_symop("x, y, w").is_none());
    }

    #[test]
    fn impossible_angles_and_unknown_types_are_errors() {
        let wide = ROCKSALT.replace("_cell_angle_beta 90", "_cell_angle_beta 200");
        let e = read(&wide).unwrap_err().to_string();
        assert!(
            e.contains("beta = 200 degrees must lie strictly between 0 and 180"),
            "{e}"
        );
        let flat = ROCKSALT
            .replace("_cell_angle_alpha 90", "_cell_angle_alpha 60")
            .replace("_cell_angle_beta 90", "_cell_angle_beta 60")
            .replace("_cell_angle_gamma 90", "_cell_angle_gamma 150");
        let e = read(&flat).unwrap_err().to_string();
        assert!(e.contains("do not close into a cell"), "{e}");
        let uue = ROCKSALT.replace("Na1 Na+ ", "Na1 Uue ");
        let e = read(&uue).unwrap_err().to_string();
        assert!(e.contains("unknown element 'Uue'"), "{e}");
    }

    #[test]
    fn partial_occupancy_is_rejected() {
        let text = ROCKSALT.replace("Cl1 Cl- 0.5 0.5 0.5 1.0", "Cl1 Cl- 0.5 0.5 0.5 0.5");
        let e = read(&text).unwrap_err().to_string();
        assert!(e.contains("site Cl1 has occupancy 0.5"), "{e}");
    }

    #[test]
    fn named_group_without_operations_is_an_error() {
        let start = ROCKSALT.find("loop_\n_symmetry").unwrap();
        let end = ROCKSALT.find("loop_\n_atom_site").unwrap();
        let text = format!("{}{}", &ROCKSALT[..start], &ROCKSALT[end..]);
        let e = read(&text).unwrap_err().to_string();
        assert!(
            e.contains("Fm-3m is named but its symmetry operations are not listed"),
            "{e}"
        );
    }

    #[test]
    fn empty_loops_are_errors_not_panics() {
        // Found by fuzzing: a loop whose tags have no values.
        let text = "data_x\nloop_\n_cell_length_a\n_cell_length_b\n";
        let e = read(text).unwrap_err().to_string();
        assert!(e.contains("_cell_length_a has no value"), "{e}");
        let start = ROCKSALT.find("'x, y, z'").unwrap();
        let end = ROCKSALT.find("loop_\n_atom_site").unwrap();
        let empty_ops = format!("{}{}", &ROCKSALT[..start], &ROCKSALT[end..]);
        let e = read(&empty_ops).unwrap_err().to_string();
        assert!(e.contains("symmetry-operation loop is empty"), "{e}");
    }

    #[test]
    fn site_columns_of_different_lengths_are_an_error() {
        // Found by fuzzing: labels from another loop than the coordinates.
        let text = ROCKSALT.to_string() + "loop_\n_atom_site_occupancy\n1.0\n";
        let e = read(&text).unwrap_err().to_string();
        assert!(e.contains("different lengths"), "{e}");
    }

    #[test]
    fn p1_write_read_keeps_cell_and_fractions() {
        let s = read(ROCKSALT).unwrap().remove(0);
        let back = read(&write(std::slice::from_ref(&s))).unwrap().remove(0);
        assert_eq!(back.numbers, s.numbers);
        for (a, b) in back.positions.iter().zip(&s.positions) {
            assert!(linalg::norm(linalg::sub(*a, *b)) < 1e-9);
        }
    }

    #[test]
    fn text_fields_comments_and_quotes() {
        let text = format!(
            "# comment\n{}_publ_section_title\n;\nA 'quoted' title\n;\n_journal_name 'it''s fine'\n",
            ROCKSALT
        );
        assert_eq!(read(&text).unwrap()[0].natoms(), 8);
        let bad = format!("{ROCKSALT}_x\n;\nnever closed\n");
        assert!(read(&bad).unwrap_err().to_string().contains("never closed"));
    }
}
