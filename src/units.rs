//! Length units. The library works in Å; Bohr is accepted where an API or
//! the CLI asks for it.

/// One Bohr radius in Å, CODATA 2018 (a0 = 0.529 177 210 903(80) Å).
pub const BOHR_IN_ANGSTROM: f64 = 0.529_177_210_903;

/// Length unit of numbers handed to or returned from the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LengthUnit {
    #[default]
    Angstrom,
    Bohr,
}

impl LengthUnit {
    /// Size of one unit in Å.
    pub fn in_angstrom(self) -> f64 {
        match self {
            LengthUnit::Angstrom => 1.0,
            LengthUnit::Bohr => BOHR_IN_ANGSTROM,
        }
    }

    /// Parses `angstrom`/`A`/`Å` or `bohr`/`au` (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "angstrom" | "a" | "å" | "ang" => Some(LengthUnit::Angstrom),
            "bohr" | "au" | "a.u." | "a0" => Some(LengthUnit::Bohr),
            _ => None,
        }
    }
}

impl std::str::FromStr for LengthUnit {
    type Err = crate::Error;

    fn from_str(name: &str) -> crate::Result<Self> {
        LengthUnit::parse(name).ok_or_else(|| {
            crate::Error::InvalidArgument(format!(
                "unknown length unit '{name}' (expected angstrom or bohr)"
            ))
        })
    }
}

deserialize_from_str!(LengthUnit);

/// How positions are given and returned: Cartesian (length units) or
/// fractional coordinates of the lattice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Coordinates {
    #[default]
    Cartesian,
    Fractional,
}

impl std::str::FromStr for Coordinates {
    type Err = crate::Error;

    fn from_str(name: &str) -> crate::Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "cartesian" => Ok(Coordinates::Cartesian),
            "fractional" | "crystal" | "direct" => Ok(Coordinates::Fractional),
            _ => Err(crate::Error::InvalidArgument(format!(
                "unknown coordinates '{name}' (expected cartesian or fractional)"
            ))),
        }
    }
}

deserialize_from_str!(Coordinates);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bohr_is_codata_2018() {
        assert_eq!(LengthUnit::Bohr.in_angstrom(), 0.529177210903);
        assert_eq!(LengthUnit::parse("Bohr"), Some(LengthUnit::Bohr));
        assert_eq!(LengthUnit::parse("Angstrom"), Some(LengthUnit::Angstrom));
        assert_eq!(LengthUnit::parse("nm"), None);
    }

    #[test]
    fn options_parse_the_same_from_text_and_json() {
        #[derive(serde::Deserialize)]
        struct Options {
            unit: LengthUnit,
            coordinates: Coordinates,
            device: crate::runtime::DeviceRequest,
            format: crate::io::Format,
        }
        let o: Options = serde_json::from_str(
            r#"{"unit": "Bohr", "coordinates": "fractional", "device": "cuda:1", "format": "vasp"}"#,
        )
        .unwrap();
        assert_eq!(o.unit, "bohr".parse().unwrap());
        assert_eq!(o.coordinates, Coordinates::Fractional);
        assert_eq!(o.device, crate::runtime::DeviceRequest::Cuda(1));
        assert_eq!(o.format, crate::io::Format::Poscar);
        let e = serde_json::from_str::<Options>(
            r#"{"unit": "furlong", "coordinates": "cartesian", "device": "cpu", "format": "cif"}"#,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("unknown length unit 'furlong' (expected angstrom or bohr)"),
            "{e}"
        );
        assert!("sideways".parse::<Coordinates>().is_err());
    }
}
