//! The `e3relax` command-line tool, run as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn e3relax(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_e3relax"))
        .args(args)
        .output()
        .unwrap()
}

/// A folder of extended XYZ files `f0.extxyz`, `f1.extxyz`, ... holding
/// `frames` in order, `sizes[k]` in file k.
fn write_folder(folder: &Path, frames: &[e3relax::Structure], sizes: &[usize]) {
    std::fs::create_dir(folder).unwrap();
    let mut next = 0;
    for (k, &n) in sizes.iter().enumerate() {
        let bytes =
            e3relax::io::file_bytes(Path::new("x.extxyz"), &frames[next..next + n], None).unwrap();
        std::fs::write(folder.join(format!("f{k}.extxyz")), bytes).unwrap();
        next += n;
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A failing command prints exactly one line, naming what it must name.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("e3relax: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "'{n}' not in: {err}");
    }
}

#[test]
fn convert_multi_frame_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let cif = dir.path().join("frames.cif");
    let back = dir.path().join("frames.xyz");
    let out = e3relax(&["convert", s(&fixture("ase_multi.extxyz")), s(&cif)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = e3relax(&["convert", s(&cif), s(&back)]);
    assert!(out.status.success());
    let original = e3relax::io::read_file(fixture("ase_multi.extxyz"), None).unwrap();
    let round = e3relax::io::read_file(&back, None).unwrap();
    assert_eq!(round.len(), 3);
    for (a, b) in original.iter().zip(&round) {
        assert_eq!(a.numbers, b.numbers);
        assert_eq!(a.id, b.id);
        for (x, y) in a
            .fractional_positions()
            .iter()
            .zip(b.fractional_positions())
        {
            for k in 0..3 {
                assert!((x[k] - y[k]).abs() < 1e-9);
            }
        }
    }
}

#[test]
fn convert_with_format_override_and_bohr() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("structure.txt");
    let out = e3relax(&[
        "convert",
        s(&fixture("ase_direct.vasp")),
        s(&odd),
        "--format",
        "poscar",
    ]);
    assert!(out.status.success());
    let xyz = dir.path().join("scaled.xyz");
    let out = e3relax(&[
        "convert",
        s(&odd),
        s(&xyz),
        "--from",
        "poscar",
        "--input-unit",
        "bohr",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = e3relax::io::read_file(fixture("ase_direct.vasp"), None)
        .unwrap()
        .remove(0);
    let b = e3relax::io::read_file(&xyz, None).unwrap().remove(0);
    assert!((b.lattice[0][0] - a.lattice[0][0] * 0.529177210903).abs() < 1e-12);
}

#[test]
fn info_reports_cell_and_neighbours() {
    let out = e3relax(&["info", s(&fixture("ase_selective.vasp"))]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("formula   Si8 (8 atoms)"), "{text}");
    assert!(
        text.contains("a = 5.4300  b = 5.4300  c = 5.4300 Å"),
        "{text}"
    );
    assert!(text.contains("volume    160.1030 Å^3"), "{text}");
    assert!(text.contains("density   2.3303 g/cm^3"), "{text}");
    // Diamond Si (a = 5.43 A) within 6 A: shells of 4, 12, 12, 6 and 12 = 46
    // images (under the cap of 50); the 6 at 5.43 A are the atom's own
    // images, dropped for the fixed self-image edges: 40 remain.
    assert!(
        text.contains("min 40 / mean 40.0 / max 40, plus 6 self-image edges (368 edges)"),
        "{text}"
    );
    let json = e3relax(&[
        "info",
        "--json",
        "--unit",
        "bohr",
        s(&fixture("ase_multi.extxyz")),
    ]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["id"], "frame-2");
    assert!((lines[0]["lengths"][0].as_f64().unwrap() - 5.1 / 0.529177210903).abs() < 1e-9);
}

#[test]
fn errors_are_one_line_naming_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.cif");
    assert_one_line_error(
        &e3relax(&["info", s(&missing)]),
        &["nothing.cif", "No such file"],
    );

    let bad = dir.path().join("bad.extxyz");
    std::fs::write(&bad, "2\nLattice=\"4 0 0 0 4 0 0 0 4\"\nH 0 0 0\n").unwrap();
    assert_one_line_error(
        &e3relax(&["info", s(&bad)]),
        &["bad.extxyz:1:", "announces 2 atoms"],
    );

    let overlap = dir.path().join("POSCAR");
    std::fs::write(
        &overlap,
        "x\n1\n4 0 0\n0 4 0\n0 0 4\nH\n2\nCartesian\n0 0 0\n0 0 0.1\n",
    )
    .unwrap();
    assert_one_line_error(
        &e3relax(&["info", s(&overlap)]),
        &["POSCAR", "atoms 1 and 2 are 0.1000 Å apart"],
    );

    let out = dir.path().join("many.vasp");
    assert_one_line_error(
        &e3relax(&["convert", s(&fixture("ase_multi.extxyz")), s(&out)]),
        &["many.vasp", "POSCAR holds one structure, but there are 3"],
    );
    assert!(!out.exists(), "a failed conversion must not leave a file");
    assert_one_line_error(
        &e3relax(&["convert", s(&fixture("ase_p1.cif")), "x.unknown"]),
        &["x.unknown", "--format"],
    );
    assert_one_line_error(
        &e3relax(&["info", s(&fixture("ase_p1.cif")), "--unit", "furlong"]),
        &["furlong"],
    );
}

#[test]
fn help_lists_the_subcommands() {
    let out = e3relax(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // Each subcommand on a line of its own in the Commands list.
    let listed: Vec<&str> = text
        .split("Commands:")
        .nth(1)
        .expect("a Commands section")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for cmd in [
        "relax",
        "train",
        "eval",
        "calibrate",
        "info",
        "convert",
        "bench",
        "import-pytorch",
    ] {
        assert!(listed.contains(&cmd), "{cmd} not listed: {text}");
    }
}

#[test]
fn bench_profile_lists_every_stage_once() {
    let out = e3relax(&["bench", "profile", "--cell", "8", "--repeat", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stages = [
        "file read",
        "parse",
        "validation",
        "batch and neighbour graph",
        "network",
        "  message passing (all layers)",
        "  lattice update (all layers)",
        "results and symmetrisation",
        "file write",
        "total (file to file)",
    ];
    let mut last = 0;
    for stage in stages {
        let at = text
            .find(&format!("\n{stage} "))
            .unwrap_or_else(|| panic!("'{stage}' missing or out of order in:\n{text}"));
        assert!(at >= last, "'{stage}' out of order in:\n{text}");
        last = at;
    }
}

/// A rattled rock-salt cell (atoms at the origin and on cell faces) as a
/// POSCAR with selective dynamics: atoms 1 and 3 frozen, atom 5 frozen
/// along the third lattice vector only.
const FROZEN_POSCAR: &str = "NaCl rattled, partly frozen
1.0
5.70 0.00 0.00
0.00 5.60 0.00
0.00 0.00 5.65
Na Cl
4 4
Selective dynamics
Direct
0.010 0.000 0.000 F F F
0.000 0.520 0.490 T T T
0.500 0.010 0.500 F F F
0.490 0.500 0.000 T T T
0.500 0.000 0.020 T T F
0.000 0.490 0.000 T T T
0.000 0.000 0.510 T T T
0.510 0.500 0.500 T T T
";

#[test]
fn frozen_atoms_come_back_unmoved_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("POSCAR");
    std::fs::write(&input, FROZEN_POSCAR).unwrap();
    let given = e3relax::io::read_file(&input, None).unwrap().remove(0);
    let flags = given.selective_dynamics.clone().unwrap();

    // Fixed cell: frozen coordinates bit for bit, flags written back.
    let output = dir.path().join("CONTCAR");
    let out = e3relax(&["relax", s(&input), "-o", s(&output), "--fixed-cell"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let relaxed = e3relax::io::read_file(&output, None).unwrap().remove(0);
    assert_eq!(relaxed.selective_dynamics.as_ref(), Some(&flags));
    assert_eq!(relaxed.lattice, given.lattice);
    for i in [0, 2] {
        assert_eq!(relaxed.positions[i], given.positions[i], "atom {}", i + 1);
    }
    assert_eq!(relaxed.positions[4][2], given.positions[4][2]);
    let moved = |i: usize| {
        (0..3)
            .map(|k| (relaxed.positions[i][k] - given.positions[i][k]).abs())
            .fold(0.0, f64::max)
    };
    assert!(moved(1) > 1e-4 && moved(4) > 1e-4, "free atoms move");

    // Variable cell, extended XYZ move_mask (Cartesian axes): frozen atoms
    // keep their fractional coordinates in the new cell.
    let xyz = dir.path().join("in.extxyz");
    let out = e3relax(&["convert", s(&input), s(&xyz)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&xyz)
        .unwrap()
        .contains("move_mask:L:3"));
    let xyz_out = dir.path().join("out.extxyz");
    let out = e3relax(&["relax", s(&xyz), "-o", s(&xyz_out)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let relaxed = e3relax::io::read_file(&xyz_out, None).unwrap().remove(0);
    assert_ne!(relaxed.lattice, given.lattice, "the cell relaxes");
    let (before, after) = (given.fractional_positions(), relaxed.fractional_positions());
    for i in [0, 2] {
        for k in 0..3 {
            assert!((before[i][k] - after[i][k]).abs() < 1e-12, "atom {}", i + 1);
        }
    }
    assert_eq!(relaxed.selective_dynamics.as_ref(), Some(&flags));
}

#[test]
fn a_partial_mask_that_changes_meaning_between_formats_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Hexagonal cell: lattice vector 1 is not along x's reciprocal.
    let input = dir.path().join("POSCAR");
    std::fs::write(
        &input,
        "C\n1.0\n2.46 0 0\n-1.23 2.13042 0\n0 0 6.7\nC\n2\nSelective dynamics\nDirect\n0 0 0.25 F T T\n0.3333 0.6667 0.25 T T T\n",
    )
    .unwrap();
    let out = e3relax(&["convert", s(&input), s(&dir.path().join("out.extxyz"))]);
    assert_one_line_error(&out, &["atom 1", "lattice vector 1"]);
    assert!(!dir.path().join("out.extxyz").exists());
}

#[test]
fn long_runs_report_progress_unless_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("ase_multi.extxyz");
    let frames = std::fs::read_to_string(&input)
        .unwrap()
        .matches("Lattice=")
        .count();
    assert!(frames >= 2);
    let output = dir.path().join("out.extxyz");
    let run = |quiet: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_e3relax"));
        command
            .args(["relax", s(&input), "-o", s(&output), "--batch-size", "1"])
            // Not a terminal here: plain lines, as often as possible.
            .env("E3RELAX_PROGRESS_INTERVAL", "0");
        if quiet {
            command.arg("--quiet");
        }
        let out = command.output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run(false);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("relax: "))
        .collect();
    assert_eq!(lines.len(), frames - 1, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("relax: 1/{frames} structures")),
        "{stderr}"
    );
    assert!(lines.iter().all(|l| l.contains("/s")), "{stderr}");
    assert!(!run(true).contains("relax: "));
    // The default interval keeps a short run quiet.
    let out = e3relax(&["relax", s(&input), "-o", s(&output)]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("relax: "));
}

/// Issue 23.12: a standard output that cannot be written (a full disk, a
/// closed pipe) is one line and exit 1, never a panic (exit 101) or a
/// silent exit 0.
#[test]
fn a_failing_stdout_is_one_line_and_exit_1() {
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let run = |args: &[&str], stdout: std::process::Stdio| {
        Command::new(env!("CARGO_BIN_EXE_e3relax"))
            .args(args)
            .stdout(stdout)
            .output()
            .unwrap()
    };
    let structure = fixture("ase_selective.vasp");
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let data = fixture("pairs/bulk-small");
    for args in [
        vec!["info", s(&structure)],
        vec!["info", "--json", s(&structure)],
        vec![
            "eval",
            "--quiet",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--baseline-data",
            s(&data),
        ],
        vec!["--help"],
        vec!["info", "--help"],
        vec!["--version"],
    ] {
        let out = run(&args, full().into());
        assert_one_line_error(&out, &["cannot write to standard output", "No space left"]);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
    // A pipe whose reader is gone: quiet, exit 1, no panic.
    for args in [vec!["info", s(&structure)], vec!["--help"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = run(&args, writer.into());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

#[test]
fn the_trust_policy_moves_crystals_less() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("ase_multi.extxyz");
    let given = e3relax::io::read_file(&input, None).unwrap();
    let relax = |extra: &[&str], name: &str| {
        let output = dir.path().join(name);
        let mut args = vec!["relax", s(&input), "-o", s(&output)];
        args.extend_from_slice(extra);
        let out = e3relax(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        e3relax::io::read_file(&output, None).unwrap()
    };
    let raw = relax(&[], "raw.extxyz");
    let trusted = relax(&["--trust", "0.087,0.167"], "trusted.extxyz");
    for ((g, r), t) in given.iter().zip(&raw).zip(&trusted) {
        let change = |s: &e3relax::Structure| (s.volume() / g.volume() - 1.0).abs();
        assert!(change(t) < change(r), "{} vs {}", change(t), change(r));
    }
    let out = e3relax(&[
        "relax",
        s(&input),
        "-o",
        s(&dir.path().join("x.extxyz")),
        "--trust",
        "0.1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("STRAIN,DISPLACEMENT"));
}

#[test]
fn relax_writes_the_ensemble_uncertainty() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ensemble");
    let config = crate::common::small_config().invariant();
    crate::common::small_model(&config, 1).save(&model).unwrap();
    for (k, seed) in [(2, 2), (3, 3)] {
        crate::common::small_model(&config, seed)
            .save(&model.join(format!("members/seed-{k}")))
            .unwrap();
    }
    let input = fixture("ase_multi.extxyz");
    // Without ensemble.json: a clear error.
    let out = e3relax(&[
        "relax",
        s(&input),
        "-o",
        s(&dir.path().join("x.extxyz")),
        "--model",
        s(&model),
        "--uncertainty",
    ]);
    assert_one_line_error(&out, &["ensemble.json"]);
    std::fs::write(
        model.join("ensemble.json"),
        r#"{"members": ["members/seed-2", "members/seed-3"]}"#,
    )
    .unwrap();
    let output = dir.path().join("out.extxyz");
    let out = e3relax(&[
        "relax",
        s(&input),
        "-o",
        s(&output),
        "--model",
        s(&model),
        "--uncertainty",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = e3relax::io::read_file(&output, None).unwrap();
    for f in &frames {
        let column = f
            .atom_properties
            .iter()
            .find(|p| p.name == "uncertainty")
            .expect("an uncertainty column");
        assert_eq!(column.values.len(), f.natoms());
        assert!(column
            .values
            .iter()
            .all(|v| v.parse::<f64>().unwrap() > 0.0));
        for key in [
            "cell_uncertainty",
            "volume_uncertainty",
            "coordinate_uncertainty",
        ] {
            assert!(
                f.info_value(key).unwrap().parse::<f64>().unwrap() > 0.0,
                "{key}"
            );
        }
    }
    // Trusting the spread moves every crystal less than the plain mean.
    let trusted = dir.path().join("trusted.extxyz");
    let out = e3relax(&[
        "relax",
        s(&input),
        "-o",
        s(&trusted),
        "--model",
        s(&model),
        "--uncertainty",
        "--spread-trust",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let given = e3relax::io::read_file(&input, None).unwrap();
    let kept = e3relax::io::read_file(&trusted, None).unwrap();
    for ((g, mean), t) in given.iter().zip(&frames).zip(&kept) {
        let change = |x: &e3relax::Structure| (x.volume() / g.volume() - 1.0).abs();
        assert!(
            change(t) < change(mean),
            "{} vs {}",
            change(t),
            change(mean)
        );
    }
    // A POSCAR output gets the side table.
    let poscar = dir.path().join("POSCAR");
    let out = e3relax(&[
        "relax",
        s(&fixture("ase_direct.vasp")),
        "-o",
        s(&poscar),
        "--model",
        s(&model),
        "--uncertainty",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = std::fs::read_to_string(dir.path().join("POSCAR.uncertainty.csv")).unwrap();
    let atoms = e3relax::io::read_file(&poscar, None).unwrap()[0].natoms();
    assert_eq!(table.lines().count(), atoms + 1, "{table}");
    assert!(table.starts_with("frame,id,atom,element,uncertainty_angstrom"));
}

/// `calibrate` measures the surface trust's scales only for a model with
/// energy-surface heads, and leaves a model without them untouched.
#[test]
fn calibrate_refuses_a_model_without_surface_heads() {
    let dir = tempfile::tempdir().unwrap();
    // A model without the heads.
    let config = crate::common::small_config().invariant();
    crate::common::small_model(&config, 1)
        .save(dir.path())
        .unwrap();
    let pairs = fixture("pairs/bulk-small");
    let out = e3relax(&[
        "calibrate",
        "--model",
        dir.path().to_str().unwrap(),
        "--data",
        pairs.to_str().unwrap(),
    ]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(error.contains("surface_heads"), "{error}");
    assert!(!dir.path().join("surface_trust.json").exists());
}

/// `calibrate --reader NAME` gives a model without heads of its own the
/// surface trust: the scales are the reader's, surface_trust.json names
/// it, `relax --surface-trust` uses it, and a recalibration without
/// `--reader` keeps it; a reader outside the model directory is refused;
/// `--reader` twice averages two readers.
#[test]
fn calibrate_with_a_surface_reader_gives_the_model_the_surface_trust() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::common::small_config().invariant();
    crate::common::small_model(&config, 1)
        .save(dir.path())
        .unwrap();
    let reader_config = e3relax::ModelConfig {
        surface_heads: true,
        ..config.clone()
    };
    crate::common::small_model(&reader_config, 2)
        .save(&dir.path().join("surface-reader"))
        .unwrap();
    let pairs = fixture("pairs/bulk-small");
    let model = dir.path().to_str().unwrap();
    let calibrate = |extra: &[&str]| {
        let mut args = vec![
            "calibrate",
            "--model",
            model,
            "--data",
            pairs.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        e3relax(&args)
    };
    let out = calibrate(&["--reader", "../elsewhere"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the model directory"));
    assert!(!dir.path().join("surface_trust.json").exists());
    let out = calibrate(&["--reader", "surface-reader", "--sharpness", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = || -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("surface_trust.json")).unwrap(),
        )
        .unwrap()
    };
    let first = read();
    assert_eq!(first["reader"], "surface-reader", "{first}");
    assert!(first["force"].as_f64().unwrap() > 0.0, "{first}");
    let out = calibrate(&["--sharpness", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read(), first);
    let output = dir.path().join("trusted.extxyz");
    let out = e3relax(&[
        "relax",
        pairs.join("unrelaxed.extxyz").to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--model",
        model,
        "--surface-trust",
        "1",
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = e3relax::io::read_file(&output, None).unwrap();
    assert!(got.iter().all(|s| {
        s.info_value("e3relax_surface_factor")
            .and_then(|f| f.parse::<f64>().ok())
            .is_some_and(|f| (0.0..=1.0).contains(&f))
    }));
    // Two readers: --reader twice names both, their average has scales of
    // its own, and eval says the readings are averaged; a name given twice
    // is refused and leaves the file as it was.
    crate::common::small_model(&reader_config, 3)
        .save(&dir.path().join("surface-reader-2"))
        .unwrap();
    let out = calibrate(&["--reader", "surface-reader", "--reader", "surface-reader"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("named twice"));
    assert_eq!(read(), first);
    let out = calibrate(&[
        "--reader",
        "surface-reader",
        "--reader",
        "surface-reader-2",
        "--sharpness",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let both = read();
    assert_eq!(
        both["reader"],
        serde_json::json!(["surface-reader", "surface-reader-2"]),
        "{both}"
    );
    assert_ne!(both["force"], first["force"], "{both}");
    let out = e3relax(&[
        "eval",
        "--model",
        model,
        "--data",
        pairs.to_str().unwrap(),
        "--surface-trust",
        "1",
        "--no-fixed-point",
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 surface readers, their readings averaged")
    );
}

/// `relax --line-search` records each crystal's step (between 0: the
/// input, and 1: the raw prediction), and is refused by name for a model
/// without energy-surface heads.
#[test]
fn relax_line_search_records_its_step_and_needs_surface_heads() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = fixture("pairs/bulk-small");
    let input = pairs.join("unrelaxed.extxyz");
    let output = dir.path().join("out.extxyz");
    let out = e3relax(&[
        "relax",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--line-search",
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let relaxed = e3relax::io::read_file(&output, None).unwrap();
    assert!(!relaxed.is_empty());
    for s in &relaxed {
        let step: f64 = s
            .info_value("e3relax_line_search_step")
            .expect("the step on record")
            .parse()
            .unwrap();
        assert!((0.0..=1.0).contains(&step), "{step}");
    }
    let plain = dir.path().join("plain-model");
    crate::common::small_model(&crate::common::small_config().invariant(), 1)
        .save(&plain)
        .unwrap();
    let out = e3relax(&[
        "relax",
        input.to_str().unwrap(),
        "-o",
        dir.path().join("plain.extxyz").to_str().unwrap(),
        "--model",
        plain.to_str().unwrap(),
        "--line-search",
    ]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(error.contains("surface_heads"), "{error}");
    assert!(!dir.path().join("plain.extxyz").exists());
}

/// `relax --shard K/N`: the shards' outputs together are the serial
/// output byte for byte, for a multi-frame file (joined in shard order)
/// and for a folder (every file written by exactly one shard), also when
/// there are more shards than batches.
#[test]
fn shards_together_write_the_serial_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("pairs/bulk-small").join("unrelaxed.extxyz");
    let frames = e3relax::io::read_file(&input, None).unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let run = |extra: &[&str], input: &std::path::Path, output: &std::path::Path| {
        let mut args = vec![
            "relax".to_string(),
            s(input),
            "-o".into(),
            s(output),
            "-q".into(),
            "--batch-size".into(),
            "3".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = e3relax(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let serial = dir.path().join("serial.extxyz");
    run(&[], &input, &serial);
    for count in [2, 3, 20] {
        let mut joined = Vec::new();
        for k in 0..count {
            let part = dir.path().join(format!("part-{count}-{k}.extxyz"));
            run(&["--shard", &format!("{k}/{count}")], &input, &part);
            if let Ok(bytes) = std::fs::read(&part) {
                joined.extend(bytes);
            }
        }
        assert!(joined == std::fs::read(&serial).unwrap(), "{count} shards");
    }

    // A folder of files of 4, 7, 2, 2, 9 frames: batches of 3 cut through
    // files (the second runs from batch 1 into batch 3, which the second
    // shard's first file starts in), so owners recompute the batches they
    // share.
    let folder = dir.path().join("inputs");
    write_folder(&folder, &frames, &[4, 7, 2, 2, 9]);
    let serial = dir.path().join("serial-folder");
    run(&[], &folder, &serial);
    let sharded = dir.path().join("sharded-folder");
    for k in 0..3 {
        run(&["--shard", &format!("{k}/3")], &folder, &sharded);
    }
    let names = |d: &std::path::Path| {
        let mut n: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&serial), names(&sharded));
    assert_eq!(names(&serial).len(), 5);
    for name in names(&serial) {
        assert!(
            std::fs::read(serial.join(&name)).unwrap()
                == std::fs::read(sharded.join(&name)).unwrap(),
            "{name:?}"
        );
    }
    // A shard out of range is refused by name.
    let out = e3relax(&[
        "relax",
        &s(&input),
        "-o",
        &s(&dir.path().join("x.extxyz")),
        "--shard",
        "3/3",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 to 2"));
}

/// `mpirun -np 2 e3relax relax` (the `mpi` feature): rank 0 writes the
/// serial output byte for byte, for a multi-frame file and a folder; a
/// rank that fails (either one) ends the job with its message and nothing
/// is written.
#[cfg(feature = "mpi")]
#[test]
fn mpi_ranks_write_the_serial_output_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("pairs/bulk-small").join("unrelaxed.extxyz");
    let frames = e3relax::io::read_file(&input, None).unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let mpirun = |input: &std::path::Path, output: &std::path::Path, fail_rank: Option<usize>| {
        let mut command = Command::new("mpirun");
        command.args(["--allow-run-as-root", "--oversubscribe", "-np", "2"]);
        if let Some(rank) = fail_rank {
            command.args(["-x", "E3RELAX_TEST_FAIL_RANK"]);
            command.env("E3RELAX_TEST_FAIL_RANK", rank.to_string());
        }
        command.arg(env!("CARGO_BIN_EXE_e3relax")).args([
            "relax",
            &s(input),
            "-o",
            &s(output),
            "-q",
            "--batch-size",
            "3",
        ]);
        command.output().unwrap()
    };
    let serial = dir.path().join("serial.extxyz");
    let out = e3relax(&[
        "relax",
        &s(&input),
        "-o",
        &s(&serial),
        "-q",
        "--batch-size",
        "3",
    ]);
    assert!(out.status.success());
    let parallel = dir.path().join("mpi.extxyz");
    let out = mpirun(&input, &parallel, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&parallel).unwrap() == std::fs::read(&serial).unwrap());

    let folder = dir.path().join("inputs");
    write_folder(&folder, &frames, &[4, 7, 2, 2, 9]);
    let serial = dir.path().join("serial-folder");
    assert!(e3relax(&[
        "relax",
        &s(&folder),
        "-o",
        &s(&serial),
        "-q",
        "--batch-size",
        "3"
    ])
    .status
    .success());
    let parallel = dir.path().join("mpi-folder");
    let out = mpirun(&folder, &parallel, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for k in 0..5 {
        let name = format!("f{k}.extxyz");
        assert!(
            std::fs::read(serial.join(&name)).unwrap()
                == std::fs::read(parallel.join(&name)).unwrap(),
            "{name}"
        );
    }

    for rank in [0, 1] {
        let output = dir.path().join(format!("failed-{rank}.extxyz"));
        let out = mpirun(&input, &output, Some(rank));
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            error.contains(&format!("rank {rank} fails on purpose")),
            "{error}"
        );
        assert!(!output.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".failed"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// `eval --uncertainty --csv` adds each crystal's ensemble spreads and the
/// ensemble mean's errors to the per-pair table, and only then.
#[test]
fn eval_csv_carries_the_ensembles_uncertainty_per_crystal() {
    let dir = tempfile::tempdir().unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let data = fixture("pairs/bulk-small");
    let pairs = e3relax::io::read_file(data.join("unrelaxed.extxyz"), None)
        .unwrap()
        .len();
    for (uncertainty, columns) in [(false, 11), (true, 17)] {
        let csv = dir.path().join(format!("{uncertainty}.csv"));
        let mut args = vec![
            "eval".to_string(),
            "--quiet".into(),
            "--no-fixed-point".into(),
            "--model".into(),
            s(&model),
            "--data".into(),
            s(&data),
            "--csv".into(),
            s(&csv),
        ];
        if uncertainty {
            args.push("--uncertainty".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = e3relax(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&csv).unwrap();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), pairs + 1, "{text}");
        assert!(rows.iter().all(|r| r.len() == columns), "{text}");
        if uncertainty {
            assert_eq!(
                rows[0][11..],
                [
                    "uncertainty_coordinates",
                    "uncertainty_cell",
                    "uncertainty_volume",
                    "ensemble_coordinate_mae",
                    "ensemble_shape_deviation",
                    "ensemble_volume_error"
                ]
            );
            for row in &rows[1..] {
                let spread: f64 = row[11].parse().unwrap();
                let error: f64 = row[14].parse().unwrap();
                assert!(spread > 0.0 && spread.is_finite(), "{row:?}");
                assert!(error >= 0.0 && error.is_finite(), "{row:?}");
            }
        }
    }
}

/// Out-of-range prediction options are refused by the one check every
/// caller's options pass (`RelaxOptions::validate`), named by their flags.
#[test]
fn relax_refuses_bad_options_by_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("ase_multi.extxyz");
    let output = dir.path().join("out.extxyz");
    for (flag, value) in [("--symprec", "0.7"), ("--batch-size", "0")] {
        let out = e3relax(&[
            "relax",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
            flag,
            value,
        ]);
        assert_one_line_error(&out, &[flag]);
        assert!(!output.exists());
    }
}
