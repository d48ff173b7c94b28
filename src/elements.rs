//! Element symbols and standard atomic masses for Z = 1..=118.
//! Masses (u) are IUPAC standard atomic weights as tabulated by ASE 3.29
//! (`ase.data.atomic_masses`); elements without a stable isotope use the
//! mass number of their longest-lived isotope.

/// Largest atomic number known to the element table.
pub const MAX_ATOMIC_NUMBER: u32 = 118;

const SYMBOLS: [&str; 118] = [
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl",
    "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In",
    "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb",
    "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl",
    "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk",
    "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh",
    "Fl", "Mc", "Lv", "Ts", "Og",
];

const MASSES: [f64; 118] = [
    1.008,
    4.002602,
    6.94,
    9.0121831,
    10.81,
    12.011,
    14.007,
    15.999,
    18.998403163,
    20.1797,
    22.98976928,
    24.305,
    26.9815385,
    28.085,
    30.973761998,
    32.06,
    35.45,
    39.948,
    39.0983,
    40.078,
    44.955908,
    47.867,
    50.9415,
    51.9961,
    54.938044,
    55.845,
    58.933194,
    58.6934,
    63.546,
    65.38,
    69.723,
    72.63,
    74.921595,
    78.971,
    79.904,
    83.798,
    85.4678,
    87.62,
    88.90584,
    91.224,
    92.90637,
    95.95,
    97.90721,
    101.07,
    102.9055,
    106.42,
    107.8682,
    112.414,
    114.818,
    118.71,
    121.76,
    127.6,
    126.90447,
    131.293,
    132.90545196,
    137.327,
    138.90547,
    140.116,
    140.90766,
    144.242,
    144.91276,
    150.36,
    151.964,
    157.25,
    158.92535,
    162.5,
    164.93033,
    167.259,
    168.93422,
    173.054,
    174.9668,
    178.49,
    180.94788,
    183.84,
    186.207,
    190.23,
    192.217,
    195.084,
    196.966569,
    200.592,
    204.38,
    207.2,
    208.9804,
    208.98243,
    209.98715,
    222.01758,
    223.01974,
    226.02541,
    227.02775,
    232.0377,
    231.03588,
    238.02891,
    237.04817,
    244.06421,
    243.06138,
    247.07035,
    247.07031,
    251.07959,
    252.083,
    257.09511,
    258.09843,
    259.101,
    262.11,
    267.122,
    268.126,
    271.134,
    270.133,
    269.1338,
    278.156,
    281.165,
    281.166,
    285.177,
    286.182,
    289.19,
    289.194,
    293.204,
    293.208,
    294.214,
];

/// Chemical symbol of atomic number `z`, or `None` outside 1..=118.
pub fn symbol(z: u32) -> Option<&'static str> {
    (1..=MAX_ATOMIC_NUMBER)
        .contains(&z)
        .then(|| SYMBOLS[z as usize - 1])
}

/// Standard atomic mass (u) of atomic number `z`, or `None` outside 1..=118.
pub fn mass(z: u32) -> Option<f64> {
    (1..=MAX_ATOMIC_NUMBER)
        .contains(&z)
        .then(|| MASSES[z as usize - 1])
}

/// Atomic number of a chemical symbol, matched exactly (any letter case:
/// `Fe`, `FE`, `fe`). Anything else, `Uue`, `Fe1` or `bulk`, is `None`:
/// a symbol is never guessed from a prefix.
pub fn atomic_number(symbol: &str) -> Option<u32> {
    let symbol = symbol.trim();
    if symbol.is_empty() || symbol.len() > 2 || !symbol.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    SYMBOLS
        .iter()
        .position(|s| s.eq_ignore_ascii_case(symbol))
        .map(|i| i as u32 + 1)
}

/// Atomic number of a POSCAR species-line entry: a symbol, optionally
/// followed by a POTCAR suffix after `_` or `/` (`Fe_pv`, `Fe/7eb0`).
pub fn atomic_number_of_potcar_label(label: &str) -> Option<u32> {
    let head = label.split(['_', '/']).next().unwrap_or_default();
    atomic_number(head)
}

/// Atomic number of a CIF `_atom_site_type_symbol`: a symbol, optionally
/// followed by an oxidation state (`O2-`, `Fe3+`, `Na+`).
pub fn atomic_number_of_cif_type(type_symbol: &str) -> Option<u32> {
    let t = type_symbol.trim();
    let letters = t
        .trim_end_matches(['+', '-'])
        .trim_end_matches(|c: char| c.is_ascii_digit());
    let charge = &t[letters.len()..];
    let charge_ok = charge.is_empty()
        || (charge.ends_with(['+', '-'])
            && charge[..charge.len() - 1]
                .chars()
                .all(|c| c.is_ascii_digit()));
    charge_ok.then(|| atomic_number(letters)).flatten()
}

/// Atomic number of a CIF `_atom_site_label`, used only when a file has no
/// type symbols: labels are free text that starts with the symbol (`Fe1`,
/// `O2a`), so the symbol is its leading letters, two if they make one,
/// else the first (`OW1` is O) — as CIF readers do.
pub fn atomic_number_of_cif_label(label: &str) -> Option<u32> {
    let letters: String = label
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    if let Some(z) = letters.get(..2).and_then(atomic_number) {
        return Some(z);
    }
    letters.get(..1).and_then(atomic_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_and_numbers_round_trip() {
        for z in 1..=MAX_ATOMIC_NUMBER {
            assert_eq!(atomic_number(symbol(z).unwrap()), Some(z));
        }
        assert_eq!(symbol(0), None);
        assert_eq!(symbol(119), None);
    }

    #[test]
    fn symbols_are_matched_exactly() {
        assert_eq!(atomic_number("SN"), Some(50));
        assert_eq!(atomic_number("fe"), Some(26));
        for wrong in [
            "Uue", "bulk", "Relaxed", "Fe1", "O2-", "Xx", "12", "", "S i",
        ] {
            assert_eq!(atomic_number(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn labels_from_files_are_recognised_by_their_own_grammar() {
        assert_eq!(atomic_number_of_potcar_label("Fe_pv"), Some(26));
        assert_eq!(atomic_number_of_potcar_label("Fe/7eb0"), Some(26));
        assert_eq!(atomic_number_of_potcar_label("Uue"), None);
        assert_eq!(atomic_number_of_potcar_label("bulk"), None);
        assert_eq!(atomic_number_of_cif_type("O2-"), Some(8));
        assert_eq!(atomic_number_of_cif_type("Na+"), Some(11));
        assert_eq!(atomic_number_of_cif_type("Fe3+"), Some(26));
        assert_eq!(atomic_number_of_cif_type("Fe3"), None);
        assert_eq!(atomic_number_of_cif_type("Uue"), None);
        assert_eq!(atomic_number_of_cif_label("Sr1"), Some(38));
        assert_eq!(atomic_number_of_cif_label("OW1"), Some(8));
        assert_eq!(atomic_number_of_cif_label("12"), None);
    }

    #[test]
    fn masses_are_known_values() {
        assert!((mass(1).unwrap() - 1.008).abs() < 1e-3);
        assert!((mass(26).unwrap() - 55.845).abs() < 1e-3);
        assert!(mass(118).unwrap() > 290.0);
    }
}
