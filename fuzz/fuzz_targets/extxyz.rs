//! Any bytes into the extxyz reader: an error or structures, never a panic;
//! what it accepts and validates must survive writing and reading back.
#![no_main]

use e3relax::io::{parse, render, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(frames) = parse(text, Format::ExtXyz) else { return };
    if frames.is_empty() || frames.iter().any(|s| s.validate().is_err()) {
        return;
    }
    let written = render(&frames, Format::ExtXyz).expect("extxyz holds any frames");
    let back = parse(&written, Format::ExtXyz).expect("our own extxyz must read back");
    assert_eq!(back.len(), frames.len());
    for (a, b) in frames.iter().zip(&back) {
        assert_eq!(a.numbers, b.numbers);
        assert_eq!(a.positions, b.positions);
        assert_eq!(a.lattice, b.lattice);
    }
});
