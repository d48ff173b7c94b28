//! The C bad-input catalogue (tests/c/bad_inputs.c) compiled against this
//! build's libe3relax and run under valgrind: every case returns its status
//! and message, the process survives, and valgrind finds no invalid memory
//! access (only a documented glibc loader false positive is suppressed).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn c_bad_input_catalogue_under_valgrind() {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    // The cdylib of this build, linked from the build tree itself, where
    // build.rs puts its SONAME link (a program linked there must run).
    let libdir = crate::common::library_dir();
    assert!(
        libdir.join("libe3relax.so.0").exists(),
        "no SONAME link libe3relax.so.0 in {}",
        libdir.display()
    );
    let exe = work.path().join("bad_inputs");
    crate::common::compile_against_library(
        "cc",
        &["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"],
        &[source.join("tests/c/bad_inputs.c")],
        &exe,
        &["-lm".to_string()],
    );

    let model = work.path().join("model");
    crate::common::small_model(&crate::common::small_config(), 4)
        .save(&model)
        .unwrap();
    // Broken on purpose: NaN weights, weights whose prediction overflows,
    // and a config asking for 10^9 channels.
    let broken = |name: &str, fill: Option<f64>| {
        let dir = work.path().join(name);
        crate::common::small_model(&crate::common::small_config(), 4)
            .save(&dir)
            .unwrap();
        if let Some(value) = fill {
            let weights = dir.join("model.safetensors");
            let tensors = tch::Tensor::read_safetensors(&weights).unwrap();
            for (name, t) in &tensors {
                if name.starts_with("layers.0.position_update") {
                    let _ = t.shallow_clone().fill_(value);
                }
            }
            tch::Tensor::write_safetensors(&tensors, &weights).unwrap();
        }
        dir
    };
    let nan_model = broken("nan-model", Some(f64::NAN));
    let overflow_model = broken("overflow-model", Some(1e38));
    let huge_model = broken("huge-model", None);
    let config = huge_model.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("\"hidden_channels\": 16", "\"hidden_channels\": 1000000000"),
    )
    .unwrap();
    let out = Command::new("valgrind")
        .args(["--error-exitcode=99", "--leak-check=no", "-q"])
        .arg(format!(
            "--suppressions={}",
            source.join("tests/c/valgrind.supp").display()
        ))
        .arg(&exe)
        .arg(&model)
        .args([&nan_model, &overflow_model, &huge_model])
        .output()
        .expect("valgrind is needed (scripts/setup.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // 28 cases, 27 where a GPU makes the "CUDA without a GPU" case moot.
    assert!(stdout.contains("cases ok, 0 failed"), "{stdout}");
}

/// Every function of the C API through the C++ wrapper and the Fortran
/// module: versions, threads, CUDA count, loading (every Fortran option,
/// the default model), predictions (layers, batches), training with a
/// callback that stops the run.
#[test]
fn cxx_and_fortran_bindings_cover_the_c_api() {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    crate::common::small_model(&crate::common::small_config(), 4)
        .save(&model)
        .unwrap();
    // An ensemble in the same directory (used with "uncertainty": true).
    crate::common::small_model(&crate::common::small_config(), 5)
        .save(&model.join("members/b"))
        .unwrap();
    std::fs::write(model.join("ensemble.json"), r#"{"members": ["members/b"]}"#).unwrap();
    let data = source.join("tests/fixtures/pairs/bulk-small");
    let cxx = work.path().join("api_coverage_cxx");
    crate::common::compile_against_library(
        "g++",
        &["-std=c++14", "-Wall", "-Wextra", "-Werror"],
        &[source.join("tests/c/api_coverage.cpp")],
        &cxx,
        &[],
    );
    let fortran = work.path().join("api_coverage_fortran");
    crate::common::compile_fortran_program(&source.join("tests/c/api_coverage.f90"), &fortran);
    for exe in [&cxx, &fortran] {
        let out = Command::new(exe)
            .arg(&model)
            .arg(&data)
            .arg(work.path())
            .env_remove("E3RELAX_MODEL")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("API coverage: 0 failed"),
            "{}:\n{stdout}\n{stderr}",
            exe.display()
        );
    }
}
