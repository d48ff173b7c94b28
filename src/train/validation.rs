//! A validation round: the EMA weights on the validation pairs (shared
//! between the processes of a data-parallel run), and the best model.

use std::collections::BTreeMap;
use std::path::Path;

use tch::Tensor;

use super::collective::{self, Collective};
use super::optimizer::{swap_values, Ema};
use super::TrainState;
use crate::dataset::RelaxationPair;
use crate::error::Result;
use crate::evaluate::evaluate;
use crate::metrics::Metrics;
use crate::model::Model;
use crate::relax::RelaxOptions;

/// Evaluates the EMA weights on the validation pairs; when they beat the
/// best so far (or always, with `newest_is_best`: pre-training, which the
/// validation pairs do not judge), records that and saves them as
/// `output/best` (`None`: a process that does not write). Returns the
/// model's and Dummy's means.
#[allow(clippy::too_many_arguments)]
pub(super) fn validation_round(
    model: &Model,
    params: &BTreeMap<String, Tensor>,
    ema: &Ema,
    pairs: &[RelaxationPair],
    options: &RelaxOptions,
    state: &mut TrainState,
    output: Option<&Path>,
    collective: Option<&dyn Collective>,
    newest_is_best: bool,
) -> Result<(Metrics, Metrics, bool)> {
    swap_values(params, &ema.shadow);
    let means = validation_means(model, pairs, options, collective);
    let improved = means
        .as_ref()
        .map(|(m, _)| newest_is_best || m.coordinate_mae < state.best_coordinate_mae)
        .unwrap_or(false);
    let saved = match (&means, improved) {
        (Ok((m, _)), true) => {
            state.best_coordinate_mae = m.coordinate_mae;
            match output {
                Some(output) => model.save_replacing(&output.join("best")),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    };
    // The training weights come back whatever happened above.
    swap_values(params, &ema.shadow);
    saved?;
    let (model_means, dummy_means) = means?;
    Ok((model_means, dummy_means, improved))
}

/// The model's and Dummy's mean metrics on `pairs`. With a collective each
/// process evaluates its share and the means are combined by one sum, so
/// every process gets the same numbers (and makes the same decisions).
pub(super) fn validation_means(
    model: &Model,
    pairs: &[RelaxationPair],
    options: &RelaxOptions,
    collective: Option<&dyn Collective>,
) -> Result<(Metrics, Metrics)> {
    let Some(c) = collective else {
        let report = evaluate(model, pairs, options)?;
        return Ok((report.model, report.dummy));
    };
    let part = &pairs[collective::share(pairs.len(), c.rank(), c.size())];
    let mut sums = [0.0; 6];
    if !part.is_empty() {
        let report = evaluate(model, part, options)?;
        let n = part.len() as f64;
        for (k, m) in [report.model, report.dummy].iter().enumerate() {
            sums[3 * k] = m.coordinate_mae * n;
            sums[3 * k + 1] = m.shape_deviation * n;
            sums[3 * k + 2] = m.volume_error * n;
        }
    }
    c.sum(&mut sums);
    let n = pairs.len().max(1) as f64;
    let mean = |k: usize| Metrics {
        coordinate_mae: sums[3 * k] / n,
        shape_deviation: sums[3 * k + 1] / n,
        volume_error: sums[3 * k + 2] / n,
    };
    Ok((mean(0), mean(1)))
}
