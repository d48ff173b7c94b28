//! libtorch start-up and device selection.
//!
//! rustc links with `--as-needed`, so `libtorch_cuda.so` is never loaded by
//! the dynamic linker and CUDA would be silently missing; linking it with
//! `--no-as-needed` instead breaks start-up on CPU-only installs. So on first
//! use we find the folder of the loaded `libtorch_cpu.so` and `dlopen` its
//! `libtorch_cuda.so` beside it; when that fails we carry on on the CPU and
//! say why as soon as a CUDA device is asked for.

use std::ffi::{CStr, CString};

use once_cell::sync::Lazy;
use tch::Device;

use crate::error::{Error, Result};

/// Outcome of loading `libtorch_cuda.so`: `Ok(path)` or why it failed.
static CUDA_LIBRARY: Lazy<std::result::Result<String, String>> = Lazy::new(load_cuda_library);

/// The folder of the `libtorch_cpu.so` mapped into this process.
fn libtorch_dir() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| p.rsplit_once('/').map(|(dir, _)| dir.to_string()))
}

fn load_cuda_library() -> std::result::Result<String, String> {
    let dir = libtorch_dir().ok_or("libtorch_cpu.so is not mapped into this process")?;
    let path = format!("{dir}/libtorch_cuda.so");
    if !std::path::Path::new(&path).exists() {
        return Err(format!("{path} does not exist (a CPU-only libtorch)"));
    }
    let c_path = CString::new(path.clone()).map_err(|e| e.to_string())?;
    // SAFETY: dlopen with a valid C string; the handle is kept for the life
    // of the process on purpose (libtorch registers its CUDA backend on load).
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns NULL or a valid C string owned by libc.
        let reason = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "unknown dlopen error".to_string()
            } else {
                CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        return Err(format!("cannot load {path}: {reason}"));
    }
    Ok(path)
}

/// Loads `libtorch_cuda.so` if it can be loaded (idempotent, cheap after the
/// first call). Must run before anything that asks libtorch whether CUDA
/// exists (seeding does): libtorch caches that answer for the process.
pub fn load_cuda_backend() {
    Lazy::force(&CUDA_LIBRARY);
}

/// Loads the CUDA backend if possible (idempotent) and tells whether a CUDA
/// device can be used.
pub fn cuda_available() -> bool {
    CUDA_LIBRARY.is_ok() && tch::Cuda::is_available()
}

/// Why CUDA cannot be used, or `None` when it can.
pub fn cuda_unavailable_reason() -> Option<String> {
    match &*CUDA_LIBRARY {
        Err(reason) => Some(format!(
            "the CUDA backend of libtorch is not available: {reason}"
        )),
        Ok(_) if !tch::Cuda::is_available() => Some(
            "libtorch_cuda.so is loaded but no CUDA device is visible (no GPU or no driver)".into(),
        ),
        Ok(_) => None,
    }
}

/// Keeps freed memory in glibc's heap for the next prediction instead of
/// handing it back to the kernel (which costs a page fault per 4 KiB on
/// the next use). A prediction allocates and frees per-edge tensors of
/// tens of MB for every block of every layer; with glibc's defaults each is
/// a fresh `mmap` or a heap top trimmed after use, and at F = 512 the page
/// faults took half of message passing (`e3relax bench profile`). Sets
/// `M_MMAP_THRESHOLD` to 32 MiB (glibc's upper bound; message passing keeps
/// its chunks below it), `M_TRIM_THRESHOLD` to 1 GiB and `M_TOP_PAD` to
/// 256 MiB. The price: up to about 1 GiB of freed memory stays with the
/// process (reused by any later allocation, the caller's too) instead of
/// going back to the system. Process-wide; applied once by the CLI and by
/// `e3relax_load`, unless `E3RELAX_TUNE_MALLOC=0`. Returns whether the
/// settings were applied (glibc only).
pub fn tune_allocator() -> bool {
    static APPLIED: Lazy<bool> = Lazy::new(|| {
        if std::env::var("E3RELAX_TUNE_MALLOC").is_ok_and(|v| v.trim() == "0") {
            return false;
        }
        apply_malloc_settings()
    });
    *APPLIED
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply_malloc_settings() -> bool {
    const MIB: libc::c_int = 1 << 20;
    // SAFETY: mallopt only changes glibc's tuning parameters; any value is
    // accepted or refused (return 0) without side effects.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * MIB) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * MIB) == 1
            && libc::mallopt(libc::M_TOP_PAD, 256 * MIB) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply_malloc_settings() -> bool {
    false
}

/// A device as users name it: `cpu`, `cuda`, `cuda:K` or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    Cpu,
    Cuda(usize),
    /// CUDA device 0 when available, else the CPU.
    Auto,
}

impl std::str::FromStr for DeviceRequest {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        DeviceRequest::parse(name)
    }
}

deserialize_from_str!(DeviceRequest);

impl DeviceRequest {
    /// Parses a device name: `cpu`, `cuda` (or `gpu`), `cuda:K` or `auto`.
    pub fn parse(name: &str) -> Result<Self> {
        let lower = name.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" | "gpu" => Ok(DeviceRequest::Cuda(0)),
            "auto" => Ok(DeviceRequest::Auto),
            _ => lower
                .strip_prefix("cuda:")
                .and_then(|k| k.parse().ok())
                .map(DeviceRequest::Cuda)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "unknown device '{name}' (expected cpu, cuda, cuda:K or auto)"
                    ))
                }),
        }
    }

    /// The tch device, or an error when CUDA is asked for but unavailable
    /// (never a silent fall-back to the CPU).
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceRequest::Cpu => Ok(Device::Cpu),
            DeviceRequest::Auto => Ok(if cuda_available() {
                Device::Cuda(0)
            } else {
                Device::Cpu
            }),
            DeviceRequest::Cuda(k) => {
                if let Some(reason) = cuda_unavailable_reason() {
                    return Err(Error::Device(format!(
                        "cuda:{k} was requested but {reason}"
                    )));
                }
                let count = tch::Cuda::device_count() as usize;
                if k >= count {
                    return Err(Error::Device(format!(
                        "cuda:{k} was requested but only {count} CUDA device(s) exist"
                    )));
                }
                Ok(Device::Cuda(k))
            }
        }
    }
}

/// The libtorch version this library was built against (tch 0.24 = 2.11.0),
/// from `[package.metadata.e3relax]` in Cargo.toml.
pub const LIBTORCH_VERSION: &str = env!("E3RELAX_LIBTORCH_VERSION");

/// The version of the libtorch loaded into this process, read from the
/// files next to it (`../version.py` of a PyPI install, `../build-version`
/// of a libtorch archive); `None` when neither is there.
pub fn loaded_libtorch_version() -> Option<String> {
    let _ = tch::Tensor::zeros([1], (tch::Kind::Float, Device::Cpu)); // make sure it is mapped
    let lib = std::path::PathBuf::from(libtorch_dir()?);
    let root = lib.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        let line = text.lines().find(|l| l.starts_with("__version__"))?;
        return Some(line.split(['\'', '"']).nth(1)?.to_string());
    }
    std::fs::read_to_string(root.join("build-version"))
        .ok()
        .map(|v| v.trim().to_string())
}

/// Refuses a libtorch other than the one this library was built for: a
/// mismatch fails with undefined symbols or wrong results at run time.
pub fn check_libtorch_version() -> Result<()> {
    static CHECK: Lazy<std::result::Result<(), String>> = Lazy::new(|| {
        match loaded_libtorch_version() {
        Some(found) if found.split('+').next() != Some(LIBTORCH_VERSION) => Err(format!(
            "libtorch {found} is loaded but e3relax was built for {LIBTORCH_VERSION}; point LD_LIBRARY_PATH at libtorch {LIBTORCH_VERSION}"
        )),
        _ => Ok(()),
    }
    });
    CHECK.clone().map_err(Error::Device)
}

/// Set in a child process by the `pthread_atfork` handler: the child of a
/// fork has a copy of rayon's global pool but none of its threads.
static FORKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn mark_forked_child() {
    FORKED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Registers the fork handler (once, before any parallel work).
pub fn watch_for_fork() {
    static WATCH: Lazy<()> = Lazy::new(|| {
        // SAFETY: registers a handler that only stores to an atomic.
        unsafe {
            libc::pthread_atfork(None, None, Some(mark_forked_child));
        }
    });
    Lazy::force(&WATCH);
}

/// A `Send` wrapper for work handed to another thread while its caller
/// waits (raw pointers of a C caller stay valid until it returns).
struct AssertSend<F>(F);

// SAFETY: only used by `with_thread_pool`, whose caller blocks until the
// work is done, so whatever the work borrows outlives it.
unsafe impl<F> Send for AssertSend<F> {}

impl<F: FnOnce() -> R, R> AssertSend<F> {
    fn call(self) -> R {
        (self.0)()
    }
}

/// Runs `work` where rayon's parallel iterators can run. Normally that is
/// the calling thread with rayon's global pool. In a child forked after
/// the library was set up (Python's `multiprocessing` forks by default on
/// Linux), the global pool's threads do not exist and every parallel
/// iterator would wait for them forever: there the work runs on a pool the
/// child creates for itself (one per process id; the caller waits).
pub fn with_thread_pool<R>(work: impl FnOnce() -> R) -> R {
    watch_for_fork();
    if !FORKED.load(std::sync::atomic::Ordering::SeqCst) {
        return work();
    }
    type Pools = std::sync::Mutex<Option<(u32, &'static rayon::ThreadPool)>>;
    static CHILD_POOL: Pools = std::sync::Mutex::new(None);
    let pid = std::process::id();
    let pool = {
        let mut slot = CHILD_POOL.lock().unwrap_or_else(|e| e.into_inner());
        match *slot {
            Some((owner, pool)) if owner == pid => pool,
            _ => {
                // The parent's pool is left alone (its threads are not
                // in this process); this one lives as long as the process.
                let pool: &'static rayon::ThreadPool = Box::leak(Box::new(
                    rayon::ThreadPoolBuilder::new()
                        .build()
                        .expect("a thread pool in the forked child"),
                ));
                *slot = Some((pid, pool));
                pool
            }
        }
    };
    let work = AssertSend(work);
    let result = pool.install(move || AssertSend(work.call()));
    result.0
}

/// The most intra-op or inter-op threads e3relax accepts. Far above any
/// node's cores; it exists so that a typo (100000) is an error instead of
/// libgomp starting threads until the machine runs out of process ids.
pub const MAX_THREADS: i32 = 1024;

/// Whether someone (a caller, or [`apply_default_threads`]) has chosen the
/// thread count already: the default must never override a choice.
static THREADS_CHOSEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets libtorch's intra-op threads, and its inter-op threads when
/// `interop > 0` (libtorch takes those only once per process, before any
/// parallel work: asking again for a different number is an error).
pub fn set_threads(intra: i32, interop: i32) -> Result<()> {
    if !(1..=MAX_THREADS).contains(&intra) {
        return Err(Error::InvalidArgument(format!(
            "threads must be in 1..={MAX_THREADS}, got {intra}"
        )));
    }
    if !(0..=MAX_THREADS).contains(&interop) {
        return Err(Error::InvalidArgument(format!(
            "interop threads must be in 0..={MAX_THREADS} (0 keeps libtorch's), got {interop}"
        )));
    }
    if interop > 0 && tch::get_num_interop_threads() != interop {
        // Through torch-sys, not tch (whose wrapper panics): libtorch throws
        // once parallel work has started or the count was set before.
        let refused = unsafe {
            torch_sys::at_set_num_interop_threads(interop);
            take_torch_error()
        };
        let now = tch::get_num_interop_threads();
        if refused.is_some() || now != interop {
            return Err(Error::InvalidArgument(format!(
                "libtorch's inter-op threads can be set only once per process, before any parallel work; they stay {now} (asked for {interop})"
            )));
        }
    }
    tch::set_num_threads(intra);
    THREADS_CHOSEN.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// The error message libtorch left for the last torch-sys call, if any
/// (and clears it).
///
/// # Safety
/// Must follow a torch-sys call on the same thread.
unsafe fn take_torch_error() -> Option<String> {
    let error = torch_sys::get_and_reset_last_err();
    if error.is_null() {
        return None;
    }
    let text = CStr::from_ptr(error).to_string_lossy().into_owned();
    libc::free(error.cast());
    Some(text)
}

/// The intra-op thread count used when nobody chose one:
/// `E3RELAX_NUM_THREADS`, else `OMP_NUM_THREADS` (its first entry), else 1.
///
/// One thread is the default because e3relax is typically called from
/// every rank of a full MPI node, where more threads per rank would
/// oversubscribe the cores (a 7-atom prediction took 2.4 s instead of
/// 6 ms that way), and because a crystal of tens of atoms gains nothing
/// from intra-op threads. Ask for more where cores are free.
pub fn default_threads() -> Result<i32> {
    for variable in ["E3RELAX_NUM_THREADS", "OMP_NUM_THREADS"] {
        let Ok(value) = std::env::var(variable) else {
            continue;
        };
        return threads_from_variable(variable, &value);
    }
    Ok(1)
}

/// Reads a thread-count variable. OpenMP allows a nesting list ("4,2");
/// the outer level is ours.
fn threads_from_variable(variable: &str, value: &str) -> Result<i32> {
    let first = value.split(',').next().unwrap_or_default().trim();
    match first.parse::<i32>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(Error::InvalidArgument(format!(
            "{variable}={value} is not a thread count in 1..={MAX_THREADS}"
        ))),
    }
}

/// While one is alive, libtorch's intra-op threads are 1: the workers of
/// a parallel relaxation each run single-threaded. The count in force when
/// the first guard was made comes back when the last one drops, so
/// concurrent parallel relaxations (threads of a C caller) nest; a
/// one-worker prediction running beside them meanwhile gets one thread.
pub struct OneThreadPerWorker {
    _private: (),
}

/// (guards alive, intra-op threads before the first).
static PARALLEL_SECTIONS: std::sync::Mutex<(usize, i32)> = std::sync::Mutex::new((0, 0));

impl OneThreadPerWorker {
    pub fn enter() -> OneThreadPerWorker {
        let mut sections = PARALLEL_SECTIONS.lock().unwrap_or_else(|e| e.into_inner());
        if sections.0 == 0 {
            sections.1 = tch::get_num_threads();
            tch::set_num_threads(1);
        }
        sections.0 += 1;
        OneThreadPerWorker { _private: () }
    }
}

impl Drop for OneThreadPerWorker {
    fn drop(&mut self) {
        let mut sections = PARALLEL_SECTIONS.lock().unwrap_or_else(|e| e.into_inner());
        sections.0 -= 1;
        if sections.0 == 0 {
            tch::set_num_threads(sections.1);
        }
    }
}

/// Applies [`default_threads`] once, unless a thread count was chosen
/// already. Called where a program starts using e3relax (the CLI, the C
/// ABI's model loading); Rust callers keep libtorch's setting unless they
/// call it or [`set_threads`].
pub fn apply_default_threads() -> Result<()> {
    if THREADS_CHOSEN.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    set_threads(default_threads()?, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert_eq!(DeviceRequest::parse("CPU").unwrap(), DeviceRequest::Cpu);
        assert_eq!(
            DeviceRequest::parse("cuda").unwrap(),
            DeviceRequest::Cuda(0)
        );
        assert_eq!(
            DeviceRequest::parse("cuda:3").unwrap(),
            DeviceRequest::Cuda(3)
        );
        assert_eq!(DeviceRequest::parse("auto").unwrap(), DeviceRequest::Auto);
        assert!(DeviceRequest::parse("tpu")
            .unwrap_err()
            .to_string()
            .contains("unknown device 'tpu'"));
        assert!(DeviceRequest::parse("cuda:x").is_err());
    }

    #[test]
    fn cuda_request_is_an_error_or_a_real_device() {
        match DeviceRequest::Cuda(0).resolve() {
            Ok(d) => assert!(cuda_available() && d == Device::Cuda(0)),
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains("cuda:0 was requested but"), "{m}");
                assert!(!cuda_available());
                assert_eq!(DeviceRequest::Auto.resolve().unwrap(), Device::Cpu);
            }
        }
        assert!(DeviceRequest::Cuda(99).resolve().is_err());
    }

    #[test]
    fn the_loaded_libtorch_is_the_one_built_for() {
        let found = loaded_libtorch_version().expect("version.py next to the PyPI libtorch");
        assert!(found.starts_with("2.11.0"), "{found}");
        check_libtorch_version().unwrap();
    }

    #[test]
    fn libtorch_is_found_in_process() {
        // Touch libtorch so it is mapped, then the folder must be found.
        let _ = tch::Tensor::zeros([1], (tch::Kind::Float, Device::Cpu));
        assert!(libtorch_dir().is_some());
    }

    #[test]
    fn thread_variables_are_bounded_and_read_like_openmp() {
        assert_eq!(threads_from_variable("OMP_NUM_THREADS", "4").unwrap(), 4);
        assert_eq!(threads_from_variable("OMP_NUM_THREADS", " 4,2").unwrap(), 4);
        for bad in ["0", "-1", "100000", "many", ""] {
            let e = threads_from_variable("OMP_NUM_THREADS", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("is not a thread count in 1..=1024"), "{e}");
        }
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_allocator_settings() {
        // Each mallopt call is refused (0) for a value out of glibc's
        // bounds, e.g. an mmap threshold above 32 MiB: all three must hold.
        if std::env::var_os("E3RELAX_TUNE_MALLOC").is_none() {
            assert!(tune_allocator());
        }
    }

    #[test]
    fn thread_counts_are_bounded() {
        for (intra, interop) in [(0, 0), (1025, 0), (1, -1), (1, 1025)] {
            assert!(set_threads(intra, interop).is_err(), "{intra} {interop}");
        }
    }
}
