//! Shared by the reader targets: any bytes into a reader give an error or
//! structures, never a panic; what it accepts and validates must survive
//! writing as extxyz and reading back.

use e3relax::io::{parse, render, Format};

pub fn check(data: &[u8], format: Format) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(frames) = parse(text, format) else { return };
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
}
