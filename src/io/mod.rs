//! Structure files: format detection, reading (plain or gzip) and writing.
//! Every error names the file, and the line where one is known.

pub mod cif;
pub mod extxyz;
pub mod output;
pub mod poscar;

pub use output::StagedWrites;

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

impl std::str::FromStr for Format {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        Format::from_name(name)
    }
}

deserialize_from_str!(Format);

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

    /// Guesses the format from a file name: by its extension `*.vasp`,
    /// `*.poscar`, `*.contcar`, `*.xyz`, `*.extxyz`, `*.cif` (each
    /// optionally followed by `.gz`), else a name containing `POSCAR` or
    /// `CONTCAR` (as ASE). The extension comes first, so `POSCAR_1.extxyz`
    /// is extended XYZ. Names that are not UTF-8 work the same way.
    pub fn from_path(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bare = name.strip_suffix(".gz").unwrap_or(&name);
        let lower = bare.to_ascii_lowercase();
        if let Some(format) = lower
            .rsplit_once('.')
            .and_then(|(_, ext)| Format::of_extension(ext))
        {
            return Ok(format);
        }
        if bare.contains("POSCAR") || bare.contains("CONTCAR") {
            return Ok(Format::Poscar);
        }
        Err(Error::InvalidArgument(format!(
            "{}: cannot tell the format from the file name; use --format poscar|extxyz|cif",
            path.display()
        )))
    }

    /// The format a (lower-case) file extension names, if any.
    fn of_extension(extension: &str) -> Option<Self> {
        match extension {
            "vasp" | "poscar" | "contcar" => Some(Format::Poscar),
            "xyz" | "extxyz" => Some(Format::ExtXyz),
            "cif" => Some(Format::Cif),
            _ => None,
        }
    }

    /// The file extension this format's outputs get.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Poscar => "vasp",
            Format::ExtXyz => "extxyz",
            Format::Cif => "cif",
        }
    }

    /// The name a file called `input_name` gets when rewritten in this
    /// format: unchanged if it already reads as this format, else its stem
    /// with this format's extension (a `.gz` is kept).
    pub fn output_name(self, input_name: &std::ffi::OsStr) -> std::ffi::OsString {
        if Format::from_path(Path::new(input_name)).ok() == Some(self) {
            return input_name.to_os_string();
        }
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(input_name);
        let (bare, gz) = match bytes.strip_suffix(b".gz") {
            Some(b) => (b, true),
            None => (bytes, false),
        };
        let names_a_format = |ext: &[u8]| {
            std::str::from_utf8(ext)
                .ok()
                .and_then(|e| Format::of_extension(&e.to_ascii_lowercase()))
                .is_some()
        };
        let stem = match bare.iter().rposition(|&c| c == b'.') {
            Some(dot) if names_a_format(&bare[dot + 1..]) => &bare[..dot],
            _ => bare,
        };
        let mut name = stem.to_vec();
        name.push(b'.');
        name.extend_from_slice(self.extension().as_bytes());
        if gz {
            name.extend_from_slice(b".gz");
        }
        std::os::unix::ffi::OsStringExt::from_vec(name)
    }

    /// Whether one file can hold several structures.
    pub fn is_multi_frame(self) -> bool {
        !matches!(self, Format::Poscar)
    }
}

fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Largest structure file accepted, in bytes after decompression: far
/// above any file of [`MAX_ATOMS`](crate::structure::MAX_ATOMS)-atom
/// frames one relaxes at once, and a bound for a gzip bomb.
pub const MAX_TEXT_BYTES: u64 = 1 << 30;

/// Opens `path` for reading if it is a regular file (after symlinks) of at
/// most `max_bytes`; anything else (a FIFO, which would block the open
/// until a writer comes, a device such as `/dev/zero`, a directory, a file
/// too large) is an `InvalidInput` error saying what it is. The open never
/// blocks.
pub fn regular_file(path: &Path, max_bytes: u64) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    let kind = metadata.file_type();
    let refuse = |m: String| Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, m));
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        return refuse(format!("not a regular file ({what})"));
    }
    if metadata.len() > max_bytes {
        return refuse(format!(
            "{} bytes, more than the {max_bytes} e3relax reads",
            metadata.len()
        ));
    }
    Ok(file)
}

/// Reads a regular file of at most `max_bytes` (see [`regular_file`]) as
/// UTF-8 text; errors name the file.
pub fn read_regular_text(path: &Path, max_bytes: u64) -> Result<String> {
    let shown = path.display().to_string();
    let file = regular_file(path, max_bytes).map_err(|e| Error::io(&shown, e))?;
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(&shown, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(Error::io(
            &shown,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("more than the {max_bytes} bytes e3relax reads"),
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| Error::Format {
        location: crate::error::Location {
            path: Some(shown),
            line: None,
        },
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

/// Reads a whole file as text, decompressing `*.gz`, refusing more than
/// [`MAX_TEXT_BYTES`].
pub fn read_text(path: &Path) -> Result<String> {
    read_text_limited(path, MAX_TEXT_BYTES)
}

fn read_text_limited(path: &Path, max_bytes: u64) -> Result<String> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::io(&shown, e))?;
    let mut bytes = Vec::new();
    let limited =
        |reader: &mut dyn Read, bytes: &mut Vec<u8>| reader.take(max_bytes + 1).read_to_end(bytes);
    if is_gzip(path) {
        limited(&mut flate2::read::MultiGzDecoder::new(file), &mut bytes)
    } else {
        limited(&mut std::io::BufReader::new(file), &mut bytes)
    }
    .map_err(|e| Error::io(&shown, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(Error::Format {
            location: crate::error::Location {
                path: Some(shown),
                line: None,
            },
            message: format!(
                "more than {max_bytes} bytes of text{}: larger than e3relax reads",
                if is_gzip(path) {
                    " after decompression"
                } else {
                    ""
                }
            ),
        });
    }
    String::from_utf8(bytes).map_err(|e| Error::Format {
        location: crate::error::Location {
            path: Some(shown),
            line: None,
        },
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

/// Parses text of a known format, without validation. A leading UTF-8
/// byte-order mark (as some Windows editors write) is skipped in every
/// format.
pub fn parse(text: &str, format: Format) -> Result<Vec<Structure>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Poscar => poscar::read(text).map(|s| vec![s]),
        Format::ExtXyz => extxyz::read(text),
        Format::Cif => cif::read(text),
    }
}

/// Reads and validates every structure of a file (`format` overrides the
/// guess from its name). Errors name the file and, for a frame that fails
/// validation, the frame.
pub fn read_file(path: impl AsRef<Path>, format: Option<Format>) -> Result<Vec<Structure>> {
    read_file_with(path.as_ref(), format, &ValidationOptions::default())
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
            [one] => poscar::write(one),
            _ => Err(Error::InvalidArgument(format!(
                "POSCAR holds one structure, but there are {}; write extxyz or cif instead",
                frames.len()
            ))),
        },
        Format::ExtXyz => extxyz::write(frames),
        Format::Cif => Ok(cif::write(frames)),
    }
}

/// Renders structures as the bytes of a file at `path`: the format from
/// `format` or the name, gzip for `*.gz`.
pub fn file_bytes(path: &Path, frames: &[Structure], format: Option<Format>) -> Result<Vec<u8>> {
    let shown = path.display().to_string();
    let format = match format {
        Some(f) => f,
        None if path.as_os_str() == output::STDOUT => {
            return Err(Error::InvalidArgument(
                "-: standard output has no file name to tell the format from; use --format poscar|extxyz|cif".into(),
            ))
        }
        None => Format::from_path(path)?,
    };
    let text = render(frames, format).map_err(|e| match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{shown}: {m}")),
        other => other,
    })?;
    if is_gzip(path) {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder
            .write_all(text.as_bytes())
            .map_err(|e| Error::io(&shown, e))?;
        encoder.finish().map_err(|e| Error::io(&shown, e))
    } else {
        Ok(text.into_bytes())
    }
}

/// Writes structures (see [`file_bytes`]) so that a failed run never leaves
/// a half-written file behind (see [`output`]).
pub fn write_file(path: &Path, frames: &[Structure], format: Option<Format>) -> Result<()> {
    write_atomically(path, &file_bytes(path, frames, format)?)
}

/// Writes bytes to `path` through a synced temporary file renamed into
/// place (a symlink's target is what gets replaced; devices and `-` are
/// written directly).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut writes = StagedWrites::new();
    writes.stage(path, bytes.to_vec())?;
    writes.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

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
        // The extension wins over a POSCAR-like name.
        assert_eq!(f("POSCAR_1.extxyz"), Format::ExtXyz);
        assert_eq!(f("CONTCAR.cif.gz"), Format::Cif);
        // Not UTF-8: still recognised.
        let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.cif");
        assert_eq!(Format::from_path(Path::new(odd)).unwrap(), Format::Cif);
    }

    #[test]
    fn a_byte_order_mark_is_skipped_in_every_format() {
        let s = Structure::new(
            [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]],
            vec![[0.0; 3]],
            vec![29],
        )
        .unwrap();
        for format in [Format::Poscar, Format::ExtXyz, Format::Cif] {
            let text = format!(
                "\u{feff}{}",
                render(std::slice::from_ref(&s), format).unwrap()
            );
            let back = parse(&text, format).unwrap();
            assert_eq!(back[0].numbers, vec![29], "{format:?}");
            assert_eq!(back[0].positions, s.positions, "{format:?}");
        }
    }

    #[test]
    fn text_beyond_the_limit_is_refused_before_it_is_all_read() {
        let dir = tempfile::tempdir().unwrap();
        // 10 MB of zeros compress to ~10 kB: a small gzip bomb.
        let bomb = dir.path().join("bomb.xyz.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![b'0'; 10_000_000]).unwrap();
        std::fs::write(&bomb, encoder.finish().unwrap()).unwrap();
        let e = read_text_limited(&bomb, 1_000_000).unwrap_err().to_string();
        assert!(
            e.contains("more than 1000000 bytes of text after decompression"),
            "{e}"
        );
        assert_eq!(
            read_text_limited(&bomb, 10_000_000).unwrap().len(),
            10_000_000
        );
        let plain = dir.path().join("plain.xyz");
        std::fs::write(&plain, "x".repeat(100)).unwrap();
        assert!(read_text_limited(&plain, 99).is_err());
        assert!(read_text_limited(&plain, 100).is_ok());
    }

    #[test]
    fn output_names_follow_the_format() {
        use std::ffi::OsStr;
        let n = |name: &str, f: Format| f.output_name(OsStr::new(name)).into_string().unwrap();
        assert_eq!(n("a.vasp", Format::ExtXyz), "a.extxyz");
        assert_eq!(n("a.vasp", Format::Poscar), "a.vasp");
        assert_eq!(n("POSCAR", Format::Poscar), "POSCAR");
        assert_eq!(n("POSCAR_7", Format::Cif), "POSCAR_7.cif");
        assert_eq!(n("b.xyz.gz", Format::Cif), "b.cif.gz");
        assert_eq!(n("b.XYZ", Format::ExtXyz), "b.XYZ");
        assert_eq!(n("c.v1.cif", Format::Poscar), "c.v1.vasp");
        for format in [Format::Poscar, Format::ExtXyz, Format::Cif] {
            for name in ["a.vasp", "POSCAR_7", "b.xyz.gz", "c.cif"] {
                let out = format.output_name(OsStr::new(name));
                assert_eq!(
                    Format::from_path(Path::new(&out)).unwrap(),
                    format,
                    "{out:?}"
                );
            }
        }
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

        let missing = read_file(dir.path().join("none.cif"), None)
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
