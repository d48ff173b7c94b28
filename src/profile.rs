//! Where the time goes: wall time per named stage, collected only while a
//! profile is being recorded on this thread (`e3relax bench profile`).
//!
//! Stages are timed with [`stage`], which costs one thread-local flag check
//! when nothing records. CPU libtorch kernels run synchronously, so a
//! stage's wall time is its own; on CUDA the recorder synchronises the
//! device at each stage boundary, so a profile there slows the pass down
//! but still attributes the time correctly.

use std::cell::RefCell;
use std::time::Instant;

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

struct Recorder {
    /// Stage names in first-seen order with their summed seconds and calls.
    stages: Vec<(String, f64, usize)>,
    cuda: Option<tch::Device>,
}

/// Time per stage of one recorded run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// `(stage, seconds, calls)` in the order the stages first ran.
    pub stages: Vec<(String, f64, usize)>,
}

impl Profile {
    /// Sum over all stages, seconds (nested stages count twice: subtract
    /// them with [`Profile::seconds_of`]).
    pub fn total(&self) -> f64 {
        self.stages.iter().map(|s| s.1).sum()
    }

    /// Seconds of the stages whose names start with `prefix`.
    pub fn seconds_of(&self, prefix: &str) -> f64 {
        self.stages
            .iter()
            .filter(|s| s.0.starts_with(prefix))
            .map(|s| s.1)
            .sum()
    }
}

/// Records the stages `body` runs on this thread (`device`: the device the
/// work runs on, synchronised at stage boundaries when it is CUDA).
/// Profiles do not nest: an inner `record` sees the stages, the outer none.
pub fn record<T>(device: tch::Device, body: impl FnOnce() -> T) -> (T, Profile) {
    let cuda = matches!(device, tch::Device::Cuda(_)).then_some(device);
    let previous = RECORDER.with(|r| {
        r.borrow_mut().replace(Recorder {
            stages: Vec::new(),
            cuda,
        })
    });
    let value = body();
    let recorder = RECORDER.with(|r| std::mem::replace(&mut *r.borrow_mut(), previous));
    let stages = recorder.map(|r| r.stages).unwrap_or_default();
    (value, Profile { stages })
}

/// Runs `body` as the stage `name` (summed over calls while recording).
pub fn stage<T>(name: &str, body: impl FnOnce() -> T) -> T {
    let recording = RECORDER.with(|r| r.borrow().as_ref().map(|rec| rec.cuda));
    let Some(cuda) = recording else {
        return body();
    };
    let sync = || {
        if let Some(tch::Device::Cuda(index)) = cuda {
            tch::Cuda::synchronize(index as i64);
        }
    };
    // The entry is made when the stage starts, so that a stage is listed
    // before the stages nested in it.
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            if !rec.stages.iter().any(|s| s.0 == name) {
                rec.stages.push((name.to_string(), 0.0, 0));
            }
        }
    });
    sync();
    let start = Instant::now();
    let value = body();
    sync();
    let seconds = start.elapsed().as_secs_f64();
    RECORDER.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            if let Some(entry) = rec.stages.iter_mut().find(|s| s.0 == name) {
                entry.1 += seconds;
                entry.2 += 1;
            }
        }
    });
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_summed_in_order_and_only_while_recording() {
        stage("ignored", || {
            std::thread::sleep(std::time::Duration::from_millis(1))
        });
        let ((), profile) = record(tch::Device::Cpu, || {
            for _ in 0..3 {
                stage("b", || {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                });
                stage("a", || ());
            }
        });
        let names: Vec<&str> = profile.stages.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        // A stage is listed before the stages nested in it.
        let ((), nested) = record(tch::Device::Cpu, || {
            stage("outer", || stage("inner", || ()))
        });
        let names: Vec<&str> = nested.stages.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["outer", "inner"]);
        assert_eq!(profile.stages[0].2, 3);
        assert!(profile.seconds_of("b") >= 0.006, "{profile:?}");
        assert!(profile.total() >= profile.seconds_of("b"));
        // Nothing recorded once the profile is over.
        let ((), empty) = record(tch::Device::Cpu, || ());
        assert!(empty.stages.is_empty());
    }
}
