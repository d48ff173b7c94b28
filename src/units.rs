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
}
