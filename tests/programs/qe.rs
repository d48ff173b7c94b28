//! Quantum ESPRESSO (Debian's pw.x, installed by scripts/setup.sh) started
//! from e3relax's prediction: the Fortran example (`examples/qe/`) reads a
//! pw.x input, predicts through the Fortran module and writes the input for
//! the predicted geometry; `examples/qe/run.sh` runs pw.x from both starts.
//! Both must reach the same structure: final SCF energies within 1e-4 Ry.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn pw_x_relaxes_from_the_prediction_to_the_same_energy() {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let exe = work.path().join("qe_prerelax");
    crate::common::compile_fortran_program(&source.join("examples/qe/prerelax.f90"), &exe);

    // The written input: the prediction in the input's own units.
    let written = work.path().join("predicted.pwi");
    let out = Command::new(&exe)
        .arg(source.join("examples/qe/si.in"))
        .arg(&written)
        .env_remove("E3RELAX_MODEL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(text.contains("CELL_PARAMETERS angstrom") && text.contains("ATOMIC_POSITIONS crystal"));
    assert!(text.contains("calculation = 'vc-relax'"));
    let original = std::fs::read_to_string(source.join("examples/qe/si.in")).unwrap();
    assert_ne!(text, original);
    // --fixed-cell keeps the cell and asks for a relax.
    let fixed = work.path().join("fixed.pwi");
    let out = Command::new(&exe)
        .arg(source.join("examples/qe/si.in"))
        .arg(&fixed)
        .arg("--fixed-cell")
        .output()
        .unwrap();
    assert!(out.status.success());
    let fixed = std::fs::read_to_string(&fixed).unwrap();
    assert!(fixed.contains("calculation = 'relax'"));
    let cell = |t: &str| -> Vec<f64> {
        let start = t.find("CELL_PARAMETERS").unwrap();
        t[start..]
            .lines()
            .skip(1)
            .take(3)
            .flat_map(|l| {
                l.split_whitespace()
                    .map(|v| v.parse::<f64>().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for (a, b) in cell(&fixed).iter().zip(cell(&original)) {
        assert!((a - b).abs() < 1e-9, "the fixed cell moved: {a} vs {b}");
    }
    // if_pos: the first atom frozen (0 0 0) keeps its line as written, in a
    // relax and (crystal coordinates) in a vc-relax; the second, frozen
    // along z only, keeps z.
    let frozen_input = work.path().join("frozen.in");
    let frozen_text = original
        .replace("  Si 0.00 0.00 0.00\n", "  Si 0.00 0.00 0.00 0 0 0\n")
        .replace("  Si 0.27 0.24 0.26\n", "  Si 0.27 0.24 0.26 1 1 0\n");
    assert_ne!(frozen_text, original);
    std::fs::write(&frozen_input, &frozen_text).unwrap();
    for extra in [None, Some("--fixed-cell")] {
        let written = work.path().join("frozen.pwi");
        let mut command = Command::new(&exe);
        command.arg(&frozen_input).arg(&written).arg("");
        if let Some(flag) = extra {
            command.arg(flag);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&written).unwrap();
        assert!(
            text.contains("\n  Si 0.00 0.00 0.00 0 0 0\n"),
            "{extra:?}: {text}"
        );
        let second = text
            .lines()
            .find(|l| l.trim_end().ends_with("1 1 0"))
            .expect("the second atom keeps its flags");
        let values: Vec<f64> = second
            .split_whitespace()
            .skip(1)
            .take(3)
            .map(|v| v.parse().unwrap())
            .collect();
        if extra.is_some() {
            // Fixed cell: the Cartesian z (if_pos is per Cartesian axis) of
            // the unchanged cell, rows (0, 2.85, 2.85), (2.8, 0, 2.8), ...
            let z = |f: &[f64]| f[0] * 2.85 + f[1] * 2.8;
            assert!((z(&values) - z(&[0.27, 0.24])).abs() < 1e-9, "{second}");
            assert!((values[0] - 0.27).abs() > 1e-6, "the atom moves in x and y");
        }
    }

    // A bad input: a clear error, no output.
    let bad = work.path().join("bad.pwi");
    std::fs::write(&bad, original.replace("ibrav = 0", "ibrav = 2")).unwrap();
    let out = Command::new(&exe)
        .arg(&bad)
        .arg(work.path().join("never.pwi"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ibrav = 0 with CELL_PARAMETERS is needed")
    );
    assert!(!work.path().join("never.pwi").exists());

    // pw.x from both starts.
    let out = Command::new(source.join("examples/qe/run.sh"))
        .arg(&exe)
        .arg(source.join("examples/qe/si.in"))
        .env_remove("E3RELAX_MODEL")
        .output()
        .expect("bash");
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let energies: Vec<f64> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().last().unwrap().parse().unwrap())
        .collect();
    assert_eq!(energies.len(), 2, "{table}");
    assert!((energies[0] - energies[1]).abs() < 1e-4, "{table}");
    eprintln!("{table}");
}
