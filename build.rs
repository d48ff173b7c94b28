//! Embeds the libtorch library directory as a run path, so that the CLI, the
//! test binaries and `libe3relax.so` find `libtorch_cpu.so` without
//! `LD_LIBRARY_PATH` (torch-sys itself embeds none). It becomes a RUNPATH,
//! so `LD_LIBRARY_PATH` still overrides it on another machine.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(dir) => {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
            println!("cargo:rustc-env=E3RELAX_LIBTORCH_LIB={dir}");
        }
        Err(_) => {
            println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set: no libtorch rpath embedded")
        }
    }
}
