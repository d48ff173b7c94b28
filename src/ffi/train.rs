//! Training through the C ABI.

use std::ffi::{c_char, c_void, CString};
use std::ops::ControlFlow;

use super::{e3relax_status_t, guard, read_str};
use crate::train::{train, Progress, TrainConfig};

/// Receives one JSON object per event: `{"event": "round", ...}` after each
/// validation round, `{"event": "log", "message": ...}` for messages, and
/// `{"event": "done", ...}` at the end (with `"stopped_by_caller"`). The
/// string is valid during the call. Returning non-zero from a "round" event
/// stops the run once that round's checkpoint is written (e3relax_train
/// then returns E3RELAX_SUCCESS; `resume` continues it later); the return
/// value of other events is ignored.
pub type e3relax_progress_callback_t =
    Option<unsafe extern "C" fn(json: *const c_char, user_data: *mut c_void) -> i32>;

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
        // The callback's answer: non-zero asks to stop.
        let send = |value: serde_json::Value| -> i32 {
            match (callback, CString::new(value.to_string())) {
                (Some(cb), Ok(text)) => cb(text.as_ptr(), user_data),
                _ => 0,
            }
        };
        let mut on_progress = |p: &Progress| match p {
            Progress::Round(r) => {
                let mut value = serde_json::to_value(r).unwrap_or_default();
                value["event"] = "round".into();
                if send(value) != 0 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
            _ => ControlFlow::Continue(()),
        };
        let mut on_log = |m: &str| {
            send(serde_json::json!({"event": "log", "message": m}));
        };
        let summary = train(&config, resume != 0, &mut on_progress, &mut on_log)?;
        let mut value = serde_json::to_value(&summary).unwrap_or_default();
        value["event"] = "done".into();
        send(value);
        Ok(())
    })
}
