//! LAMMPS, from Debian's packages (scripts/setup.sh installs them), starting
//! its own minimiser from e3relax's prediction: the box conversion helper
//! (`include/e3relax_lammps.hpp`) against obvious checks, and the example
//! driver (`examples/lammps/`) on Si (Tersoff) and Cu (EAM): both starts
//! reach the same minimum, and a rotated copy of the input, brought back
//! through the conversion, minimises identically.

use std::path::PathBuf;
use std::process::Command;

fn source() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const CXX_FLAGS: &[&str] = &["-std=c++14", "-O2", "-Wall", "-Wextra", "-Werror"];

#[test]
fn box_conversion_is_exact_on_random_lattices() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("lammps_box");
    crate::common::compile_against_library(
        "g++",
        CXX_FLAGS,
        &[source().join("tests/c/lammps_box.cpp")],
        &exe,
        &[],
    );
    let out = Command::new(&exe).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("0 failed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (start, iterations, energy per atom) rows of the driver's table.
fn rows(text: &str) -> Vec<(String, i64, f64)> {
    text.lines()
        .skip(1)
        .map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            (
                t[0].to_string(),
                t[1].parse().unwrap(),
                t[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn lammps_minimises_from_the_prediction_to_the_same_minimum() {
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("lammps_prerelax");
    let pkg = Command::new("pkg-config")
        .args(["--cflags", "--libs", "liblammps"])
        .output()
        .expect("pkg-config is needed (scripts/setup.sh)");
    assert!(
        pkg.status.success(),
        "liblammps is missing: scripts/setup.sh installs Debian's liblammps-dev"
    );
    let lammps: Vec<String> = String::from_utf8_lossy(&pkg.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    crate::common::compile_against_library(
        "g++",
        CXX_FLAGS,
        &[source().join("examples/lammps/prerelax.cpp")],
        &exe,
        &lammps,
    );
    for (input, types) in [("si.lmp", "1:Si"), ("cu.lmp", "1:Cu")] {
        let run = |start: &str| {
            let out = Command::new(&exe)
                .arg("")
                .arg(source().join("examples/lammps").join(input))
                .arg(types)
                .arg(start)
                .env_remove("E3RELAX_MODEL")
                .env("OMP_NUM_THREADS", "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{input} {start}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            rows(&stdout)
        };
        let both = run("both");
        let (from_input, from_e3relax) = (&both[0], &both[1]);
        assert_eq!(from_input.0, "input");
        assert!(
            (from_input.2 - from_e3relax.2).abs() < 1e-6,
            "{input}: different minima {both:?}"
        );
        // Through the conversion, with and without a rotation: identical.
        let converted = &run("input-converted")[0];
        let rotated = &run("input-rotated")[0];
        assert_eq!(
            rotated.1, converted.1,
            "{input}: {rotated:?} vs {converted:?}"
        );
        assert_eq!(
            rotated.2, converted.2,
            "{input}: {rotated:?} vs {converted:?}"
        );
        assert!(
            (converted.2 - from_input.2).abs() < 1e-6,
            "{input}: {converted:?}"
        );
        eprintln!("{input}: {both:?}");
    }

    // A frozen group (the first eight Si atoms): held by e3relax (their
    // fractional coordinates unchanged) and by both minimisations, which
    // reach the same minimum.
    let frozen_input = work.path().join("si-frozen.lmp");
    let si = std::fs::read_to_string(source().join("examples/lammps/si.lmp")).unwrap();
    std::fs::write(&frozen_input, format!("{si}group bottom id 1:8\n")).unwrap();
    let out = Command::new(&exe)
        .args(["", frozen_input.to_str().unwrap(), "1:Si", "both", "bottom"])
        .env_remove("E3RELAX_MODEL")
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let both = rows(&String::from_utf8_lossy(&out.stdout));
    assert!(
        (both[0].2 - both[1].2).abs() < 1e-6,
        "frozen group: {both:?}"
    );
    let change: f64 = stderr
        .split("largest fractional change ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no frozen report: {stderr}"));
    assert!(stderr.contains("8 atoms"), "{stderr}");
    assert!(change < 1e-12, "{stderr}");
    eprintln!("frozen group: {both:?}");
    // A group that does not exist is one clear error.
    let out = Command::new(&exe)
        .args([
            "",
            frozen_input.to_str().unwrap(),
            "1:Si",
            "e3relax",
            "nosuch",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no LAMMPS group named nosuch"));
}
