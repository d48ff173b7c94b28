//! Build script:
//! * embeds the libtorch library directory as a run path, so that the CLI,
//!   the test binaries and `libe3relax.so` find `libtorch_cpu.so` without
//!   `LD_LIBRARY_PATH` (torch-sys embeds none). It becomes a RUNPATH, so
//!   `LD_LIBRARY_PATH` still overrides it on another machine;
//! * gives the shared library a versioned SONAME (`libe3relax.so.0`) and
//!   puts that name beside it in the build tree (`target/<profile>/`), so
//!   that a program linked there runs without installing;
//! * writes the C header `include/e3relax.h` with cbindgen from `src/ffi`
//!   (the committed copy must match: CI runs `git diff --exit-code include/`).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(dir) => {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
            println!("cargo:rustc-env=E3RELAX_LIBTORCH_LIB={dir}");
        }
        Err(_) => {
            println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set: no libtorch rpath embedded")
        }
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libe3relax.so.{major}");
    soname_link_in_build_tree(&major);

    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed=Cargo.toml");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("Cargo.toml");
    let abi_version = metadata(&manifest, "abi-version");
    let libtorch_version = metadata(&manifest, "libtorch-version");
    println!("cargo:rustc-env=E3RELAX_ABI_VERSION={abi_version}");
    println!("cargo:rustc-env=E3RELAX_LIBTORCH_VERSION={libtorch_version}");
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    // The version macros come from Cargo.toml, never typed twice.
    config.after_includes = Some(format!(
        "\n#define E3RELAX_VERSION \"{}\"\n#define E3RELAX_ABI_VERSION {abi_version}\n#define E3RELAX_TORCH_VERSION \"{libtorch_version}\"\n{}",
        std::env::var("CARGO_PKG_VERSION").expect("cargo sets it"),
        config.after_includes.as_deref().unwrap_or_default()
    ));
    match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            let header = crate_dir.join("include/e3relax.h");
            // Only touch the file when it changes (keeps mtimes stable).
            bindings.write_to_file(header);
        }
        Err(e) => panic!("cbindgen failed to generate include/e3relax.h: {e}"),
    }
}

/// `libe3relax.so.N -> libe3relax.so` in `target/<profile>/` (where `cargo
/// build` puts the library) and in `target/<profile>/deps/` (where `cargo
/// test` builds it): the name the dynamic linker looks for (the SONAME).
/// `OUT_DIR` is `target/<profile>/build/<pkg>-<hash>/out`; the links are
/// made before the library exists, which a symlink allows.
fn soname_link_in_build_tree(major: &str) {
    let Ok(out_dir) = std::env::var("OUT_DIR") else {
        return;
    };
    let Some(profile_dir) = PathBuf::from(out_dir).ancestors().nth(3).map(PathBuf::from) else {
        return;
    };
    for dir in [profile_dir.clone(), profile_dir.join("deps")] {
        let link = dir.join(format!("libe3relax.so.{major}"));
        if std::fs::read_link(&link).is_ok_and(|t| t == std::path::Path::new("libe3relax.so")) {
            continue;
        }
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::remove_file(&link);
        if let Err(e) = std::os::unix::fs::symlink("libe3relax.so", &link) {
            println!("cargo:warning=cannot create {}: {e}", link.display());
        }
    }
}

/// A value of `[package.metadata.e3relax]` in Cargo.toml (quotes removed).
fn metadata(manifest: &str, key: &str) -> String {
    let section = manifest
        .split("[package.metadata.e3relax]")
        .nth(1)
        .expect("Cargo.toml has [package.metadata.e3relax]");
    section
        .lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("Cargo.toml: [package.metadata.e3relax] has no {key}"))
}
