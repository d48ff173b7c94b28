//! The C bad-input catalogue (tests/c/bad_inputs.c) compiled against this
//! build's libe3relax and run under valgrind: every case returns its status
//! and message, the process survives, and valgrind finds no invalid memory
//! access (only a documented glibc loader false positive is suppressed).

mod common;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn c_bad_input_catalogue_under_valgrind() {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    // The cdylib of this test build, under its SONAME.
    let built = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("libe3relax.so");
    let libdir = work.path().join("lib");
    std::fs::create_dir(&libdir).unwrap();
    std::os::unix::fs::symlink(&built, libdir.join("libe3relax.so")).unwrap();
    std::os::unix::fs::symlink(&built, libdir.join("libe3relax.so.0")).unwrap();
    let exe = work.path().join("bad_inputs");
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg(format!("-I{}", source.join("include").display()))
        .arg(source.join("tests/c/bad_inputs.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", libdir.display()))
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .args(["-le3relax", "-lm"])
        .status()
        .expect("cc is needed (scripts/setup.sh)");
    assert!(status.success(), "compiling tests/c/bad_inputs.c failed");

    let model = work.path().join("model");
    common::small_model(&common::small_config(), 4)
        .save(&model)
        .unwrap();
    let out = Command::new("valgrind")
        .args(["--error-exitcode=99", "--leak-check=no", "-q"])
        .arg(format!(
            "--suppressions={}",
            source.join("tests/c/valgrind.supp").display()
        ))
        .arg(&exe)
        .arg(&model)
        .output()
        .expect("valgrind is needed (scripts/setup.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // 20 cases, 19 where a GPU makes the "CUDA without a GPU" case moot.
    assert!(stdout.contains("cases ok, 0 failed"), "{stdout}");
}
