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

/// Atomic number of a chemical symbol. Accepts the labels simulation files
/// put around a symbol: any case (`FE`, `fe`), POTCAR suffixes (`Fe_pv`,
/// `Fe/7eb0`), CIF site labels (`Fe1`, `O2-`, `Fe3+`).
pub fn atomic_number(label: &str) -> Option<u32> {
    let letters: String = label
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    if letters.is_empty() {
        return None;
    }
    // Try a two-letter symbol first ("Sn" before "S"), then one letter.
    let candidates = [letters.get(..2), letters.get(..1)];
    let found = candidates.into_iter().flatten().find_map(|candidate| {
        let mut chars = candidate.chars();
        let first = chars.next()?.to_ascii_uppercase();
        let rest: String = chars.map(|c| c.to_ascii_lowercase()).collect();
        let normalized = format!("{first}{rest}");
        SYMBOLS
            .iter()
            .position(|s| *s == normalized)
            .map(|i| i as u32 + 1)
    });
    found
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
    fn labels_from_files_are_recognised() {
        assert_eq!(atomic_number("Fe_pv"), Some(26));
        assert_eq!(atomic_number("Fe/7eb0"), Some(26));
        assert_eq!(atomic_number("SN"), Some(50));
        assert_eq!(atomic_number("O2-"), Some(8));
        assert_eq!(atomic_number("Sr1"), Some(38));
        assert_eq!(atomic_number("Xx"), None);
        assert_eq!(atomic_number("12"), None);
    }

    #[test]
    fn masses_are_known_values() {
        assert!((mass(1).unwrap() - 1.008).abs() < 1e-3);
        assert!((mass(26).unwrap() - 55.845).abs() < 1e-3);
        assert!(mass(118).unwrap() > 290.0);
    }
}
