//! Evaluation of a model on relaxation pairs: the paper's table (coordinate
//! MAE, cell shape deviation, volume MAE) for the model and the Dummy
//! baseline, per structure and averaged, with timing.

use std::time::Instant;

use crate::dataset::RelaxationPair;
use crate::error::Result;
use crate::metrics::{self, Metrics};
use crate::model::Model;
use crate::relax::{predict, RelaxOptions};

/// One structure's numbers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalRow {
    pub id: String,
    pub natoms: usize,
    pub model: Metrics,
    pub dummy: Metrics,
}

/// The whole evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    pub rows: Vec<EvalRow>,
    pub model: Metrics,
    pub dummy: Metrics,
    /// Wall time of the predictions (graphs included), seconds.
    pub seconds: f64,
}

impl EvalReport {
    /// The paper's table as text.
    pub fn table(&self) -> String {
        // A zero Dummy error (e.g. the cell of a fixed-cell set) has no
        // ratio: say so rather than print NaN or inf.
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.3}x", a / b)
            } else {
                "n/a".to_string()
            }
        };
        format!(
            "{:<8} {:>18} {:>22} {:>18}\n{:<8} {:>18.4} {:>22.4} {:>18.4}\n{:<8} {:>18.4} {:>22.4} {:>18.4}\n{:<8} {:>18} {:>22} {:>18}\n{} structures, {:.2} s ({:.1} structures/s)",
            "method", "coord MAE (Å)", "shape deviation (Å^2)", "volume MAE (Å^3)",
            "Dummy", self.dummy.coordinate_mae, self.dummy.shape_deviation, self.dummy.volume_error,
            "E3Relax", self.model.coordinate_mae, self.model.shape_deviation, self.model.volume_error,
            "ratio",
            ratio(self.model.coordinate_mae, self.dummy.coordinate_mae),
            ratio(self.model.shape_deviation, self.dummy.shape_deviation),
            ratio(self.model.volume_error, self.dummy.volume_error),
            self.rows.len(),
            self.seconds,
            self.rows.len() as f64 / self.seconds.max(1e-9),
        )
    }

    /// Per-structure CSV.
    pub fn csv(&self) -> String {
        let mut out = String::from("id,natoms,coordinate_mae,shape_deviation,volume_error,dummy_coordinate_mae,dummy_shape_deviation,dummy_volume_error\n");
        for r in &self.rows {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                r.id,
                r.natoms,
                r.model.coordinate_mae,
                r.model.shape_deviation,
                r.model.volume_error,
                r.dummy.coordinate_mae,
                r.dummy.shape_deviation,
                r.dummy.volume_error
            ));
        }
        out
    }
}

/// Relaxes every pair's unrelaxed structure and scores it.
pub fn evaluate(
    model: &Model,
    pairs: &[RelaxationPair],
    options: &RelaxOptions,
) -> Result<EvalReport> {
    let inputs: Vec<_> = pairs.iter().map(|p| p.unrelaxed.clone()).collect();
    let start = Instant::now();
    let predictions = predict(model, &inputs, options)?;
    let seconds = start.elapsed().as_secs_f64();
    let rows: Vec<EvalRow> = pairs
        .iter()
        .zip(&predictions)
        .map(|(pair, prediction)| EvalRow {
            id: pair.id.clone(),
            natoms: pair.unrelaxed.natoms(),
            model: metrics::compare(
                &prediction.relaxed.lattice,
                &prediction.relaxed.positions,
                &pair.target,
            ),
            dummy: metrics::dummy(&pair.unrelaxed, &pair.target),
        })
        .collect();
    let model_mean = metrics::mean(&rows.iter().map(|r| r.model).collect::<Vec<_>>());
    let dummy_mean = metrics::mean(&rows.iter().map(|r| r.dummy).collect::<Vec<_>>());
    Ok(EvalReport {
        rows,
        model: model_mean,
        dummy: dummy_mean,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_prints_ratios_and_no_nan_for_a_fixed_cell_set() {
        let report = EvalReport {
            rows: Vec::new(),
            model: Metrics {
                coordinate_mae: 0.1,
                shape_deviation: 0.0,
                volume_error: 0.0,
            },
            dummy: Metrics {
                coordinate_mae: 0.4,
                shape_deviation: 0.0,
                volume_error: 0.0,
            },
            seconds: 1.0,
        };
        let table = report.table();
        let ratio_line = table.lines().find(|l| l.starts_with("ratio")).unwrap();
        let cells: Vec<&str> = ratio_line.split_whitespace().collect();
        assert_eq!(cells, ["ratio", "0.250x", "n/a", "n/a"], "{table}");
        assert!(!table.contains("NaN") && !table.contains("inf"));
    }
}
