//! The C ABI of `include/e3relax.h`, declared for Rust tests as a C program
//! sees it: the library's `ffi` module is private, and these declarations
//! link against the exported symbols of the crate the tests are built with.
#![allow(non_camel_case_types, dead_code)]

use std::ffi::{c_char, c_void};

/// `e3relax_status_t` (values as in the header).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum e3relax_status_t {
    E3RELAX_SUCCESS = 0,
    E3RELAX_INVALID_ARGUMENT = 1,
    E3RELAX_INVALID_STRUCTURE = 2,
    E3RELAX_MODEL_ERROR = 3,
    E3RELAX_IO_ERROR = 4,
    E3RELAX_FORMAT_ERROR = 5,
    E3RELAX_DEVICE_ERROR = 6,
    E3RELAX_TORCH_ERROR = 7,
    E3RELAX_INTERNAL_ERROR = 8,
}

/// The opaque model handle.
#[repr(C)]
pub struct e3relax_model_t {
    _opaque: [u8; 0],
}

pub type e3relax_progress_callback_t =
    Option<unsafe extern "C" fn(json: *const c_char, user_data: *mut c_void) -> i32>;

pub type e3relax_predict_progress_t =
    Option<unsafe extern "C" fn(done: i32, total: i32, user_data: *mut c_void)>;

unsafe extern "C" {
    // No pointers in: safe to call.
    pub safe fn e3relax_last_error() -> *const c_char;
    pub safe fn e3relax_version() -> *const c_char;
    pub safe fn e3relax_abi_version() -> i32;
    pub safe fn e3relax_torch_version() -> *const c_char;
    pub safe fn e3relax_set_num_threads(threads: i32, interop_threads: i32) -> e3relax_status_t;
    pub fn e3relax_cuda_device_count(count: *mut i32) -> e3relax_status_t;
    pub fn e3relax_load(
        path: *const c_char,
        options_json: *const c_char,
        model: *mut *mut e3relax_model_t,
    ) -> e3relax_status_t;
    pub fn e3relax_free(model: *mut e3relax_model_t) -> e3relax_status_t;
    pub fn e3relax_num_layers(model: *const e3relax_model_t, layers: *mut i32) -> e3relax_status_t;
    pub fn e3relax_predict(
        model: *const e3relax_model_t,
        natoms: i32,
        numbers: *const i32,
        positions: *const f64,
        lattice: *const f64,
        out_positions: *mut f64,
        out_lattice: *mut f64,
    ) -> e3relax_status_t;
    pub fn e3relax_set_predict_progress(
        model: *mut e3relax_model_t,
        callback: e3relax_predict_progress_t,
        user_data: *mut c_void,
    ) -> e3relax_status_t;
    pub fn e3relax_predict_uncertainty(
        model: *const e3relax_model_t,
        natoms: i32,
        numbers: *const i32,
        positions: *const f64,
        lattice: *const f64,
        move_mask: *const i32,
        mask_axes: i32,
        out_positions: *mut f64,
        out_lattice: *mut f64,
        out_atom_uncertainty: *mut f64,
        out_cell_uncertainty: *mut f64,
        out_volume_uncertainty: *mut f64,
    ) -> e3relax_status_t;
    pub fn e3relax_predict_frozen(
        model: *const e3relax_model_t,
        natoms: i32,
        numbers: *const i32,
        positions: *const f64,
        lattice: *const f64,
        move_mask: *const i32,
        mask_axes: i32,
        out_positions: *mut f64,
        out_lattice: *mut f64,
    ) -> e3relax_status_t;
    pub fn e3relax_predict_batch_frozen(
        model: *const e3relax_model_t,
        nstructures: i32,
        natoms: *const i32,
        numbers: *const i32,
        positions: *const f64,
        lattices: *const f64,
        move_mask: *const i32,
        mask_axes: i32,
        out_positions: *mut f64,
        out_lattices: *mut f64,
    ) -> e3relax_status_t;
    pub fn e3relax_predict_with(
        model: *const e3relax_model_t,
        options_json: *const c_char,
        nstructures: i32,
        natoms: *const i32,
        numbers: *const i32,
        positions: *const f64,
        lattices: *const f64,
        move_mask: *const i32,
        mask_axes: i32,
        out_positions: *mut f64,
        out_lattices: *mut f64,
        out_atom_uncertainty: *mut f64,
        out_cell_uncertainty: *mut f64,
        out_volume_uncertainty: *mut f64,
    ) -> e3relax_status_t;
    pub fn e3relax_predict_layers(
        model: *const e3relax_model_t,
        natoms: i32,
        numbers: *const i32,
        positions: *const f64,
        lattice: *const f64,
        out_positions: *mut f64,
        out_lattices: *mut f64,
    ) -> e3relax_status_t;
    pub fn e3relax_predict_batch(
        model: *const e3relax_model_t,
        nstructures: i32,
        natoms: *const i32,
        numbers: *const i32,
        positions: *const f64,
        lattices: *const f64,
        out_positions: *mut f64,
        out_lattices: *mut f64,
    ) -> e3relax_status_t;
    pub fn e3relax_train(
        config_json: *const c_char,
        resume: i32,
        callback: e3relax_progress_callback_t,
        user_data: *mut c_void,
    ) -> e3relax_status_t;
}
