//! Writes the benchmark's ballast: incompressible bytes, so the module's size on the wire is
//! its real size.
use std::{env, fs, path::Path};

fn main() {
    let size = if env::var_os("CARGO_FEATURE_BALLAST_2M").is_some() {
        2_000_000
    } else if env::var_os("CARGO_FEATURE_BALLAST_200K").is_some() {
        180_000
    } else {
        0
    };
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            // xorshift64: deterministic, so every build of a variant has the same hash.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("ballast.bin");
    fs::write(out, bytes).unwrap();
    println!("cargo::rerun-if-changed=build.rs");
    // `faulty` marks the broken 1.0.1 releases, whichever fault they carry.
    println!("cargo::rustc-check-cfg=cfg(faulty)");
    if env::vars().any(|(k, _)| k.starts_with("CARGO_FEATURE_FAULT_")) {
        println!("cargo::rustc-cfg=faulty");
    }
}
