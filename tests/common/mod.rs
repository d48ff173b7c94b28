//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod c_api;
pub mod c_decl;

use e3relax::linalg::{self, Mat3};
use e3relax::model::{Model, ModelConfig};
use e3relax::Structure;
use rand::{Rng, SeedableRng};

/// A small network of the published shape.
pub fn small_config() -> ModelConfig {
    ModelConfig {
        graph_radius: 5.0,
        max_neighbors: 24,
        ..ModelConfig::with_size(16, 2, 8)
    }
}

pub fn small_model(config: &ModelConfig, seed: i64) -> Model {
    Model::new(config, seed).unwrap()
}

/// A random triclinic crystal with atoms at least ~1.4 Å apart.
pub fn random_crystal(seed: u64, natoms: usize) -> Structure {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let scale = (natoms as f64 * 14.0).cbrt();
    let lattice: Mat3 = [
        [
            scale * rng.random_range(0.9..1.1),
            rng.random_range(-0.5..0.5),
            rng.random_range(-0.5..0.5),
        ],
        [
            rng.random_range(-0.8..0.8),
            scale * rng.random_range(0.9..1.1),
            rng.random_range(-0.5..0.5),
        ],
        [
            rng.random_range(-0.8..0.8),
            rng.random_range(-0.8..0.8),
            scale * rng.random_range(0.9..1.1),
        ],
    ];
    let mut positions: Vec<[f64; 3]> = Vec::new();
    let mut numbers = Vec::new();
    while positions.len() < natoms {
        let f = [
            rng.random_range(0.0..1.0),
            rng.random_range(0.0..1.0),
            rng.random_range(0.0..1.0),
        ];
        let p = linalg::vec_mat(f, &lattice);
        let mut candidate = positions.clone();
        candidate.push(p);
        let z: u32 = [8, 12, 14, 26, 38, 56][rng.random_range(0..6)];
        let trial = Structure::new_unchecked(lattice, candidate.clone(), vec![1; candidate.len()]);
        if e3relax::graph::closest_pair_within(&trial.lattice, &trial.positions, 1.4).is_none() {
            positions = candidate;
            numbers.push(z);
        }
    }
    Structure::new(lattice, positions, numbers).unwrap()
}

/// A random proper rotation (det +1).
pub fn random_rotation(seed: u64) -> Mat3 {
    e3relax::rng::SplitMix64::new(seed).rotation()
}

/// Rotates row vectors: `v R^T`.
pub fn rotate(s: &Structure, r: &Mat3) -> Structure {
    s.rotated(r)
}

pub fn max_abs_diff(a: &[[f64; 3]], b: &[[f64; 3]]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| (0..3).map(move |k| (x[k] - y[k]).abs()))
        .fold(0.0, f64::max)
}

/// The folder of this test build's libe3relax (`target/<profile>/deps`,
/// where build.rs also puts the SONAME link `libe3relax.so.0`).
pub fn library_dir() -> std::path::PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Compiles `sources` with `compiler` (`flags` first) into `exe`, with the
/// repository's `include/` and linked against this build's libe3relax (run
/// path included), then `libraries`; panics naming the sources on failure.
pub fn compile_against_library(
    compiler: &str,
    flags: &[&str],
    sources: &[std::path::PathBuf],
    exe: &std::path::Path,
    libraries: &[String],
) {
    let include = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let libdir = library_dir();
    let status = std::process::Command::new(compiler)
        .args(flags)
        .arg(format!("-I{}", include.display()))
        .args(sources)
        .arg("-o")
        .arg(exe)
        .arg(format!("-L{}", libdir.display()))
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .arg("-le3relax")
        .args(libraries)
        .status()
        .unwrap_or_else(|e| panic!("{compiler} is needed (scripts/setup.sh): {e}"));
    assert!(
        status.success(),
        "compiling {sources:?} with {compiler} failed"
    );
}

/// Compiles a Fortran program that uses the `e3relax` module into `exe`:
/// the module (`bindings/fortran/e3relax.f90`) and `program`, with the
/// project's Fortran flags, the `.mod` file written beside `exe`.
pub fn compile_fortran_program(program: &std::path::Path, exe: &std::path::Path) {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let module_dir = format!("-J{}", exe.parent().expect("exe in a folder").display());
    compile_against_library(
        "gfortran",
        &["-std=f2018", "-Wall", "-Werror", &module_dir],
        &[
            source.join("bindings/fortran/e3relax.f90"),
            program.to_path_buf(),
        ],
        exe,
        &[],
    );
}
