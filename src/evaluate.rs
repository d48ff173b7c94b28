//! Evaluation of a model on relaxation pairs: the paper's table (coordinate
//! MAE, cell shape deviation, volume MAE) for the model and the Dummy
//! baseline, per structure and averaged, with timing; beside them, when the
//! per-element volumes of a training set are given, the volume baseline
//! (see [`crate::baseline`]).

use std::time::Instant;

use crate::baseline::ElementVolumes;
use crate::dataset::RelaxationPair;
use crate::error::Result;
use crate::metrics::{self, Metrics};
use crate::model::Model;
use crate::relax::{predict_with_progress, RelaxOptions};

/// One structure's numbers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalRow {
    pub id: String,
    pub natoms: usize,
    /// The pair's value of the grouping info key (`source`, `prototype`,
    /// ...), when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub model: Metrics,
    /// The model's coordinate error with the relaxed cell or the relaxed
    /// fractional coordinates put in (see [`metrics::ErrorSplit`]).
    pub error_split: metrics::ErrorSplit,
    pub dummy: Metrics,
    /// The volume baseline, when evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Metrics>,
}

/// One group's means ([`EvalReport::by_group`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupMeans {
    /// The group's value of the grouping key.
    pub group: String,
    pub structures: usize,
    pub model: Metrics,
    pub error_split: metrics::ErrorSplit,
    pub dummy: Metrics,
    pub volume_baseline: Option<Metrics>,
}

/// The whole evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    pub rows: Vec<EvalRow>,
    pub model: Metrics,
    /// Means of the rows' error splits.
    pub error_split: metrics::ErrorSplit,
    pub dummy: Metrics,
    /// The volume baseline's means, when evaluated.
    pub baseline: Option<Metrics>,
    /// Wall time of the predictions (graphs included), seconds.
    pub seconds: f64,
}

/// `a / b` as `0.123x`. A zero reference error (e.g. the cell of a
/// fixed-cell set) has no ratio: say so rather than print NaN or inf.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.3}x", a / b)
    } else {
        "n/a".to_string()
    }
}

impl EvalReport {
    /// The paper's table as text.
    pub fn table(&self) -> String {
        let values = |name: &str, m: &Metrics| {
            format!(
                "{name:<20} {:>16.4} {:>22.4} {:>18.4}\n",
                m.coordinate_mae, m.shape_deviation, m.volume_error
            )
        };
        let ratios = |name: &str, a: &Metrics, b: &Metrics| {
            format!(
                "{name:<20} {:>16} {:>22} {:>18}\n",
                ratio(a.coordinate_mae, b.coordinate_mae),
                ratio(a.shape_deviation, b.shape_deviation),
                ratio(a.volume_error, b.volume_error)
            )
        };
        let mut out = format!(
            "{:<20} {:>16} {:>22} {:>18}\n",
            "method", "coord MAE (Å)", "shape deviation (Å^2)", "volume MAE (Å^3)"
        );
        out += &values("Dummy", &self.dummy);
        if let Some(b) = &self.baseline {
            out += &values("volume baseline", b);
        }
        out += &values("E3Relax", &self.model);
        out += &ratios("E3Relax / Dummy", &self.model, &self.dummy);
        if let Some(b) = &self.baseline {
            out += &ratios("baseline / Dummy", b, &self.dummy);
            out += &ratios("E3Relax / baseline", &self.model, b);
        }
        out += &format!(
            "E3Relax coord MAE with the relaxed cell put in: {:.4} Å; with the relaxed fractional coordinates put in: {:.4} Å\n",
            self.error_split.with_relaxed_cell, self.error_split.with_relaxed_fractions
        );
        out + &format!(
            "{} structures, {:.2} s ({:.1} structures/s)",
            self.rows.len(),
            self.seconds,
            self.rows.len() as f64 / self.seconds.max(1e-9),
        )
    }

    /// Means per group (rows without a group value are `(none)`), groups in
    /// alphabetical order.
    pub fn by_group(&self) -> Vec<GroupMeans> {
        let mut groups: std::collections::BTreeMap<String, Vec<&EvalRow>> = Default::default();
        for r in &self.rows {
            let name = r.group.clone().unwrap_or_else(|| "(none)".into());
            groups.entry(name).or_default().push(r);
        }
        groups
            .into_iter()
            .map(|(group, rows)| {
                let mean = |f: fn(&EvalRow) -> Option<Metrics>| {
                    let all: Vec<Metrics> = rows.iter().filter_map(|r| f(r)).collect();
                    (!all.is_empty()).then(|| metrics::mean(&all))
                };
                GroupMeans {
                    structures: rows.len(),
                    model: mean(|r| Some(r.model)).unwrap_or_default(),
                    error_split: metrics::mean_split(
                        &rows.iter().map(|r| r.error_split).collect::<Vec<_>>(),
                    ),
                    dummy: mean(|r| Some(r.dummy)).unwrap_or_default(),
                    volume_baseline: mean(|r| r.baseline),
                    group,
                }
            })
            .collect()
    }

    /// [`EvalReport::by_group`] as text: per group, the model's numbers
    /// with their ratios to Dummy and to the volume baseline.
    pub fn group_table(&self, key: &str) -> String {
        let mut out = format!(
            "{:<24} {:>5} {:>24} {:>26} {:>26}\n",
            key, "n", "coord MAE (Å) /D /B", "shape (Å^2) /D /B", "volume (Å^3) /D /B"
        );
        for GroupMeans {
            group: name,
            structures: n,
            model,
            dummy,
            volume_baseline: baseline,
            ..
        } in self.by_group()
        {
            let cell = |f: fn(&Metrics) -> f64| {
                let b = baseline
                    .as_ref()
                    .map(|b| ratio(f(&model), f(b)))
                    .unwrap_or_else(|| "-".into());
                format!("{:.4} {} {}", f(&model), ratio(f(&model), f(&dummy)), b)
            };
            out += &format!(
                "{name:<24} {n:>5} {:>24} {:>26} {:>26}\n",
                cell(|m| m.coordinate_mae),
                cell(|m| m.shape_deviation),
                cell(|m| m.volume_error)
            );
        }
        out
    }

    /// Per-structure CSV.
    /// One row per pair; with an ensemble's `calibration` of the same
    /// pairs (in the same order), its per-crystal uncertainties and the
    /// ensemble mean's errors follow.
    pub fn csv(&self, calibration: Option<&CalibrationReport>) -> String {
        let mut out = String::from("id,natoms,coordinate_mae,shape_deviation,volume_error,dummy_coordinate_mae,dummy_shape_deviation,dummy_volume_error,baseline_coordinate_mae,baseline_shape_deviation,baseline_volume_error");
        let calibration = calibration.filter(|c| c.rows.len() == self.rows.len());
        if calibration.is_some() {
            out.push_str(",uncertainty_coordinates,uncertainty_cell,uncertainty_volume,ensemble_coordinate_mae,ensemble_shape_deviation,ensemble_volume_error");
        }
        out.push('\n');
        for (i, r) in self.rows.iter().enumerate() {
            let b = |f: fn(&Metrics) -> f64| r.baseline.as_ref().map(f).map(|v| v.to_string());
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}",
                r.id,
                r.natoms,
                r.model.coordinate_mae,
                r.model.shape_deviation,
                r.model.volume_error,
                r.dummy.coordinate_mae,
                r.dummy.shape_deviation,
                r.dummy.volume_error,
                b(|m| m.coordinate_mae).unwrap_or_default(),
                b(|m| m.shape_deviation).unwrap_or_default(),
                b(|m| m.volume_error).unwrap_or_default(),
            ));
            if let Some(c) = calibration {
                let [atoms, coord, cell, shape, volume, volume_error] = c.rows[i];
                out.push_str(&format!(
                    ",{atoms},{cell},{volume},{coord},{shape},{volume_error}"
                ));
            }
            out.push('\n');
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
    evaluate_with_baseline(model, pairs, options, None)
}

/// [`evaluate`], plus the volume baseline with the given per-element
/// volumes (fitted on the training pairs, never on the evaluated ones).
pub fn evaluate_with_baseline(
    model: &Model,
    pairs: &[RelaxationPair],
    options: &RelaxOptions,
    volumes: Option<&ElementVolumes>,
) -> Result<EvalReport> {
    evaluate_grouped(model, pairs, options, volumes, None, &|_| {})
}

/// [`evaluate_with_baseline`], recording each pair's value of the info
/// key `group_by` for [`EvalReport::by_group`]; `on_batch(n)` is called
/// with the size of each batch once it is relaxed.
pub fn evaluate_grouped(
    model: &Model,
    pairs: &[RelaxationPair],
    options: &RelaxOptions,
    volumes: Option<&ElementVolumes>,
    group_by: Option<&str>,
    on_batch: &(dyn Fn(usize) + Sync),
) -> Result<EvalReport> {
    let inputs: Vec<_> = pairs.iter().map(|p| p.unrelaxed.clone()).collect();
    let start = Instant::now();
    let predictions = predict_with_progress(model, &inputs, options, 0, on_batch)?;
    let seconds = start.elapsed().as_secs_f64();
    let rows: Vec<EvalRow> = pairs
        .iter()
        .zip(&predictions)
        .map(|(pair, prediction)| EvalRow {
            id: pair.id.clone(),
            natoms: pair.unrelaxed.natoms(),
            group: group_by.and_then(|key| pair.unrelaxed.info_value(key).map(str::to_string)),
            model: metrics::compare(
                &prediction.relaxed.lattice,
                &prediction.relaxed.positions,
                &pair.target,
            ),
            error_split: metrics::split(
                &prediction.relaxed.lattice,
                &prediction.relaxed.positions,
                &pair.target,
            ),
            dummy: metrics::dummy(&pair.unrelaxed, &pair.target),
            baseline: volumes.map(|v| {
                let b = v.predict(&pair.unrelaxed);
                metrics::compare(&b.lattice, &b.positions, &pair.target)
            }),
        })
        .collect();
    let model_mean = metrics::mean(&rows.iter().map(|r| r.model).collect::<Vec<_>>());
    let dummy_mean = metrics::mean(&rows.iter().map(|r| r.dummy).collect::<Vec<_>>());
    let baseline =
        volumes.map(|_| metrics::mean(&rows.iter().filter_map(|r| r.baseline).collect::<Vec<_>>()));
    let error_split = metrics::mean_split(&rows.iter().map(|r| r.error_split).collect::<Vec<_>>());
    Ok(EvalReport {
        rows,
        model: model_mean,
        error_split,
        dummy: dummy_mean,
        baseline,
        seconds,
    })
}

/// Standard deviation (Å, per Cartesian component) of the round-off-sized
/// rattle of the fixed-point report's near-equilibrium inputs: 0.01 Å is
/// what a structure written with five decimals of fractional coordinates
/// in a 10 Å cell, or relaxed by another code to a loose force threshold,
/// carries.
pub const NEAR_EQUILIBRIUM_RATTLE: f64 = 0.01;

/// One relaxed structure fed back as an input.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FixedPointRow {
    pub id: String,
    pub natoms: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The prediction against the input itself (the ideal is zero).
    pub exact: Metrics,
    /// Signed relative volume change of the prediction, `V'/V - 1`.
    pub volume_change: f64,
    /// Size of the predicted cell strain `|L^-1 L' - I|` (Frobenius) and
    /// root mean square of the atoms' moves beyond it (Å): what the trust
    /// policy's scales are compared with.
    pub strain: f64,
    pub displacement: f64,
    /// The prediction for the input rattled by [`NEAR_EQUILIBRIUM_RATTLE`]
    /// against the relaxed structure, and the rattled input's own numbers.
    pub rattled: Metrics,
    pub rattled_dummy: Metrics,
}

/// How far a model moves crystals that are already relaxed: a relaxation of
/// a relaxed structure is the identity, so every number here is ideally 0
/// (the rattled inputs' ideal is the relaxed structure itself, below their
/// Dummy row).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FixedPointReport {
    pub rows: Vec<FixedPointRow>,
    /// Means of the exact relaxed inputs.
    pub exact: Metrics,
    /// Means over crystals of `|V'/V - 1|`, its median, 95th percentile and
    /// largest value, and the shares of crystals above 3 % and 5 %.
    pub volume_change_mean: f64,
    pub volume_change_median: f64,
    pub volume_change_p95: f64,
    pub volume_change_max: f64,
    pub share_over_3_percent: f64,
    pub share_over_5_percent: f64,
    pub rattled: Metrics,
    pub rattled_dummy: Metrics,
    /// Root mean squares over crystals of the rows' `strain` and
    /// `displacement`: the model's typical change of an input that needs
    /// none, the natural scales of [`crate::trust::Trust`].
    pub strain_rms: f64,
    pub displacement_rms: f64,
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Relaxes each pair's *relaxed* structure, as it is and rattled by
/// [`NEAR_EQUILIBRIUM_RATTLE`] (seeded, so every model sees the same
/// rattles), and scores how far the model moves it (`on_batch` as in
/// [`evaluate_grouped`], two predictions per pair).
pub fn fixed_point(
    model: &Model,
    pairs: &[RelaxationPair],
    options: &RelaxOptions,
    group_by: Option<&str>,
    on_batch: &(dyn Fn(usize) + Sync),
) -> Result<FixedPointReport> {
    let exact: Vec<_> = pairs.iter().map(|p| p.relaxed_as_input()).collect();
    let mut rng = crate::rng::SplitMix64::new(0x5eed_f1ed);
    let rattled: Vec<_> = exact
        .iter()
        .map(|s| {
            let mut r = s.clone();
            for p in &mut r.positions {
                for x in p.iter_mut() {
                    *x += NEAR_EQUILIBRIUM_RATTLE * rng.normal();
                }
            }
            r
        })
        .collect();
    let exact_predictions = predict_with_progress(model, &exact, options, 0, on_batch)?;
    let rattled_predictions = predict_with_progress(model, &rattled, options, 0, on_batch)?;
    let rows: Vec<FixedPointRow> = pairs
        .iter()
        .zip(exact.iter().zip(&exact_predictions))
        .zip(rattled.iter().zip(&rattled_predictions))
        .map(
            |((pair, (input, prediction)), (rattled_input, rattled_prediction))| {
                let relaxed = &prediction.relaxed;
                let change = crate::trust::Change::of(input, relaxed);
                let (strain, displacement) = (
                    change.strain_size(),
                    change.displacement_rms(&relaxed.lattice),
                );
                FixedPointRow {
                    strain,
                    displacement,
                    id: pair.id.clone(),
                    natoms: input.natoms(),
                    group: group_by
                        .and_then(|key| pair.unrelaxed.info_value(key).map(str::to_string)),
                    exact: metrics::compare(&relaxed.lattice, &relaxed.positions, &pair.target),
                    volume_change: relaxed.volume() / input.volume() - 1.0,
                    rattled: metrics::compare(
                        &rattled_prediction.relaxed.lattice,
                        &rattled_prediction.relaxed.positions,
                        &pair.target,
                    ),
                    rattled_dummy: metrics::dummy(rattled_input, &pair.target),
                }
            },
        )
        .collect();
    let mut changes: Vec<f64> = rows.iter().map(|r| r.volume_change.abs()).collect();
    changes.sort_by(f64::total_cmp);
    let n = changes.len().max(1) as f64;
    let share = |limit: f64| changes.iter().filter(|&&c| c > limit).count() as f64 / n;
    let mean_of =
        |f: fn(&FixedPointRow) -> Metrics| metrics::mean(&rows.iter().map(f).collect::<Vec<_>>());
    Ok(FixedPointReport {
        exact: mean_of(|r| r.exact),
        volume_change_mean: changes.iter().sum::<f64>() / n,
        volume_change_median: quantile(&changes, 0.5),
        volume_change_p95: quantile(&changes, 0.95),
        volume_change_max: changes.last().copied().unwrap_or(0.0),
        share_over_3_percent: share(0.03),
        share_over_5_percent: share(0.05),
        rattled: mean_of(|r| r.rattled),
        rattled_dummy: mean_of(|r| r.rattled_dummy),
        strain_rms: (rows.iter().map(|r| r.strain * r.strain).sum::<f64>() / n).sqrt(),
        displacement_rms: (rows
            .iter()
            .map(|r| r.displacement * r.displacement)
            .sum::<f64>()
            / n)
            .sqrt(),
        rows,
    })
}

impl FixedPointReport {
    /// Per group (rows without a group value are `(none)`), alphabetical:
    /// the exact relaxed inputs' means and mean `|V'/V - 1|`.
    pub fn group_table(&self, key: &str) -> String {
        let mut groups: std::collections::BTreeMap<String, Vec<&FixedPointRow>> =
            Default::default();
        for r in &self.rows {
            let name = r.group.clone().unwrap_or_else(|| "(none)".into());
            groups.entry(name).or_default().push(r);
        }
        let mut out = format!(
            "{key:<24} {:>5} {:>10} {:>12} {:>12} {:>14}\n",
            "n", "coord (Å)", "shape (Å^2)", "volume (Å^3)", "|V'/V - 1| (%)"
        );
        for (name, rows) in groups {
            let m = metrics::mean(&rows.iter().map(|r| r.exact).collect::<Vec<_>>());
            let change =
                rows.iter().map(|r| r.volume_change.abs()).sum::<f64>() / rows.len() as f64;
            out += &format!(
                "{name:<24} {:>5} {:>10.4} {:>12.4} {:>12.4} {:>14.2}\n",
                rows.len(),
                m.coordinate_mae,
                m.shape_deviation,
                m.volume_error,
                100.0 * change
            );
        }
        out
    }

    /// The report as text, in the units of the main table.
    pub fn table(&self) -> String {
        let line = |name: &str, m: &Metrics| {
            format!(
                "{name:<34} {:>10.4} {:>12.4} {:>12.4}\n",
                m.coordinate_mae, m.shape_deviation, m.volume_error
            )
        };
        let mut out = format!(
            "fixed point: relaxed structures as inputs (ideal: 0)\n{:<34} {:>10} {:>12} {:>12}\n",
            "input", "coord (Å)", "shape (Å^2)", "volume (Å^3)"
        );
        out += &line("relaxed", &self.exact);
        out += &line(
            &format!("relaxed + {NEAR_EQUILIBRIUM_RATTLE} Å rattle: E3Relax"),
            &self.rattled,
        );
        out += &line(
            &format!("relaxed + {NEAR_EQUILIBRIUM_RATTLE} Å rattle: Dummy"),
            &self.rattled_dummy,
        );
        out + &format!(
            "volume change |V'/V - 1| of relaxed inputs: mean {:.2} %, median {:.2} %, 95th percentile {:.2} %, largest {:.2} %; over 3 %: {:.1} % of crystals, over 5 %: {:.1} %",
            100.0 * self.volume_change_mean,
            100.0 * self.volume_change_median,
            100.0 * self.volume_change_p95,
            100.0 * self.volume_change_max,
            100.0 * self.share_over_3_percent,
            100.0 * self.share_over_5_percent,
        ) + &format!(
            "\nsize of the change (root mean square over crystals): cell strain {:.4}, atom moves {:.4} Å",
            self.strain_rms, self.displacement_rms
        )
    }
}

/// How well an ensemble's spread tells its error, on relaxation pairs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CalibrationReport {
    /// Members in the ensemble.
    pub members: usize,
    /// The ensemble mean's numbers.
    pub mean: Metrics,
    /// Per crystal: (coordinate uncertainty Å, `Uncertainty::coordinates`:
    /// the atoms' and the cell's spread; coordinate error Å, cell
    /// uncertainty, shape deviation Å^2, volume uncertainty Å^3, volume
    /// error Å^3).
    pub rows: Vec<[f64; 6]>,
    /// Spearman correlations of uncertainty and error per crystal:
    /// coordinates, cell shape, volume.
    pub spearman_coordinates: Option<f64>,
    pub spearman_shape: Option<f64>,
    pub spearman_volume: Option<f64>,
    /// Crystals sorted by coordinate uncertainty in ten bins: (mean
    /// uncertainty, mean coordinate error, crystals).
    pub deciles: Vec<(f64, f64, usize)>,
    /// On the pairs' relaxed structures fed back (the fixed point): Spearman
    /// correlations of the ensemble's coordinate uncertainty with how far its
    /// mean moves the atoms, and of its volume uncertainty with the volume
    /// change. A crystal the model would push away from its minimum should
    /// be one it calls uncertain.
    pub fixed_point_spearman_coordinates: Option<f64>,
    pub fixed_point_spearman_volume: Option<f64>,
    /// The ensemble mean's fixed-point numbers (relaxed inputs against
    /// themselves) and mean `|V'/V - 1|`.
    pub fixed_point: Metrics,
    pub fixed_point_volume_change: f64,
    /// Wall time of the ensemble's predictions, seconds.
    pub seconds: f64,
}

/// Relaxes every pair's unrelaxed structure with an ensemble and compares
/// its spread with its error.
pub fn calibration(
    relaxer: &crate::relax::Relaxer,
    pairs: &[RelaxationPair],
    options: &RelaxOptions,
    on_batch: &(dyn Fn(usize) + Sync),
) -> Result<CalibrationReport> {
    let inputs: Vec<_> = pairs.iter().map(|p| p.unrelaxed.clone()).collect();
    let start = Instant::now();
    let results = relaxer.relax_many_with_progress(&inputs, options, on_batch)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut errors = Vec::with_capacity(pairs.len());
    let rows: Vec<[f64; 6]> = pairs
        .iter()
        .zip(&results)
        .map(|(pair, r)| {
            let m = metrics::compare(&r.relaxed.lattice, &r.relaxed.positions, &pair.target);
            errors.push(m);
            let u = r.uncertainty.as_ref().expect("an ensemble's prediction");
            [
                u.coordinates(r.relaxed.volume()),
                m.coordinate_mae,
                u.cell,
                m.shape_deviation,
                u.volume,
                m.volume_error,
            ]
        })
        .collect();
    let relaxed: Vec<_> = pairs.iter().map(|p| p.relaxed_as_input()).collect();
    let fixed = relaxer.relax_many(&relaxed, options)?;
    let (mut fixed_u, mut fixed_move, mut fixed_uv, mut fixed_dv) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut fixed_metrics, mut fixed_change) = (Vec::new(), 0.0);
    for ((pair, input), r) in pairs.iter().zip(&relaxed).zip(&fixed) {
        let u = r.uncertainty.as_ref().expect("an ensemble's prediction");
        let m = metrics::compare(&r.relaxed.lattice, &r.relaxed.positions, &pair.target);
        fixed_u.push(u.coordinates(r.relaxed.volume()));
        fixed_move.push(m.coordinate_mae);
        fixed_uv.push(u.volume);
        fixed_dv.push((r.relaxed.volume() - input.volume()).abs());
        fixed_change += (r.relaxed.volume() / input.volume() - 1.0).abs() / pairs.len() as f64;
        fixed_metrics.push(m);
    }
    let column = |k: usize| rows.iter().map(|r| r[k]).collect::<Vec<_>>();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| rows[a][0].total_cmp(&rows[b][0]));
    let deciles = (0..10)
        .filter_map(|d| {
            let bin = &order[d * order.len() / 10..(d + 1) * order.len() / 10];
            (!bin.is_empty()).then(|| {
                let n = bin.len() as f64;
                (
                    bin.iter().map(|&i| rows[i][0]).sum::<f64>() / n,
                    bin.iter().map(|&i| rows[i][1]).sum::<f64>() / n,
                    bin.len(),
                )
            })
        })
        .collect();
    Ok(CalibrationReport {
        members: relaxer.ensemble_size(),
        mean: metrics::mean(&errors),
        spearman_coordinates: crate::ensemble::spearman(&column(0), &column(1)),
        spearman_shape: crate::ensemble::spearman(&column(2), &column(3)),
        spearman_volume: crate::ensemble::spearman(&column(4), &column(5)),
        rows,
        deciles,
        fixed_point_spearman_coordinates: crate::ensemble::spearman(&fixed_u, &fixed_move),
        fixed_point_spearman_volume: crate::ensemble::spearman(&fixed_uv, &fixed_dv),
        fixed_point: metrics::mean(&fixed_metrics),
        fixed_point_volume_change: fixed_change,
        seconds,
    })
}

impl CalibrationReport {
    pub fn table(&self) -> String {
        let r = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        let mut out = format!(
            "ensemble of {} models: mean prediction coord MAE {:.4} Å, shape {:.4} Å^2, volume {:.4} Å^3 ({:.2} s)\n\
             Spearman correlation of uncertainty and error per crystal: coordinates {}, cell shape {}, volume {}\n\
             (coordinate uncertainty: atoms' mean spread and the cell's strain spread times V^(1/3), in quadrature)\n\
             on relaxed inputs, of uncertainty and how far the mean moves them: coordinates {}, volume {}\n\
             the mean on relaxed inputs (fixed point): coord {:.4} Å, shape {:.4} Å^2, volume {:.4} Å^3, mean volume change {:.2} %\n\
             {:<8} {:>22} {:>20} {:>9}\n",
            self.members,
            self.mean.coordinate_mae,
            self.mean.shape_deviation,
            self.mean.volume_error,
            self.seconds,
            r(self.spearman_coordinates),
            r(self.spearman_shape),
            r(self.spearman_volume),
            r(self.fixed_point_spearman_coordinates),
            r(self.fixed_point_spearman_volume),
            self.fixed_point.coordinate_mae,
            self.fixed_point.shape_deviation,
            self.fixed_point.volume_error,
            100.0 * self.fixed_point_volume_change,
            "decile",
            "mean coord uncert. (Å)",
            "mean coord MAE (Å)",
            "crystals"
        );
        for (k, (u, e, n)) in self.deciles.iter().enumerate() {
            out += &format!("{:<8} {u:>22.4} {e:>20.4} {n:>9}\n", k + 1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_prints_ratios_and_no_nan_for_a_fixed_cell_set() {
        let report = EvalReport {
            rows: Vec::new(),
            error_split: Default::default(),
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
            baseline: None,
            seconds: 1.0,
        };
        let table = report.table();
        let ratio_line = table
            .lines()
            .find(|l| l.starts_with("E3Relax / Dummy"))
            .unwrap();
        let cells: Vec<&str> = ratio_line.split_whitespace().collect();
        assert_eq!(
            cells,
            ["E3Relax", "/", "Dummy", "0.250x", "n/a", "n/a"],
            "{table}"
        );
        assert!(!table.contains("NaN") && !table.contains("inf"));
    }

    fn metrics(coordinate_mae: f64, shape_deviation: f64, volume_error: f64) -> Metrics {
        Metrics {
            coordinate_mae,
            shape_deviation,
            volume_error,
        }
    }

    #[test]
    fn groups_average_their_own_rows() {
        let row = |group: Option<&str>, model: f64, dummy: f64| EvalRow {
            id: format!("{group:?}-{model}"),
            natoms: 2,
            group: group.map(str::to_string),
            model: metrics(model, 2.0 * model, 3.0 * model),
            error_split: Default::default(),
            dummy: metrics(dummy, dummy, dummy),
            baseline: Some(metrics(dummy / 2.0, dummy, dummy)),
        };
        let report = EvalReport {
            rows: vec![
                row(Some("random"), 0.6, 0.8),
                row(Some("aflow"), 0.1, 0.2),
                row(Some("random"), 0.2, 0.4),
                row(None, 0.3, 0.3),
            ],
            model: Metrics::default(),
            error_split: Default::default(),
            dummy: Metrics::default(),
            baseline: None,
            seconds: 1.0,
        };
        let groups = report.by_group();
        let names: Vec<&str> = groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["(none)", "aflow", "random"]);
        let random = &groups[2];
        assert_eq!(random.structures, 2);
        assert!((random.model.coordinate_mae - 0.4).abs() < 1e-12);
        assert!((random.model.volume_error - 1.2).abs() < 1e-12);
        assert!((random.dummy.coordinate_mae - 0.6).abs() < 1e-12);
        assert!((random.volume_baseline.unwrap().coordinate_mae - 0.3).abs() < 1e-12);
        let table = report.group_table("source");
        let line = table.lines().find(|l| l.starts_with("random")).unwrap();
        // 0.4 Å, 0.667x of Dummy, 1.333x of the baseline.
        assert!(line.contains("0.4000 0.667x 1.333x"), "{table}");
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let sorted: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantile(&sorted, 0.5), 10.0);
        assert_eq!(quantile(&sorted, 0.95), 19.0);
        assert_eq!(quantile(&sorted, 1.0), 20.0);
        assert_eq!(quantile(&sorted, 0.0), 1.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
