//! Any bytes into the cif reader (see reader.rs).
#![no_main]

#[path = "reader.rs"]
mod reader;

libfuzzer_sys::fuzz_target!(|data: &[u8]| reader::check(data, e3relax::io::Format::Cif));
