//! The whole network against an independent NumPy implementation of the
//! specification (tools/generate/reference_numpy.py, float64, graph from pymatgen):
//! weights in the authors' layout go through the converter, and every
//! layer's positions and lattice must agree, both with the authors'
//! switches (lattice delta as columns, no wrapping) and with ours.

use std::path::PathBuf;

use e3relax::model::authors::import_authors_checkpoint;
use e3relax::model::{Batch, ModelConfig};
use e3relax::Structure;
use serde_json::Value;
use tch::{Device, Kind};

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number: {other}"),
    }
}

/// Models hold f32 parameters, so the converted weights are the reference's
/// rounded to f32 (relative 6e-8); the computation itself runs in f64.
const TOLERANCE: f64 = 1e-6;

fn check(columns: bool, wrap: bool, key: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference_numpy");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("outputs.json")).unwrap()).unwrap();
    let mut config: ModelConfig = serde_json::from_value(reference["config"].clone()).unwrap();
    config.lattice_delta_as_columns = columns;
    config.wrap_positions = wrap;
    // FIX 3 is not in the NumPy reference; tests/library/network.rs pins it down.
    config.remove_net_translation = false;
    let mut model = import_authors_checkpoint(&dir.join("weights.safetensors"), &config).unwrap();
    model.vs.double();
    for (k, crystal) in reference["crystals"].as_array().unwrap().iter().enumerate() {
        let l = floats(&crystal["lattice"]);
        let positions: Vec<[f64; 3]> = floats(&crystal["positions"])
            .chunks(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        let numbers: Vec<u32> = floats(&crystal["numbers"])
            .iter()
            .map(|&z| z as u32)
            .collect();
        let s = Structure::new(
            [[l[0], l[1], l[2]], [l[3], l[4], l[5]], [l[6], l[7], l[8]]],
            positions,
            numbers,
        )
        .unwrap();
        let batch = Batch::new(&[&s], &config, Device::Cpu, Kind::Double, false).unwrap();
        let outputs = tch::no_grad(|| model.network.forward(&batch));
        let expected = reference[key][k].as_array().unwrap();
        assert_eq!(outputs.len(), expected.len());
        for (t, (out, want)) in outputs.iter().zip(expected).enumerate() {
            let got_pos: Vec<f64> = Vec::try_from(out.positions.flatten(0, -1)).unwrap();
            let got_lat: Vec<f64> = Vec::try_from(out.lattice.flatten(0, -1)).unwrap();
            for (a, b) in got_pos.iter().zip(floats(&want["positions"])) {
                assert!(
                    (a - b).abs() < TOLERANCE,
                    "{key} crystal {k} layer {t}: position {a} vs {b}"
                );
            }
            for (a, b) in got_lat.iter().zip(floats(&want["lattice"])) {
                assert!(
                    (a - b).abs() < TOLERANCE,
                    "{key} crystal {k} layer {t}: lattice {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn authors_switches_match_the_numpy_reference() {
    check(true, false, "authors");
}

#[test]
fn our_switches_match_the_numpy_reference() {
    check(false, true, "ours");
}
