//! One optimiser step: the loss of a batch (or this process's part of it)
//! and of a single-point batch, the gradient summed over the processes,
//! clipped, AdamW and the EMA; and what the step tells the log.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use super::collective::Collective;
use super::optimizer::{clip_grad_norm, AdamW, Ema};
use super::single_points::{
    surface_loss, surface_loss_of_part, SurfaceTargets, SurfaceTotals, SurfaceWeights,
};
use crate::model::loss::{layerwise_loss, layerwise_loss_of_part, BatchTotals, LossWeights};
use crate::model::Model;

/// What one optimiser step did with its batch.
pub(super) enum StepOutcome {
    /// The weights moved; `loss` is the batch's training loss.
    Applied { loss: f64 },
    /// The loss or the gradient was not finite: nothing changed.
    Skipped { loss: f64, grad_norm: f64 },
}

/// A batch loss this many times the epoch's mean so far is logged with the
/// ids of its pairs.
pub(super) const OUTLIER_LOSS_FACTOR: f64 = 100.0;

/// The log line for a finite but wild batch loss (a training input the
/// network maps far away: applied with its gradient clipped, but worth
/// finding), or `None`. `loss_sum` is the sum of the `batches_before`
/// applied losses of this epoch; the first 10 batches set no reference.
pub(super) fn outlier_batch<'a>(
    step: i64,
    loss: f64,
    loss_sum: f64,
    batches_before: usize,
    ids: impl Iterator<Item = &'a str>,
) -> Option<String> {
    let wild =
        batches_before >= 10 && loss > OUTLIER_LOSS_FACTOR * loss_sum / batches_before as f64;
    wild.then(|| {
        format!(
            "step {step}: loss {loss:.4e}, over {OUTLIER_LOSS_FACTOR}x the epoch's mean so far; pairs (input: unrelaxed or a frame, with noise): {}",
            ids.collect::<Vec<_>>().join(" ")
        )
    })
}

/// One batch (or this process's part of it) with its targets, and the
/// whole batch's counts when it is a part.
pub(super) type TrainingPart<'a> = (
    &'a crate::model::Batch,
    &'a Tensor,
    &'a Tensor,
    Option<BatchTotals>,
);

/// A single-point batch (or this process's part of it) with its targets
/// and weights, and the whole batch's counts when it is a part.
pub(super) type SurfacePart<'a> = (
    &'a crate::model::Batch,
    &'a SurfaceTargets,
    SurfaceWeights,
    Option<SurfaceTotals>,
);

/// One optimiser step on one batch: forward pass, layer-wise loss,
/// gradient (clipped to `grad_clip`), AdamW at `lr`, EMA update. With a
/// `collective` the batch is this process's part (`None`: an empty part)
/// and the gradients and loss are summed over the processes before the
/// clip, so every process takes the same step.
#[allow(clippy::too_many_arguments)]
pub(super) fn optimiser_step(
    model: &Model,
    params: &BTreeMap<String, Tensor>,
    opt: &mut AdamW,
    ema: &mut Ema,
    loss_weights: &LossWeights,
    part: Option<TrainingPart>,
    surface: Option<SurfacePart>,
    grad_clip: f64,
    lr: f64,
    collective: Option<&dyn Collective>,
) -> StepOutcome {
    let mut loss = Tensor::zeros([], (Kind::Float, model.device()));
    let surface_only = part.is_none();
    if let Some((batch, target_positions, target_lattice, totals)) = part {
        let outputs = model.network.forward(batch);
        loss += match totals {
            None => layerwise_loss(
                &outputs,
                target_positions,
                target_lattice,
                &batch.atom_crystal,
                &batch.atom_counts,
                loss_weights,
            ),
            Some(totals) => layerwise_loss_of_part(
                &outputs,
                target_positions,
                target_lattice,
                &batch.atom_crystal,
                &batch.atom_counts,
                loss_weights,
                totals,
            ),
        };
    }
    if let Some((surface_batch, targets, weights, totals)) = surface {
        let surface = match totals {
            None => surface_loss(model, surface_batch, targets, weights),
            Some(totals) => surface_loss_of_part(model, surface_batch, targets, weights, totals),
        };
        if let Some(surface) = surface {
            loss += surface;
        }
    }
    if collective.is_some() || surface_only {
        // Every parameter gets a gradient (zero where this part did not
        // reach it), so that all processes sum the same list and a
        // surface-only step (pre-training) leaves the relaxation layers
        // with a zero gradient rather than none.
        for p in params.values() {
            loss += p.sum(Kind::Float) * 0.0;
        }
    }
    for p in params.values() {
        p.shallow_clone().zero_grad();
    }
    let mut value = loss.double_value(&[]);
    let grad_norm = match collective {
        None if !value.is_finite() => f64::NAN,
        None => {
            loss.backward();
            clip_grad_norm(params, grad_clip)
        }
        Some(c) => {
            // A part with a non-finite loss makes the sum non-finite: every
            // process then skips the batch together.
            loss.backward();
            value = sum_gradients(params, value, c);
            clip_grad_norm(params, grad_clip)
        }
    };
    if !grad_norm.is_finite() {
        return StepOutcome::Skipped {
            loss: value,
            grad_norm,
        };
    }
    opt.step(params, lr);
    ema.update(params);
    StepOutcome::Applied { loss: value }
}

/// Replaces every parameter's gradient by its sum over the processes (one
/// sum of all gradients, flattened in parameter-name order, and the loss);
/// returns the summed loss.
pub(super) fn sum_gradients(
    params: &BTreeMap<String, Tensor>,
    loss: f64,
    c: &dyn Collective,
) -> f64 {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params.values().map(|p| p.grad()).collect();
        let mut flat: Vec<f64> = Vec::new();
        for g in &grads {
            let values = Vec::<f64>::try_from(
                g.to_device(tch::Device::Cpu)
                    .to_kind(Kind::Double)
                    .contiguous()
                    .flatten(0, -1),
            )
            .expect("a gradient converts to f64");
            flat.extend(values);
        }
        flat.push(loss);
        c.sum(&mut flat);
        let mut offset = 0;
        for g in &grads {
            let n = g.numel();
            let summed = Tensor::from_slice(&flat[offset..offset + n])
                .view(g.size().as_slice())
                .to_kind(g.kind())
                .to_device(g.device());
            g.shallow_clone().copy_(&summed);
            offset += n;
        }
        flat[offset]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wild_batch_loss_is_named_with_its_pairs() {
        let ids = || ["a", "b"].into_iter();
        // Ten batches of mean 2: 150 is ordinary, 250 is not.
        assert_eq!(outlier_batch(11, 150.0, 20.0, 10, ids()), None);
        let line = outlier_batch(11, 250.0, 20.0, 10, ids()).unwrap();
        assert!(
            line.starts_with("step 11: loss 2.5000e2") && line.ends_with(": a b"),
            "{line}"
        );
        // Too early in the epoch for a reference.
        assert_eq!(outlier_batch(3, 1e9, 4.0, 2, ids()), None);
    }
}
