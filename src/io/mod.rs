//! Structure files: format detection, reading (plain or gzip) and writing.
//! Every error names the file, and the line where one is known.

pub mod cif;
pub mod extxyz;
pub mod poscar;

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::structure::{Structure, ValidationOptions};

/// A supported structure file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// VASP POSCAR/CONTCAR (one structure per file).
    Poscar,
    /// Extended XYZ (multi-frame).
    ExtXyz,
    /// CIF (one structure per data block).
    Cif,
}

impl Format {
    /// Parses a `--format` name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "poscar" | "vasp" | "contcar" => Ok(Format::Poscar),
            "extxyz" | "xyz" => Ok(Format::ExtXyz),
            "cif" => Ok(Format::Cif),
            other => Err(Error::InvalidArgument(format!(
                "unknown format '{other}' (expected poscar, extxyz or cif)"
            ))),
        }
    }

    /// Guesses the format from a file name: `*.vasp`, `*.poscar`,
    /// names containing `POSCAR` or `CONTCAR` (as ASE); `*.xyz`, `*.extxyz`; `*.cif`; each optionally
    /// followed by `.gz`.
    pub fn from_path(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let bare = name.strip_suffix(".gz").unwrap_or(&name);
        let lower = bare.to_ascii_lowercase();
        if bare.contains("POSCAR") || bare.contains("CONTCAR") {
            return Ok(Format::Poscar);
        }
        match lower.rsplit_once('.').map(|(_, ext)| ext) {
            Some("vasp") | Some("poscar") | Some("contcar") => Ok(Format::Poscar),
            Some("xyz") | Some("extxyz") => Ok(Format::ExtXyz),
            Some("cif") => Ok(Format::Cif),
            _ => Err(Error::InvalidArgument(format!(
                "{}: cannot tell the format from the file name; use --format poscar|extxyz|cif",
                path.display()
            ))),
        }
    }

    /// Whether one file can hold several structures.
    pub fn is_multi_frame(self) -> bool {
        !matches!(self, Format::Poscar)
    }
}

fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Reads a whole file as text, decompressing `*.gz`.
pub fn read_text(path: &Path) -> Result<String> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(&shown, e))?;
    let bytes = if is_gzip(path) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::io(&shown, e))?;
        out
    } else {
        bytes
    };
    String::from_utf8(bytes).map_err(|e| Error::Format {
        location: crate::error::Location {
            path: Some(shown),
            line: None,
        },
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

/// Parses text of a known format, without validation.
pub fn parse(text: &str, format: Format) -> Result<Vec<Structure>> {
    match format {
        Format::Poscar => poscar::read(text).map(|s| vec![s]),
        Format::ExtXyz => extxyz::read(text),
        Format::Cif => cif::read(text),
    }
}

/// Reads and validates every structure of a file (`format` overrides the
/// guess from its name). Errors name the file and, for a frame that fails
/// validation, the frame.
pub fn read_file(path: &Path, format: Option<Format>) -> Result<Vec<Structure>> {
    read_file_with(path, format, &ValidationOptions::default())
}

/// Parses every structure of a file without validating them (for callers
/// that check each one themselves); parse errors name the file.
pub fn read_file_unvalidated(path: &Path, format: Option<Format>) -> Result<Vec<Structure>> {
    let shown = path.display().to_string();
    let format = match format {
        Some(f) => f,
        None => Format::from_path(path)?,
    };
    let text = read_text(path)?;
    let frames = parse(&text, format).map_err(|e| e.in_file(&shown))?;
    if frames.is_empty() {
        return Err(Error::format(None, "the file holds no structure").in_file(&shown));
    }
    Ok(frames)
}

/// [`read_file`] with explicit validation limits.
pub fn read_file_with(
    path: &Path,
    format: Option<Format>,
    validation: &ValidationOptions,
) -> Result<Vec<Structure>> {
    let shown = path.display().to_string();
    let frames = read_file_unvalidated(path, format)?;
    for (index, s) in frames.iter().enumerate() {
        s.validate_with(validation).map_err(|e| match e {
            Error::InvalidStructure(m) => {
                Error::format(None, format!("{}: {m}", s.label(index))).in_file(&shown)
            }
            other => other,
        })?;
    }
    Ok(frames)
}

/// Renders structures in a format. POSCAR holds one structure.
pub fn render(frames: &[Structure], format: Format) -> Result<String> {
    match format {
        Format::Poscar => match frames {
            [one] => Ok(poscar::write(one)),
            _ => Err(Error::InvalidArgument(format!(
                "POSCAR holds one structure, but there are {}; write extxyz or cif instead",
                frames.len()
            ))),
        },
        Format::ExtXyz => Ok(extxyz::write(frames)),
        Format::Cif => Ok(cif::write(frames)),
    }
}

/// Writes structures atomically (temporary file, then rename), gzip for
/// `*.gz`, so a failed run never leaves a half-written file behind.
pub fn write_file(path: &Path, frames: &[Structure], format: Option<Format>) -> Result<()> {
    let shown = path.display().to_string();
    let format = match format {
        Some(f) => f,
        None => Format::from_path(path)?,
    };
    let text = render(frames, format).map_err(|e| match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{shown}: {m}")),
        other => other,
    })?;
    let bytes = if is_gzip(path) {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder
            .write_all(text.as_bytes())
            .map_err(|e| Error::io(&shown, e))?;
        encoder.finish().map_err(|e| Error::io(&shown, e))?
    } else {
        text.into_bytes()
    };
    write_atomically(path, &bytes)
}

/// Writes bytes to a sibling temporary file and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let shown = path.display().to_string();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{shown}: not a file name")))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&shown, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_names() {
        let f = |p: &str| Format::from_path(Path::new(p)).unwrap();
        assert_eq!(f("run/POSCAR"), Format::Poscar);
        assert_eq!(f("CONTCAR_relaxed"), Format::Poscar);
        assert_eq!(f("relaxed_POSCAR"), Format::Poscar);
        assert_eq!(f("x.vasp"), Format::Poscar);
        assert_eq!(f("a.extxyz.gz"), Format::ExtXyz);
        assert_eq!(f("a.XYZ"), Format::ExtXyz);
        assert_eq!(f("b.cif"), Format::Cif);
        assert!(Format::from_path(Path::new("b.txt"))
            .unwrap_err()
            .to_string()
            .contains("--format"));
        assert!(Format::from_name("pdb").is_err());
    }

    #[test]
    fn gzip_round_trip_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = Structure::new(
            [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]],
            vec![[0.0; 3]],
            vec![29],
        )
        .unwrap();
        let path = dir.path().join("one.extxyz.gz");
        write_file(&path, &[s.clone(), s.clone()], None).unwrap();
        let back = read_file(&path, None).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].positions, s.positions);

        let bad = dir.path().join("bad.xyz");
        std::fs::write(&bad, "1\nLattice=\"3 0 0 0 3 0 0 0 3\"\nCu nan 0 0\n").unwrap();
        let e = read_file(&bad, None).unwrap_err().to_string();
        assert!(e.starts_with(&bad.display().to_string()), "{e}");
        assert!(
            e.contains("frame 1: position of atom 1 is not finite"),
            "{e}"
        );

        let missing = read_file(&dir.path().join("none.cif"), None)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("none.cif") && missing.contains("No such file"),
            "{missing}"
        );

        let two = write_file(&dir.path().join("POSCAR"), &[s.clone(), s], None).unwrap_err();
        assert!(two.to_string().contains("POSCAR holds one structure"));
    }
}
