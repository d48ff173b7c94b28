//! The installed package as a DFT/MD code uses it: CMake builds and installs
//! libe3relax (with its libtorch, the CLI and the models), the build tree
//! is deleted and the install tree moved (self-contained, relocatable:
//! relative run paths, libtorch resolved inside the prefix and never from
//! the source tree's .libtorch, which the test leaves in place), a consumer
//! project
//! in C, C++ and Fortran is built with find_package(E3Relax) and run by
//! ctest, the C example is built with pkg-config and a plain Makefile, and
//! every program's triclinic answer matches the Rust API to 1e-5 in Å and
//! in Bohr. Needs cmake, a C/C++ compiler, gfortran, make and pkg-config
//! (scripts/setup.sh installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use e3relax::relax::Relaxer;
use e3relax::Structure;

const BOHR: f64 = 0.529177210903;

fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cdylib cargo built for this very test run (next to the test binary).
fn built_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let lib = exe.parent().unwrap().join("libe3relax.so");
    assert!(lib.is_file(), "{} is missing", lib.display());
    lib
}

/// Asserts that no shared library `ldd` resolves for `file` comes from
/// the source tree's `.libtorch` (the test does not rename it away, which a
/// killed run would leave renamed and parallel runs would collide on).
fn assert_not_from_source_libtorch(file: &Path) {
    let resolved = run(Command::new("ldd").arg(file), "ldd");
    let source_libtorch = source_dir().join(".libtorch").display().to_string();
    assert!(
        !resolved.contains(&source_libtorch),
        "{} loads libraries from the source tree:\n{resolved}",
        file.display()
    );
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start ({e}); run scripts/setup.sh"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Parses a program's output: a title line, 3 lattice rows, a count, then
/// "Z x y z" lines.
fn parse_output(text: &str) -> (Vec<[f64; 3]>, Vec<[f64; 3]>) {
    let mut lines = text.lines().skip(1);
    let mut row = || -> Vec<f64> {
        lines
            .next()
            .unwrap()
            .split_whitespace()
            .map(|t| t.parse::<f64>().unwrap())
            .collect()
    };
    let lattice: Vec<[f64; 3]> = (0..3)
        .map(|_| {
            let r = row();
            [r[0], r[1], r[2]]
        })
        .collect();
    let natoms = row()[0] as usize;
    let positions = (0..natoms)
        .map(|_| {
            let r = row();
            [r[1], r[2], r[3]]
        })
        .collect();
    (lattice, positions)
}

fn read_example(path: &Path) -> Structure {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().skip(1);
    let numbers = |l: &str| {
        l.split_whitespace()
            .map(|t| t.parse::<f64>().unwrap())
            .collect::<Vec<_>>()
    };
    let lattice: Vec<Vec<f64>> = (0..3).map(|_| numbers(lines.next().unwrap())).collect();
    let natoms: usize = lines.next().unwrap().trim().parse().unwrap();
    let atoms: Vec<Vec<f64>> = (0..natoms)
        .map(|_| numbers(lines.next().unwrap()))
        .collect();
    Structure::new(
        [0, 1, 2].map(|i| [lattice[i][0], lattice[i][1], lattice[i][2]]),
        atoms.iter().map(|a| [a[1], a[2], a[3]]).collect(),
        atoms.iter().map(|a| a[0] as u32).collect(),
    )
    .unwrap()
}

fn assert_matches(output: &str, expected: &Structure, scale: f64, what: &str) {
    let (lattice, positions) = parse_output(output);
    for (a, b) in lattice
        .iter()
        .flatten()
        .zip(expected.lattice.iter().flatten())
    {
        assert!((a * scale - b).abs() < 1e-5, "{what}: lattice {a} vs {b}");
    }
    assert_eq!(positions.len(), expected.natoms(), "{what}");
    for (a, b) in positions
        .iter()
        .flatten()
        .zip(expected.positions.iter().flatten())
    {
        assert!((a * scale - b).abs() < 1e-5, "{what}: position {a} vs {b}");
    }
}

#[test]
fn installed_package_serves_c_cxx_fortran_and_pkg_config() {
    let work = tempfile::tempdir().unwrap();
    let build = work.path().join("build");
    let prefix = work.path().join("prefix");
    let lib = built_library();
    run(
        Command::new("cmake")
            .arg("-S")
            .arg(source_dir())
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_INSTALL_PREFIX={}", prefix.display()))
            .arg(format!("-DE3RELAX_PREBUILT_LIBRARY={}", lib.display()))
            .arg(format!(
                "-DE3RELAX_PREBUILT_CLI={}",
                env!("CARGO_BIN_EXE_e3relax")
            )),
        "cmake configure",
    );
    run(
        Command::new("cmake").arg("--build").arg(&build),
        "cmake build",
    );
    run(
        Command::new("cmake").arg("--install").arg(&build),
        "cmake install",
    );
    // Relocatable and self-contained: the build tree goes, the install
    // tree moves, and nothing in it points back at the source tree (its
    // .libtorch included): run paths are relative, libtorch is in the
    // prefix.
    std::fs::remove_dir_all(&build).unwrap();
    // Everything must come from the prefix, never from the source tree's
    // .libtorch (checked with ldd on the installed files and on every
    // consumer program below).
    // cargo runs tests with LD_LIBRARY_PATH pointing into the build tree
    // (whose libe3relax.so.0 would then win); a user's shell has no such
    // path, and neither do the programs started from here on.
    std::env::remove_var("LD_LIBRARY_PATH");
    let moved = work.path().join("moved");
    std::fs::rename(&prefix, &moved).unwrap();
    assert!(std::fs::symlink_metadata(moved.join("lib/libe3relax.so"))
        .unwrap()
        .file_type()
        .is_symlink());
    for (file, runpath) in [
        ("lib/libe3relax.so.0.1.0", "$ORIGIN/e3relax"),
        ("bin/e3relax", "$ORIGIN/../lib/e3relax"),
    ] {
        let dynamic = run(
            Command::new("readelf").arg("-d").arg(moved.join(file)),
            "readelf",
        );
        assert!(
            dynamic.contains(&format!("runpath: [{runpath}]")),
            "{file}: {dynamic}"
        );
    }
    for file in ["lib/libe3relax.so.0.1.0", "bin/e3relax"] {
        assert_not_from_source_libtorch(&moved.join(file));
    }
    let resolved = run(Command::new("ldd").arg(moved.join("bin/e3relax")), "ldd");
    for library in ["libtorch_cpu.so", "libc10.so", "libgomp.so.1"] {
        let line = resolved
            .lines()
            .find(|l| l.contains(library))
            .unwrap_or_else(|| panic!("{library} not needed?\n{resolved}"));
        assert!(
            line.contains(&moved.join("bin/../lib/e3relax").display().to_string()),
            "{library} does not come from the prefix: {line}"
        );
    }
    // The installed CLI relaxes with the installed default model.
    let relaxed = work.path().join("relaxed.vasp");
    let out = Command::new(moved.join("bin/e3relax"))
        .arg("relax")
        .arg(source_dir().join("tests/fixtures/ase_direct.vasp"))
        .arg("-o")
        .arg(&relaxed)
        .env_remove("E3RELAX_MODEL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("share/e3relax/models/default"), "{stderr}");
    assert!(relaxed.is_file());

    // A model and the Rust API's answer for the triclinic example.
    let model_dir = work.path().join("model");
    let model = crate::common::small_model(&crate::common::small_config(), 99);
    model.save(&model_dir).unwrap();
    let relaxer = Relaxer::from_model(model);
    let examples = source_dir().join("examples/input");
    let expected = relaxer
        .relax(&read_example(&examples.join("triclinic.txt")))
        .unwrap();

    let consumer = work.path().join("consumer");
    run(
        Command::new("cmake")
            .arg("-S")
            .arg(source_dir().join("tests/cmake-project"))
            .arg("-B")
            .arg(&consumer)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", moved.display()))
            .arg(format!("-DE3RELAX_TEST_MODEL={}", model_dir.display())),
        "consumer configure (find_package(E3Relax))",
    );
    run(
        Command::new("cmake").arg("--build").arg(&consumer),
        "consumer build",
    );
    let ctest = run(
        Command::new("ctest")
            .arg("--output-on-failure")
            .current_dir(&consumer),
        "ctest",
    );
    // With an MPI installed (scripts/setup.sh installs Open MPI) the
    // consumer also builds the MPI examples and runs each on 2 ranks.
    let with_mpi = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let tests = if with_mpi { 8 } else { 6 };
    assert!(
        ctest.contains(&format!("100% tests passed, 0 tests failed out of {tests}")),
        "{ctest}"
    );

    for program in ["relax_c", "relax_cxx", "relax_fortran"] {
        let exe = consumer.join(program);
        assert_not_from_source_libtorch(&exe);
        let angstrom = run(
            Command::new(&exe)
                .arg(&model_dir)
                .arg(examples.join("triclinic.txt")),
            program,
        );
        assert_matches(&angstrom, &expected, 1.0, &format!("{program} (Å)"));
        let bohr = run(
            Command::new(&exe)
                .arg(&model_dir)
                .arg(examples.join("triclinic-bohr.txt"))
                .arg("bohr"),
            program,
        );
        assert_matches(&bohr, &expected, BOHR, &format!("{program} (Bohr)"));
    }

    // An empty model path: the installed default model, found by the
    // library beside itself.
    let text = run(
        Command::new(consumer.join("relax_c"))
            .arg("")
            .arg(examples.join("triclinic.txt"))
            .env_remove("E3RELAX_MODEL"),
        "relax_c with the default model",
    );
    let (lattice, positions) = parse_output(&text);
    assert_eq!(lattice.len(), 3);
    assert_eq!(positions.len(), expected.natoms());

    // The MPI examples with the installed default model (an invariant
    // one, so every rank's shifted structure must give the shifted
    // prediction): rank 0 prints what relax_c printed.
    if with_mpi {
        for program in ["relax_mpi_c", "relax_mpi_fortran"] {
            let mpi_text = run(
                Command::new("mpirun")
                    .args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
                    .arg(consumer.join(program))
                    .arg("")
                    .arg(examples.join("triclinic.txt"))
                    .env_remove("E3RELAX_MODEL"),
                program,
            );
            let (mpi_lattice, mpi_positions) = parse_output(&mpi_text);
            let close = |a: &[[f64; 3]], b: &[[f64; 3]]| {
                a.len() == b.len()
                    && a.iter()
                        .flatten()
                        .zip(b.iter().flatten())
                        .all(|(x, y)| (x - y).abs() < 1e-12)
            };
            assert!(
                close(&mpi_lattice, &lattice) && close(&mpi_positions, &positions),
                "{program}: {mpi_text}"
            );
            let ranks: Vec<f64> = mpi_text
                .lines()
                .filter(|l| l.starts_with("rank "))
                .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(ranks.len(), 2, "{mpi_text}");
            assert!(ranks.iter().all(|&d| d < 1e-5), "{program}: {ranks:?}");
        }
    }

    // pkg-config + plain Makefile.
    let out_dir = work.path().join("make");
    std::fs::create_dir(&out_dir).unwrap();
    run(
        Command::new("make")
            .arg("-C")
            .arg(source_dir().join("tests/cmake-project"))
            .arg(format!("OUT={}", out_dir.display()))
            .env("PKG_CONFIG_PATH", moved.join("lib/pkgconfig")),
        "make with pkg-config",
    );
    let text = run(
        Command::new(out_dir.join("relax_c_pkgconfig"))
            .arg(&model_dir)
            .arg(examples.join("triclinic.txt")),
        "relax_c_pkgconfig",
    );
    assert_matches(&text, &expected, 1.0, "pkg-config build");
    assert_not_from_source_libtorch(&out_dir.join("relax_c_pkgconfig"));

    // A missing header makes find_package fail with a clear message.
    std::fs::remove_file(moved.join("include/e3relax.hpp")).unwrap();
    let out = Command::new("cmake")
        .arg("-S")
        .arg(source_dir().join("tests/cmake-project"))
        .arg("-B")
        .arg(work.path().join("broken"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", moved.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("e3relax.hpp is missing"));
}
