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

/// A device as users name it: `cpu`, `cuda`, `cuda:K` or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    Cpu,
    Cuda(usize),
    /// CUDA device 0 when available, else the CPU.
    Auto,
}

impl DeviceRequest {
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

/// The libtorch version this library was built against (tch 0.24 = 2.11.0).
pub const LIBTORCH_VERSION: &str = "2.11.0";

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
}
