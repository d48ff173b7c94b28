//! Training examples: which input a pair offers this time (its unrelaxed
//! structure, a relaxation frame, or its relaxed structure strained) and the
//! augmentations (strain, position noise), with targets in the same frame
//! of reference; and the batch they make.

use tch::{Kind, Tensor};

use super::TrainConfig;
use crate::dataset::RelaxationPair;
use crate::error::Result;
use crate::linalg;
use crate::model::loss::BatchTotals;
use crate::model::Batch;
use crate::rng::SplitMix64;
use crate::structure::Structure;

/// Draws the examples of one batch (see [`training_example`]) and returns
/// the network's input with the target positions `[N,3]` and lattices
/// `[B,3,3]`.
pub(super) fn training_batch(
    pairs: &[RelaxationPair],
    chunk: &[usize],
    config: &TrainConfig,
    rng: &mut SplitMix64,
    model_config: &crate::model::ModelConfig,
    device: tch::Device,
) -> Result<TrainingBatch> {
    let examples = draw_examples(pairs, chunk, config, rng);
    batch_of(&examples, config, model_config, device)
}

/// One rank's part of a batch shared by several processes (see
/// [`super::collective`]): every example of `chunk` is drawn, so the random
/// stream is the single process's, and the batch is built from `share` of
/// them (`None` for an empty share); with the whole batch's counts, which
/// weight this part's loss.
pub(super) fn training_batch_share(
    pairs: &[RelaxationPair],
    chunk: &[usize],
    share: std::ops::Range<usize>,
    config: &TrainConfig,
    rng: &mut SplitMix64,
    model_config: &crate::model::ModelConfig,
    device: tch::Device,
) -> Result<(Option<TrainingBatch>, BatchTotals)> {
    let examples = draw_examples(pairs, chunk, config, rng);
    let totals = BatchTotals {
        atoms: examples.iter().map(|e| e.0.natoms()).sum::<usize>() as f64,
        crystals: examples.len() as f64,
    };
    let part = &examples[share];
    let batch = if part.is_empty() {
        None
    } else {
        Some(batch_of(part, config, model_config, device)?)
    };
    Ok((batch, totals))
}

type Example = (Structure, Vec<linalg::Vec3>, linalg::Mat3);

/// The network's input with its target positions `[N,3]` and lattices
/// `[B,3,3]`.
pub(super) type TrainingBatch = (Batch, Tensor, Tensor);

fn draw_examples(
    pairs: &[RelaxationPair],
    chunk: &[usize],
    config: &TrainConfig,
    rng: &mut SplitMix64,
) -> Vec<Example> {
    chunk
        .iter()
        .map(|&k| training_example(&pairs[k], config, rng))
        .collect()
}

fn batch_of(
    examples: &[Example],
    config: &TrainConfig,
    model_config: &crate::model::ModelConfig,
    device: tch::Device,
) -> Result<TrainingBatch> {
    let kind = Kind::Float;
    let mut target_positions: Vec<f64> = Vec::new();
    let mut target_lattices: Vec<f64> = Vec::new();
    for (_, positions, lattice) in examples {
        target_positions.extend(positions.iter().flatten());
        target_lattices.extend(lattice.iter().flatten());
    }
    let refs: Vec<&Structure> = examples.iter().map(|e| &e.0).collect();
    let batch = Batch::new(&refs, model_config, device, kind, config.fixed_cell)?;
    let n = (target_positions.len() / 3) as i64;
    let tp = Tensor::from_slice(&target_positions)
        .reshape([n, 3])
        .to_kind(kind)
        .to_device(device);
    let tl = Tensor::from_slice(&target_lattices)
        .reshape([examples.len() as i64, 3, 3])
        .to_kind(kind)
        .to_device(device);
    Ok((batch, tp, tl))
}

/// One training example drawn for `pair`: its input (the unrelaxed
/// structure or, with `frame_probability`, one of its relaxation frames,
/// or, with `relaxed_input_probability`, the relaxed structure strained),
/// augmented as the config asks (rotation, strain, position noise), and the
/// target positions and lattice in the same frame of reference.
fn training_example(
    pair: &RelaxationPair,
    config: &TrainConfig,
    rng: &mut SplitMix64,
) -> (Structure, Vec<linalg::Vec3>, linalg::Mat3) {
    let (mut input, mut target) = if config.frame_probability > 0.0 && !pair.frames.is_empty() {
        // Both draws are made for every pair with frames, so the random
        // stream does not depend on the outcome.
        let use_frame = rng.uniform() < config.frame_probability;
        let k = ((rng.uniform() * pair.frames.len() as f64) as usize).min(pair.frames.len() - 1);
        if use_frame {
            (pair.frames[k].input.clone(), &pair.frames[k].target)
        } else {
            (pair.unrelaxed.clone(), &pair.target)
        }
    } else {
        (pair.unrelaxed.clone(), &pair.target)
    };
    let mut relaxed = false;
    if config.relaxed_input_probability > 0.0 {
        // Drawn for every pair (the strain's draws too), so the random
        // stream does not depend on the outcome.
        let use_relaxed = rng.uniform() < config.relaxed_input_probability;
        let strain = random_strain(config.relaxed_input_strain, rng);
        if use_relaxed {
            (input, target) = (strained(pair.relaxed_as_input(), &strain), &pair.target);
            relaxed = true;
        }
    }
    let mut positions = target.positions.clone();
    let mut lattice = target.lattice;
    if config.rotation_augmentation {
        let r = rng.rotation();
        let rt = linalg::transpose(&r);
        input = input.rotated(&r);
        for p in &mut positions {
            *p = linalg::vec_mat(*p, &rt);
        }
        lattice = lattice.map(|row| linalg::vec_mat(row, &rt));
    }
    if config.strain_noise > 0.0 {
        input = with_strain_noise(input, config.strain_noise, rng);
    }
    if config.position_noise > 0.0 {
        // The noise is drawn either way, so the random stream does not
        // depend on the outcome.
        let noisy = with_position_noise(input.clone(), config.position_noise, rng);
        if !relaxed || config.relaxed_input_noise {
            input = noisy;
        }
    }
    (input, positions, lattice)
}

/// The training input deformed by a random strain ([`random_strain`]).
fn with_strain_noise(input: Structure, sigma: f64, rng: &mut SplitMix64) -> Structure {
    strained(input, &random_strain(sigma, rng))
}

/// `I + e`, `e` a random symmetric strain with entries of standard
/// deviation `sigma` (six draws, whatever `sigma`).
fn random_strain(sigma: f64, rng: &mut SplitMix64) -> linalg::Mat3 {
    // Upper triangle drawn row by row, mirrored below the diagonal.
    let mut d = [[0.0; 3]; 3];
    for (a, b) in [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)] {
        let e = sigma * rng.normal();
        d[a][b] = e;
        d[b][a] = e;
    }
    for (a, row) in d.iter_mut().enumerate() {
        row[a] += 1.0;
    }
    d
}

/// `input` deformed by `d` (`x -> x d`); atoms keep their fractional
/// coordinates. Falls back to the input should the strained structure be
/// invalid.
fn strained(input: Structure, d: &linalg::Mat3) -> Structure {
    let mut strained = input.clone();
    strained.lattice = linalg::matmul(&input.lattice, d);
    for p in &mut strained.positions {
        *p = linalg::vec_mat(*p, d);
    }
    if strained.validate().is_ok() {
        strained
    } else {
        input
    }
}

/// The training input with every Cartesian coordinate moved by a Gaussian
/// draw of standard deviation `sigma` (Å). Should the moves bring two atoms
/// too close for the model (see `Structure::validate`), the input is used
/// unchanged rather than failing the epoch; the draws are spent either way,
/// so a resumed run stays bit-identical.
fn with_position_noise(input: Structure, sigma: f64, rng: &mut SplitMix64) -> Structure {
    let mut noisy = input.clone();
    for p in &mut noisy.positions {
        for c in p.iter_mut() {
            *c += sigma * rng.normal();
        }
    }
    if noisy.validate().is_ok() {
        noisy
    } else {
        input
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_atoms(separation: f64) -> Structure {
        Structure::new(
            [[6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 6.0]],
            vec![[1.0, 1.0, 1.0], [1.0 + separation, 1.0, 1.0]],
            vec![14, 8],
        )
        .unwrap()
    }

    #[test]
    fn relaxed_inputs_are_the_target_strained_with_fractional_coordinates_kept() {
        let unrelaxed = two_atoms(2.5);
        let mut relaxed = two_atoms(2.0);
        relaxed.lattice = [[5.5, 0.0, 0.0], [0.0, 5.8, 0.0], [0.0, 0.0, 6.1]];
        let pair = RelaxationPair {
            id: "p".into(),
            target: crate::metrics::Target::new(&unrelaxed, &relaxed),
            unrelaxed,
            relaxed,
            frames: Vec::new(),
        };
        let fractional = |s: &Structure| {
            let inverse = linalg::inverse(&s.lattice).unwrap();
            s.positions
                .iter()
                .map(|&p| linalg::vec_mat(p, &inverse))
                .collect::<Vec<_>>()
        };
        let mut rng = SplitMix64::new(9);
        // Without strain the input is its own target.
        let exact = TrainConfig {
            relaxed_input_probability: 1.0,
            ..TrainConfig::default()
        };
        let (input, positions, lattice) = training_example(&pair, &exact, &mut rng);
        assert_eq!(
            (input.positions.clone(), input.lattice),
            (positions.clone(), lattice)
        );
        assert_eq!(lattice, pair.target.lattice);
        // With strain: another cell, the same fractional coordinates and
        // target; at probability 0.5 about half the inputs are relaxed.
        let strained = TrainConfig {
            relaxed_input_probability: 0.5,
            relaxed_input_strain: 0.03,
            ..TrainConfig::default()
        };
        let mut relaxed_count = 0;
        for _ in 0..400 {
            let (input, positions, lattice) = training_example(&pair, &strained, &mut rng);
            assert_eq!(
                (positions.as_slice(), lattice),
                (pair.target.positions.as_slice(), pair.target.lattice)
            );
            if input.positions == pair.unrelaxed.positions {
                continue;
            }
            relaxed_count += 1;
            assert_ne!(input.lattice, lattice);
            for (a, b) in fractional(&input)
                .iter()
                .zip(fractional(&pair.relaxed_as_input()))
            {
                assert!((0..3).all(|k| (a[k] - b[k]).abs() < 1e-12));
            }
        }
        assert!(
            (160..240).contains(&relaxed_count),
            "{relaxed_count} of 400"
        );
        // Position noise rattles relaxed inputs unless told not to, and the
        // random stream is the same either way.
        let noisy = TrainConfig {
            relaxed_input_probability: 1.0,
            position_noise: 0.1,
            ..TrainConfig::default()
        };
        let exact = TrainConfig {
            relaxed_input_noise: false,
            ..noisy.clone()
        };
        let (mut a, mut b) = (SplitMix64::new(4), SplitMix64::new(4));
        let (rattled, _, _) = training_example(&pair, &noisy, &mut a);
        let (kept, positions, _) = training_example(&pair, &exact, &mut b);
        assert_ne!(rattled.positions, positions);
        assert_eq!(kept.positions, positions);
        assert_eq!(a, b);
    }

    #[test]
    fn position_noise_moves_inputs_by_the_asked_amount() {
        let mut rng = SplitMix64::new(3);
        let input = two_atoms(2.5);
        let mut squares = 0.0;
        let trials = 2000;
        for _ in 0..trials {
            let noisy = with_position_noise(input.clone(), 0.05, &mut rng);
            assert_eq!(noisy.lattice, input.lattice);
            assert_eq!(noisy.numbers, input.numbers);
            for (a, b) in noisy.positions.iter().zip(&input.positions) {
                for k in 0..3 {
                    squares += (a[k] - b[k]).powi(2);
                }
            }
        }
        let rms = (squares / (trials * 6) as f64).sqrt();
        assert!((rms - 0.05).abs() < 0.002, "rms displacement {rms}");
    }

    #[test]
    fn position_noise_never_returns_overlapping_atoms() {
        // 0.52 Å apart: most draws at sigma 0.2 Å push the pair below the
        // 0.5 Å validation limit, and those must fall back to the input.
        let mut rng = SplitMix64::new(5);
        let input = two_atoms(0.52);
        let mut unchanged = 0;
        for _ in 0..500 {
            let noisy = with_position_noise(input.clone(), 0.2, &mut rng);
            assert!(noisy.validate().is_ok());
            unchanged += usize::from(noisy.positions == input.positions);
        }
        assert!(
            unchanged > 100 && unchanged < 500,
            "{unchanged} of 500 unchanged"
        );
    }
}
