//! The C ABI called from Rust as C code calls it, for the tests that go
//! through `e3relax_load` / `e3relax_predict` (tests/programs/c_abi.rs, tests/cuda.rs).

use std::ffi::{CStr, CString};
use std::ptr::null;

use super::c_decl::*;

/// This thread's last error message.
pub fn last_error() -> String {
    unsafe {
        CStr::from_ptr(e3relax_last_error())
            .to_string_lossy()
            .into_owned()
    }
}

/// Loads a model directory with optional options JSON.
pub fn load(path: &CString, options: Option<&str>) -> (e3relax_status_t, *mut e3relax_model_t) {
    let options = options.map(|o| CString::new(o).unwrap());
    // Not NULL on entry: a failed load must reset it.
    let mut model = std::ptr::dangling_mut::<e3relax_model_t>();
    let status = unsafe {
        e3relax_load(
            path.as_ptr(),
            options.as_ref().map_or(null(), |o| o.as_ptr()),
            &mut model,
        )
    };
    (status, model)
}

/// A structure as the C arrays (numbers, positions, lattice).
pub fn arrays(s: &e3relax::Structure) -> (Vec<i32>, Vec<f64>, Vec<f64>) {
    (
        s.numbers.iter().map(|&z| z as i32).collect(),
        s.positions.iter().flatten().copied().collect(),
        s.lattice.iter().flatten().copied().collect(),
    )
}

/// One `e3relax_predict` call; returns the status and both outputs.
pub fn predict(
    model: *const e3relax_model_t,
    numbers: &[i32],
    positions: &[f64],
    lattice: &[f64],
) -> (e3relax_status_t, Vec<f64>, Vec<f64>) {
    let mut out_pos = vec![0.0; positions.len()];
    let mut out_lat = vec![0.0; 9];
    let status = unsafe {
        e3relax_predict(
            model,
            numbers.len() as i32,
            numbers.as_ptr(),
            positions.as_ptr(),
            lattice.as_ptr(),
            out_pos.as_mut_ptr(),
            out_lat.as_mut_ptr(),
        )
    };
    (status, out_pos, out_lat)
}
