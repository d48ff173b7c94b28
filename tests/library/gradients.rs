//! Finite-difference checks of the layer-wise loss's gradient with respect
//! to parameters and inputs, in f64.

use crate::common::*;
use e3relax::model::loss::{layerwise_loss, LossWeights};
use e3relax::model::{Batch, Model, ModelConfig};
use tch::{Device, Kind, Tensor};

fn setup() -> (Model, Batch, Tensor, Tensor) {
    setup_with(small_config())
}

fn setup_with(config: ModelConfig) -> (Model, Batch, Tensor, Tensor) {
    let mut model = small_model(&config, 21);
    model.vs.double();
    let crystals = [random_crystal(5, 5), random_crystal(6, 4)];
    let refs: Vec<_> = crystals.iter().collect();
    let batch = Batch::new(&refs, &config, Device::Cpu, Kind::Double, false).unwrap();
    tch::manual_seed(3);
    let target_pos = &batch.positions + Tensor::randn([9, 3], (Kind::Double, Device::Cpu)) * 0.3;
    let target_lat = &batch.lattice + Tensor::randn([2, 3, 3], (Kind::Double, Device::Cpu)) * 0.3;
    (model, batch, target_pos, target_lat)
}

/// The layer-wise loss; `per_crystal` as in [`LossWeights`].
fn loss(model: &Model, batch: &Batch, tp: &Tensor, tl: &Tensor, per_crystal: bool) -> Tensor {
    let outputs = model.network.forward(batch);
    layerwise_loss(
        &outputs,
        tp,
        tl,
        &batch.atom_crystal,
        &batch.atom_counts,
        &LossWeights {
            layers: model.config().loss_weights(&[]),
            // Not 1, so that the gradient check covers the weight.
            lattice: 2.5,
            per_crystal,
        },
    )
}

/// Central difference of the loss when `tensor[index]` moves by +-h.
fn numeric(
    model: &Model,
    batch: &Batch,
    tp: &Tensor,
    tl: &Tensor,
    tensor: &Tensor,
    index: &[i64],
    per_crystal: bool,
) -> f64 {
    let h = 1e-6;
    let entry = |t: &Tensor| index.iter().fold(t.shallow_clone(), |acc, &i| acc.get(i));
    let original = entry(tensor).double_value(&[]);
    let at = |value: f64| {
        tch::no_grad(|| {
            let _ = entry(tensor).fill_(value);
            loss(model, batch, tp, tl, per_crystal).double_value(&[])
        })
    };
    let up = at(original + h);
    let down = at(original - h);
    at(original);
    (up - down) / (2.0 * h)
}

#[test]
fn parameter_gradients_match_finite_differences() {
    let (model, batch, tp, tl) = setup();
    let value = loss(&model, &batch, &tp, &tl, false);
    value.backward();
    let params = model.named_parameters();
    let checks: [(&str, &[i64]); 6] = [
        ("atom_embedding.weight", &[8, 3]),
        ("lattice_embedding.l2.weight", &[0, 5]),
        ("layers.0.message_passing.edge_proj.weight", &[7, 2]),
        ("layers.0.lattice_to_atom.l3.x_local_proj.2.bias", &[4]),
        ("layers.1.self_update.vec_proj.weight", &[3, 1]),
        ("layers.1.lattice_update.l1.mlp_l.weight", &[0, 9]),
    ];
    for (name, index) in checks {
        let p = &params[name];
        let grad = index
            .iter()
            .fold(p.grad(), |acc, &i| acc.get(i))
            .double_value(&[]);
        let fd = numeric(&model, &batch, &tp, &tl, p, index, false);
        assert!(
            (grad - fd).abs() < 1e-6 * (1.0 + fd.abs()),
            "{name}{index:?}: autograd {grad} vs finite difference {fd}"
        );
        assert!(fd.abs() > 1e-9, "{name}: the loss must depend on it");
    }
}

#[test]
fn element_descriptor_gradients_match_finite_differences() {
    let (model, batch, tp, tl) = setup_with(ModelConfig {
        element_features: true,
        ..small_config().invariant()
    });
    let value = loss(&model, &batch, &tp, &tl, false);
    value.backward();
    let params = model.named_parameters();
    // The learned rows start at zero; their gradient is the descriptor
    // part's gradient seen through the projection.
    assert_eq!(
        params["atom_embedding.weight"]
            .abs()
            .sum(None)
            .double_value(&[]),
        0.0
    );
    for (name, index) in [
        ("element_features.weight", [2i64, 30]),
        ("atom_embedding.weight", [8, 3]),
    ] {
        let p = &params[name];
        let grad = p.grad().get(index[0]).get(index[1]).double_value(&[]);
        let fd = numeric(&model, &batch, &tp, &tl, p, &index, false);
        assert!(
            (grad - fd).abs() < 1e-6 * (1.0 + fd.abs()),
            "{name}{index:?}: autograd {grad} vs finite difference {fd}"
        );
        assert!(fd.abs() > 1e-9, "{name}: the loss must depend on it");
    }
}

#[test]
fn input_gradients_match_finite_differences() {
    let (model, mut batch, tp, tl) = setup();
    batch.positions = batch.positions.set_requires_grad(true);
    batch.lattice = batch.lattice.set_requires_grad(true);
    // With the loss averaged per crystal: the two crystals (5 and 4 atoms)
    // weigh their atoms differently, which the check then covers too.
    let value = loss(&model, &batch, &tp, &tl, true);
    value.backward();
    for (tensor, index) in [
        (&batch.positions, vec![2i64, 1]),
        (&batch.positions, vec![7, 0]),
        (&batch.lattice, vec![1, 2, 0]),
    ] {
        let grad = index
            .iter()
            .fold(tensor.grad(), |acc, &i| acc.get(i))
            .double_value(&[]);
        let fd = numeric(&model, &batch, &tp, &tl, tensor, &index, true);
        assert!(
            (grad - fd).abs() < 1e-6 * (1.0 + fd.abs()),
            "input {index:?}: autograd {grad} vs finite difference {fd}"
        );
    }
}
