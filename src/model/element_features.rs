//! The element encoding of `ModelConfig::element_features`: each element
//! as a fixed vector of physical descriptors (period, group and block one-hot;
//! electronegativity, radii, ionisation energy, ... standardised), which a
//! learned linear map turns into part of the atom embedding.
//!
//! Why: with a learned row per element only, an element seen in a handful
//! of training crystals keeps a nearly random embedding; on the held-out
//! crystals whose rarest element occurs fewer than 30 times in training,
//! the descriptor-free model barely beats leaving the structure alone.
//! Descriptors let such an element borrow what was learned for its
//! neighbours in the periodic table.

use super::element_table::ELEMENT_DESCRIPTORS;

const PERIODS: usize = 7;
const GROUPS: usize = 18;
const BLOCKS: usize = 4;
const VALUES: usize = 11;

/// Length of one element's encoded descriptor vector.
pub const NUM_FEATURES: usize = PERIODS + GROUPS + BLOCKS + VALUES;

/// Mean and standard deviation of each numeric descriptor over the
/// elements that have it.
fn column_statistics() -> [(f64, f64); VALUES] {
    let mut stats = [(0.0, 1.0); VALUES];
    for (column, stat) in stats.iter_mut().enumerate() {
        let known: Vec<f64> = ELEMENT_DESCRIPTORS
            .iter()
            .map(|e| e.values[column])
            .filter(|v| v.is_finite())
            .collect();
        let n = known.len() as f64;
        let mean = known.iter().sum::<f64>() / n;
        let var = known.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        *stat = (mean, var.sqrt().max(1e-12));
    }
    stats
}

/// The encoded descriptors of rows `0..num_elements` (row `Z` is element
/// `Z`; row 0 and rows past the table are zeros), row-major
/// `[num_elements, NUM_FEATURES]`. One-hot period, group and block, then
/// the numeric descriptors standardised (a missing value is the column
/// mean, i.e. 0).
pub fn encoded_table(num_elements: usize) -> Vec<f32> {
    let stats = column_statistics();
    let mut table = vec![0f32; num_elements * NUM_FEATURES];
    for (z, row) in table.chunks_mut(NUM_FEATURES).enumerate().skip(1) {
        let Some(element) = ELEMENT_DESCRIPTORS.get(z - 1) else {
            break;
        };
        row[usize::from(element.period) - 1] = 1.0;
        row[PERIODS + usize::from(element.group) - 1] = 1.0;
        row[PERIODS + GROUPS + usize::from(element.block)] = 1.0;
        for (column, (&value, &(mean, std))) in element.values.iter().zip(&stats).enumerate() {
            if value.is_finite() {
                row[PERIODS + GROUPS + BLOCKS + column] = ((value - mean) / std) as f32;
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elements;

    #[test]
    fn table_is_pinned() {
        // A trained model's embedding depends on every number of the table:
        // regenerating it with other library data must be a deliberate act
        // (new models), not a silent change under the shipped ones.
        let finite: Vec<f64> = ELEMENT_DESCRIPTORS
            .iter()
            .flat_map(|e| e.values)
            .filter(|v| v.is_finite())
            .collect();
        assert_eq!(finite.len(), 1082);
        let sum: f64 = finite.iter().sum();
        assert!((sum - 7_883.086_241).abs() < 1e-3, "sum {sum}");
        let layout: u32 = ELEMENT_DESCRIPTORS
            .iter()
            .map(|e| u32::from(e.period) * 100 + u32::from(e.group) * 4 + u32::from(e.block))
            .sum();
        assert_eq!(layout, 66_116);
    }

    #[test]
    fn descriptors_match_known_chemistry() {
        let of = |symbol: &str| {
            ELEMENT_DESCRIPTORS[elements::atomic_number(symbol).unwrap() as usize - 1]
        };
        let (o, fe, la, na) = (of("O"), of("Fe"), of("La"), of("Na"));
        assert_eq!((o.period, o.group, o.block), (2, 16, 1));
        assert_eq!((fe.period, fe.group, fe.block), (4, 8, 2));
        assert_eq!((la.period, la.group, la.block), (6, 3, 3));
        // Pauling electronegativity, covalent radius, valence s/p/d.
        assert_eq!(o.values[0], 3.44);
        assert!(na.values[1] > o.values[1]);
        assert_eq!(&fe.values[7..10], &[2.0, 0.0, 6.0]);
        assert_eq!(&o.values[7..9], &[2.0, 4.0]);
    }

    #[test]
    fn encoding_is_one_hot_plus_standardised_values() {
        let table = encoded_table(118);
        assert_eq!(table.len(), 118 * NUM_FEATURES);
        assert!(
            table[..NUM_FEATURES].iter().all(|&v| v == 0.0),
            "row 0 unused"
        );
        assert!(table.iter().all(|v| v.is_finite()));
        for z in 1..118 {
            let row = &table[z * NUM_FEATURES..(z + 1) * NUM_FEATURES];
            let ones = |r: std::ops::Range<usize>| row[r].iter().filter(|&&v| v == 1.0).count();
            assert_eq!(ones(0..PERIODS), 1, "Z={z}");
            assert_eq!(ones(PERIODS..PERIODS + GROUPS), 1, "Z={z}");
            assert_eq!(
                ones(PERIODS + GROUPS..PERIODS + GROUPS + BLOCKS),
                1,
                "Z={z}"
            );
        }
        // Each numeric column: mean 0, standard deviation 1 over the known
        // entries (elements 1..=118 are all in this 118-row table but 118).
        let full = encoded_table(119);
        for column in 0..VALUES {
            let c = PERIODS + GROUPS + BLOCKS + column;
            let known: Vec<f64> = (1..=118)
                .filter(|&z| ELEMENT_DESCRIPTORS[z - 1].values[column].is_finite())
                .map(|z| f64::from(full[z * NUM_FEATURES + c]))
                .collect();
            let n = known.len() as f64;
            let mean = known.iter().sum::<f64>() / n;
            let var = known.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            assert!(
                mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
                "column {column}"
            );
        }
        // Rows past the descriptor table stay zero.
        assert!(encoded_table(130)[119 * NUM_FEATURES..]
            .iter()
            .all(|&v| v == 0.0));
    }
}
