//! Arbitrary atom counts, atomic numbers, coordinates and lattices (NaN,
//! Inf, huge, tiny, overlapping) through e3relax_predict and
//! e3relax_predict_batch on a small model: a status, never a crash.
#![no_main]

use e3relax::ffi::*;
use libfuzzer_sys::fuzz_target;
use once_cell::sync::Lazy;

struct Handle(*mut e3relax_model_t);
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

static MODEL: Lazy<Handle> = Lazy::new(|| {
    let dir = tempfile::tempdir().unwrap().keep();
    let config = e3relax::model::ModelConfig {
        graph_radius: 4.0,
        max_neighbors: 12,
        ..e3relax::model::ModelConfig::with_size(8, 1, 4)
    };
    e3relax::model::Model::new(&config, 0).unwrap().save(&dir).unwrap();
    let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    let mut model = std::ptr::null_mut();
    unsafe { e3relax_load(path.as_ptr(), std::ptr::null(), &mut model) };
    assert!(!model.is_null());
    Handle(model)
});

fn f64s(data: &[u8]) -> Vec<f64> {
    data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let natoms = (data[0] % 8) as i32 + if data[1] & 1 == 0 { 0 } else { -3 };
    let n = natoms.max(0) as usize;
    let rest = &data[2..];
    let numbers: Vec<i32> = (0..n.max(1)).map(|i| *rest.get(i).unwrap_or(&1) as i32 - 8).collect();
    let mut values = f64s(rest.get(n..).unwrap_or(&[]));
    // Mostly sane coordinates with the fuzzer's values mixed in.
    values.resize(9 + 3 * n.max(1), 0.0);
    let (lattice, positions) = values.split_at(9);
    let mut out_pos = vec![0.0; 3 * n.max(1)];
    let mut out_lat = [0.0; 9];
    let model = MODEL.0;
    let status = unsafe {
        e3relax_predict(model, natoms, numbers.as_ptr(), positions.as_ptr(), lattice.as_ptr(), out_pos.as_mut_ptr(), out_lat.as_mut_ptr())
    };
    if status == e3relax_status_t::E3RELAX_SUCCESS {
        assert!(out_pos.iter().take(3 * n).all(|v| v.is_finite()) || positions.iter().any(|v| v.abs() > 1e6));
    }
    let counts = [natoms, 1];
    let batch_positions: Vec<f64> = positions.iter().chain([0.0; 3].iter()).copied().collect();
    let batch_numbers: Vec<i32> = numbers.iter().take(n).chain([1].iter()).copied().collect();
    let lattices: Vec<f64> = lattice.iter().chain([3.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 3.0].iter()).copied().collect();
    let _ = unsafe {
        e3relax_predict_batch(model, 2, counts.as_ptr(), batch_numbers.as_ptr(), batch_positions.as_ptr(), lattices.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut())
    };
});
