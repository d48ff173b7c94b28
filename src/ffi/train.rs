//! Training through the C ABI.

use std::ffi::{c_char, c_void, CString};

use super::{e3relax_status_t, guard, read_str};
use crate::train::{train, Progress, TrainConfig};

/// Receives one JSON object per event: `{"event": "round", ...}` after each
/// validation round, `{"event": "log", "message": ...}` for messages, and
/// `{"event": "done", ...}` at the end. The string is valid during the call.
pub type e3relax_progress_callback_t =
    Option<unsafe extern "C" fn(json: *const c_char, user_data: *mut c_void)>;

/// Trains (or fine-tunes) a model as `e3relax train` does. `config_json` is
/// the training configuration (the JSON of `e3relax train --config`);
/// `resume` non-zero continues the checkpoint in its output folder.
/// `callback` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn e3relax_train(
    config_json: *const c_char,
    resume: i32,
    callback: e3relax_progress_callback_t,
    user_data: *mut c_void,
) -> e3relax_status_t {
    guard(|| {
        let config = TrainConfig::from_json(read_str(config_json, "config_json")?)?;
        let send = |value: serde_json::Value| {
            if let Some(cb) = callback {
                if let Ok(text) = CString::new(value.to_string()) {
                    cb(text.as_ptr(), user_data);
                }
            }
        };
        let mut on_progress = |p: &Progress| {
            if let Progress::Round(r) = p {
                let mut value = serde_json::to_value(r).unwrap_or_default();
                value["event"] = "round".into();
                send(value);
            }
        };
        let mut on_log = |m: &str| send(serde_json::json!({"event": "log", "message": m}));
        let summary = train(&config, resume != 0, &mut on_progress, &mut on_log)?;
        let mut value = serde_json::to_value(&summary).unwrap_or_default();
        value["event"] = "done".into();
        send(value);
        Ok(())
    })
}
