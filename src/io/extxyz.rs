//! Extended XYZ as ASE writes it: a count line, a comment line of
//! `key=value` pairs (`Lattice="..."`, `Properties=species:S:1:pos:R:3...`,
//! other info keys, `pbc="T T T"`), then one line per atom. Multi-frame files
//! are frames back to back. Info keys and extra per-atom columns are kept;
//! a `move_mask:L:3` (or `:L:1`) column carries selective dynamics, as ASE
//! writes constraints.

use crate::elements;
use crate::error::{Error, Result};
use crate::structure::{AtomProperty, Structure};

/// Splits the comment line into `(key, value)` pairs. Quoted values may hold
/// spaces and `\"` escapes; a bare key means `T` (as in ASE).
fn parse_key_values(line: &str, line_no: usize) -> Result<Vec<(String, String)>> {
    let err = |m: String| Error::format(Some(line_no), m);
    let chars: Vec<char> = line.chars().collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    let read_token = |i: &mut usize, stop_at_equals: bool| -> Result<String> {
        let mut out = String::new();
        if chars.get(*i) == Some(&'"') {
            *i += 1;
            loop {
                match chars.get(*i) {
                    None => return Err(err(format!("unterminated quote in comment line: {line}"))),
                    Some('\\') if *i + 1 < chars.len() => {
                        out.push(chars[*i + 1]);
                        *i += 2;
                    }
                    Some('"') => {
                        *i += 1;
                        break;
                    }
                    Some(c) => {
                        out.push(*c);
                        *i += 1;
                    }
                }
            }
        } else if matches!(chars.get(*i), Some('{') | Some('[')) && !stop_at_equals {
            let close = if chars[*i] == '{' { '}' } else { ']' };
            let start = *i;
            while *i < chars.len() && chars[*i] != close {
                *i += 1;
            }
            if *i == chars.len() {
                return Err(err(format!(
                    "unterminated '{}' in comment line",
                    chars[start]
                )));
            }
            *i += 1;
            let inner: String = chars[start + 1..*i - 1].iter().collect();
            // ASE reads [1, 2, 3] and {1 2 3} as arrays; keep the numbers.
            out = inner
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
        } else {
            while *i < chars.len()
                && !chars[*i].is_whitespace()
                && !(stop_at_equals && chars[*i] == '=')
            {
                out.push(chars[*i]);
                *i += 1;
            }
        }
        Ok(out)
    };
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let key = read_token(&mut i, true)?;
        while i < chars.len()
            && chars[i].is_whitespace()
            && chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&'=')
        {
            i += 1;
        }
        if chars.get(i) == Some(&'=') {
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let value = read_token(&mut i, false)?;
            pairs.push((key, value));
        } else {
            pairs.push((key, "T".to_string()));
        }
    }
    Ok(pairs)
}

struct Column {
    name: String,
    kind: char,
    count: usize,
}

fn parse_properties(spec: &str, line_no: usize) -> Result<Vec<Column>> {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() % 3 != 0 || parts.is_empty() {
        return Err(Error::format(
            Some(line_no),
            format!("Properties={spec} is not a list of name:type:count triples"),
        ));
    }
    parts
        .chunks(3)
        .map(|c| {
            let kind = match c[1] {
                "S" | "R" | "I" | "L" => c[1].chars().next().unwrap(),
                other => {
                    return Err(Error::format(
                        Some(line_no),
                        format!(
                            "property '{}' has unknown type '{other}' (expected S, R, I or L)",
                            c[0]
                        ),
                    ))
                }
            };
            // Real files have a handful of columns; the bound keeps a corrupt
            // count from sizing an allocation.
            let count = c[2]
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0 && n <= 1000)
                .ok_or_else(|| {
                    Error::format(
                        Some(line_no),
                        format!("property '{}' has bad column count '{}'", c[0], c[2]),
                    )
                })?;
            Ok(Column {
                name: c[0].to_string(),
                kind,
                count,
            })
        })
        .collect()
}

fn parse_bool(token: &str) -> Option<bool> {
    match token {
        "T" | "True" | "true" | "TRUE" | "1" => Some(true),
        "F" | "False" | "false" | "FALSE" | "0" => Some(false),
        _ => None,
    }
}

/// Checks a `pbc=` value (three or one of T/F/True/False, any case). A
/// frame periodic along no axis is a molecule or cluster, which e3relax
/// does not relax; partly periodic frames (slabs: `T T F`) are relaxed in
/// their cell as given and keep their `pbc` on output.
fn check_periodicity(value: &str, line: usize) -> Result<()> {
    let flags: Vec<Option<bool>> = value
        .split_whitespace()
        .map(|t| match t.to_ascii_lowercase().as_str() {
            "t" | "true" | "1" => Some(true),
            "f" | "false" | "0" => Some(false),
            _ => None,
        })
        .collect();
    if !(flags.len() == 3 || flags.len() == 1) || flags.iter().any(Option::is_none) {
        return Err(Error::format(
            Some(line),
            format!("pbc=\"{value}\" is not three of T/F"),
        ));
    }
    if flags.iter().all(|f| *f == Some(false)) {
        return Err(Error::format(
            Some(line),
            format!(
                "pbc=\"{value}\": the frame is not periodic (a molecule or cluster); e3relax relaxes periodic crystals, so give pbc=\"T T T\" with a cell, or \"T T F\" for a slab"
            ),
        ));
    }
    Ok(())
}

fn parse_frame(lines: &[&str], first_line: usize, natoms: usize) -> Result<Structure> {
    let comment_no = first_line + 1;
    let pairs = parse_key_values(lines[1], comment_no)?;
    let mut lattice = None;
    let mut properties = None;
    let mut info = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "Lattice" => {
                let numbers: Vec<f64> = value
                    .split_whitespace()
                    .map(|t| t.parse::<f64>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| {
                        Error::format(
                            Some(comment_no),
                            format!("Lattice=\"{value}\" holds a non-number"),
                        )
                    })?;
                if numbers.len() != 9 {
                    return Err(Error::format(
                        Some(comment_no),
                        format!("Lattice= needs 9 numbers, found {}", numbers.len()),
                    ));
                }
                lattice = Some([
                    [numbers[0], numbers[1], numbers[2]],
                    [numbers[3], numbers[4], numbers[5]],
                    [numbers[6], numbers[7], numbers[8]],
                ]);
            }
            "Properties" => properties = Some(parse_properties(&value, comment_no)?),
            "pbc" => {
                check_periodicity(&value, comment_no)?;
                info.push((key, value));
            }
            _ => info.push((key, value)),
        }
    }
    let lattice = lattice.ok_or_else(|| {
        Error::format(
            Some(comment_no),
            "no Lattice= in the comment line: e3relax needs a periodic cell",
        )
    })?;
    let columns = properties.unwrap_or_else(|| {
        vec![
            Column {
                name: "species".into(),
                kind: 'S',
                count: 1,
            },
            Column {
                name: "pos".into(),
                kind: 'R',
                count: 3,
            },
        ]
    });
    let total_columns: usize = columns.iter().map(|c| c.count).sum();
    let mut positions = vec![[0.0; 3]; natoms];
    let mut numbers = vec![0u32; natoms];
    let mut have_pos = false;
    let mut have_species = false;
    let mut move_mask: Option<Vec<[bool; 3]>> = None;
    let mut extra: Vec<AtomProperty> = Vec::new();
    for col in &columns {
        match (col.name.as_str(), col.kind, col.count) {
            ("pos", 'R', 3) => have_pos = true,
            ("species", 'S', 1) | ("Z", 'I', 1) => have_species = true,
            ("move_mask", 'L', 1 | 3) => move_mask = Some(vec![[true; 3]; natoms]),
            ("pos" | "species" | "Z" | "move_mask", _, _) => {
                return Err(Error::format(
                    Some(comment_no),
                    format!(
                        "property {}:{}:{} has an unexpected type or width",
                        col.name, col.kind, col.count
                    ),
                ))
            }
            _ => extra.push(AtomProperty {
                name: col.name.clone(),
                kind: col.kind,
                columns: col.count,
                values: Vec::with_capacity(natoms * col.count),
            }),
        }
    }
    if !have_pos || !have_species {
        return Err(Error::format(
            Some(comment_no),
            "Properties= must contain pos:R:3 and species:S:1 (or Z:I:1)",
        ));
    }
    for atom in 0..natoms {
        let line_no = first_line + 2 + atom;
        let tokens: Vec<&str> = lines[2 + atom].split_whitespace().collect();
        if tokens.len() != total_columns {
            return Err(Error::format(
                Some(line_no),
                format!(
                    "expected {total_columns} columns for atom {}, found {}",
                    atom + 1,
                    tokens.len()
                ),
            ));
        }
        let mut at = 0;
        let mut extra_index = 0;
        for col in &columns {
            let cells = &tokens[at..at + col.count];
            at += col.count;
            match col.name.as_str() {
                "pos" => {
                    for (a, t) in cells.iter().enumerate() {
                        positions[atom][a] = t.parse().map_err(|_| {
                            Error::format(
                                Some(line_no),
                                format!("position '{t}' of atom {} is not a number", atom + 1),
                            )
                        })?;
                    }
                }
                "species" => {
                    numbers[atom] = elements::atomic_number(cells[0]).ok_or_else(|| {
                        Error::format(
                            Some(line_no),
                            format!(
                                "unknown element '{}' for atom {} (species are chemical symbols: Fe, O, ...)",
                                cells[0],
                                atom + 1
                            ),
                        )
                    })?;
                }
                "Z" => {
                    numbers[atom] = cells[0].parse().map_err(|_| {
                        Error::format(
                            Some(line_no),
                            format!(
                                "atomic number '{}' of atom {} is not an integer",
                                cells[0],
                                atom + 1
                            ),
                        )
                    })?;
                }
                "move_mask" => {
                    let flags: Vec<bool> = cells
                        .iter()
                        .map(|t| parse_bool(t))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            Error::format(
                                Some(line_no),
                                format!("move_mask of atom {} is not T/F", atom + 1),
                            )
                        })?;
                    let mask = move_mask.as_mut().unwrap();
                    mask[atom] = if flags.len() == 1 {
                        [flags[0]; 3]
                    } else {
                        [flags[0], flags[1], flags[2]]
                    };
                }
                _ => {
                    extra[extra_index]
                        .values
                        .extend(cells.iter().map(|s| s.to_string()));
                    extra_index += 1;
                }
            }
        }
    }
    let mut structure = Structure::new_unchecked(lattice, positions, numbers);
    if let Some(pos) = info.iter().position(|(k, _)| k == "id") {
        structure.id = Some(info.remove(pos).1);
    }
    structure.info = info;
    structure.atom_properties = extra;
    structure.selective_dynamics = move_mask;
    Ok(structure)
}

/// Reads every frame of an extended XYZ text. Frames are not validated here
/// (see [`crate::io::read_file`]).
pub fn read(text: &str) -> Result<Vec<Structure>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut frames = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        let natoms: usize = lines[i].trim().parse().map_err(|_| {
            Error::format(
                Some(i + 1),
                format!(
                    "expected an atom count at the start of frame {}, found '{}'",
                    frames.len() + 1,
                    lines[i].trim()
                ),
            )
        })?;
        if lines.len() < i + 2 || natoms > lines.len() - (i + 2) {
            return Err(Error::format(
                Some(i + 1),
                format!(
                    "frame {} announces {natoms} atoms but the file ends after {} more lines",
                    frames.len() + 1,
                    lines.len() - i - 1
                ),
            ));
        }
        frames.push(parse_frame(&lines[i..i + 2 + natoms], i + 1, natoms)?);
        i += 2 + natoms;
    }
    Ok(frames)
}

/// Quotes an info value the way ASE does when it needs it.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c == '\\');
    if plain {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Writes frames as extended XYZ. Numbers are written in Rust's shortest
/// round-trip form, so reading the file back gives the same `f64`s.
pub fn write(frames: &[Structure]) -> Result<String> {
    let mut out = String::new();
    for s in frames {
        crate::frozen::check_frame_conversion(
            s,
            crate::frozen::AxisFrame::Cartesian,
            "extended XYZ move_mask",
        )?;
        out.push_str(&format!("{}\n", s.natoms()));
        let lattice: Vec<String> = s.lattice.iter().flatten().map(|v| v.to_string()).collect();
        let mut props = String::from("species:S:1:pos:R:3");
        for p in &s.atom_properties {
            props.push_str(&format!(":{}:{}:{}", p.name, p.kind, p.columns));
        }
        if s.selective_dynamics.is_some() {
            props.push_str(":move_mask:L:3");
        }
        out.push_str(&format!(
            "Lattice=\"{}\" Properties={props}",
            lattice.join(" ")
        ));
        if let Some(id) = &s.id {
            out.push_str(&format!(" id={}", quote(id)));
        }
        for (k, v) in &s.info {
            out.push_str(&format!(" {}={}", quote(k), quote(v)));
        }
        if s.info_value("pbc").is_none() {
            out.push_str(" pbc=\"T T T\"");
        }
        out.push('\n');
        for (atom, (z, p)) in s.numbers.iter().zip(&s.positions).enumerate() {
            let symbol = elements::symbol(*z).unwrap_or("X");
            out.push_str(&format!(
                "{symbol:<2} {:>22} {:>22} {:>22}",
                p[0], p[1], p[2]
            ));
            for prop in &s.atom_properties {
                for v in &prop.values[atom * prop.columns..(atom + 1) * prop.columns] {
                    out.push_str(&format!(" {v:>12}"));
                }
            }
            if let Some(flags) = &s.selective_dynamics {
                for f in flags[atom] {
                    out.push_str(if f { " T" } else { " F" });
                }
            }
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASE_FRAME: &str = r#"2
Lattice="4.0 0.0 0.0 0.1 4.1 0.0 0.2 0.3 4.2" Properties=species:S:1:pos:R:3:forces:R:3 id=abc-1 energy=-3.5 note="two words" flag pbc="T T T"
Na 0.0 0.0 0.0 0.1 0.2 0.3
Cl 2.0 2.05 2.1 -0.1 -0.2 -0.3
"#;

    #[test]
    fn reads_ase_frame_with_info_and_extra_columns() {
        let frames = read(ASE_FRAME).unwrap();
        assert_eq!(frames.len(), 1);
        let s = &frames[0];
        assert_eq!(s.id.as_deref(), Some("abc-1"));
        assert_eq!(s.numbers, vec![11, 17]);
        assert_eq!(s.lattice[1], [0.1, 4.1, 0.0]);
        assert_eq!(s.positions[1], [2.0, 2.05, 2.1]);
        assert_eq!(s.info_value("energy"), Some("-3.5"));
        assert_eq!(s.info_value("note"), Some("two words"));
        assert_eq!(s.info_value("flag"), Some("T"));
        assert_eq!(s.atom_properties[0].name, "forces");
        assert_eq!(s.atom_properties[0].values[3], "-0.1");
    }

    #[test]
    fn write_then_read_is_lossless() {
        let mut frames = read(ASE_FRAME).unwrap();
        frames[0].positions[0] = [1.0 / 3.0, -2e-9, 7.123456789012345];
        frames[0].selective_dynamics = Some(vec![[true, false, true], [false; 3]]);
        frames.push(frames[0].clone());
        frames[1].id = Some("second \"quoted\"".into());
        let text = write(&frames).unwrap();
        let back = read(&text).unwrap();
        assert_eq!(back, frames);
    }

    #[test]
    fn non_periodic_frames_are_refused_and_slabs_kept() {
        let frame = |pbc: &str| {
            format!("1\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3 pbc=\"{pbc}\"\nH 0 0 0\n")
        };
        for pbc in ["F F F", "False False False", "F"] {
            let e = read(&frame(pbc)).unwrap_err().to_string();
            assert!(e.contains("line 2") && e.contains("not periodic"), "{e}");
        }
        let e = read(&frame("T X T")).unwrap_err().to_string();
        assert!(e.contains("is not three of T/F"), "{e}");
        let slab = read(&frame("T T F")).unwrap().remove(0);
        assert!(write(&[slab]).unwrap().contains("pbc=\"T T F\""));
        let e = read("1\nLattice=\"4 0 0 0 4 0 0 0 4\"\nUue 0 0 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown element 'Uue'"), "{e}");
    }

    #[test]
    fn errors_name_the_line() {
        let truncated =
            "3\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3\nH 0 0 0\n";
        assert!(read(truncated)
            .unwrap_err()
            .to_string()
            .contains("announces 3 atoms"));
        let no_cell = "1\nProperties=species:S:1:pos:R:3\nH 0 0 0\n";
        assert!(read(no_cell)
            .unwrap_err()
            .to_string()
            .contains("line 2: no Lattice="));
        let bad_el = "1\nLattice=\"4 0 0 0 4 0 0 0 4\"\nQq 0 0 0\n";
        assert!(read(bad_el)
            .unwrap_err()
            .to_string()
            .contains("line 3: unknown element 'Qq'"));
        let short = "1\nLattice=\"4 0 0 0 4 0 0 0 4\"\nH 0 0\n";
        assert!(read(short)
            .unwrap_err()
            .to_string()
            .contains("expected 4 columns"));
        // Found by fuzzing: huge counts must not size allocations.
        let wide = "1\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3:f:R:99999999999999\nH 0 0 0\n";
        assert!(read(wide)
            .unwrap_err()
            .to_string()
            .contains("bad column count"));
        let many = "18446744073709551615\nLattice=\"4 0 0 0 4 0 0 0 4\"\nH 0 0 0\n";
        assert!(read(many).unwrap_err().to_string().contains("announces"));
        assert!(read("0")
            .unwrap_err()
            .to_string()
            .contains("announces 0 atoms"));
        let bad_count = "x\n";
        assert!(read(bad_count)
            .unwrap_err()
            .to_string()
            .contains("expected an atom count"));
    }
}
