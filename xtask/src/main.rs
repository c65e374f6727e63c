//! `cargo run -p xtask -- guests [OUT_DIR]`: build every guest the tests, the benchmark and
//! the page use, and write `index.json` (name → file, sha256, size) beside them.
//! `cargo run -p xtask -- rustflags PACKAGE`: the extra RUSTFLAGS a guest is built with
//! (what the dev loop passes, so its builds match the release ones).
//!
//! Rust guests are the `counter` crate built with different features; the structural
//! faults (a missing export, bad metadata, a trapping start function, …) cannot be written
//! with the SDK, which always emits a correct guest, so they are hand-written WebAssembly
//! text, one defect each, derived from one valid WAT guest.
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::{env, fs};

use sha2::{Digest, Sha256};

#[cfg(feature = "fixtures")]
mod fixtures;
mod wat_guests;

/// A Rust guest crate and how to build it.
struct Crate {
    package: &'static str,
    /// Extra rustflags (besides .cargo/config.toml's, which an explicit RUSTFLAGS replaces).
    rustflags: Option<&'static str>,
    /// (output name, cargo features).
    variants: &'static [(&'static str, &'static str)],
}

const RUST_GUESTS: &[Crate] = &[
    Crate {
        package: "counter",
        rustflags: None,
        variants: &[
            ("counter-v1", ""),
            ("counter-v2", "v2"),
            ("counter-load-traps", "fault-load-traps"),
            ("counter-load-rejects", "fault-load-rejects"),
            ("counter-traps-after-swap", "fault-traps-after-swap"),
            ("counter-precopy-v1", "precopy"),
            ("counter-precopy-v2", "v2,precopy"),
            ("counter-precopy-delta-rejects", "fault-delta-rejects"),
            ("counter-precopy-load-traps", "precopy,fault-load-traps"),
            ("counter-precopy-load-hangs", "fault-load-hangs"),
            ("counter-precopy-traps-after-swap", "precopy,fault-traps-after-swap"),
            ("bench-200k-v1", "ballast-200k"),
            ("bench-200k-v2", "v2,ballast-200k"),
            ("bench-2m-v1", "ballast-2m"),
            ("bench-2m-v2", "v2,ballast-2m"),
        ],
    },
    Crate {
        package: "editor",
        // automerge needs randomness through getrandom's custom backend (the SDK serves it).
        rustflags: Some("-C target-feature=+simd128 --cfg getrandom_backend=\"custom\""),
        variants: &[
            ("editor-1.0.0", ""),
            ("editor-1.1.0", "v1_1"),
            ("editor-2.0.0", "v2"),
            ("editor-2.1.0", "fault-traps-on-edit"),
        ],
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("guests") => {
            let out = args.get(1).map(PathBuf::from).unwrap_or_else(|| root().join("target/guests"));
            match build_guests(&out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xtask guests: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        // The dev loop (`npm run dev`) builds a guest with the same flags as its release.
        Some("rustflags") => match RUST_GUESTS.iter().find(|g| Some(g.package) == args.get(1).map(String::as_str)) {
            Some(guest) => {
                println!("{}", guest.rustflags.unwrap_or_default());
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("xtask rustflags: name a guest package: counter, editor");
                ExitCode::from(2)
            }
        },
        #[cfg(feature = "fixtures")]
        Some("fixtures") => {
            let out = args.get(1).map(PathBuf::from).unwrap_or_else(|| root().join("target/guests"));
            match write_fixtures(&out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xtask fixtures: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: cargo run -p xtask -- guests [OUT_DIR]  |  rustflags PACKAGE  |  cargo run --release -p xtask --features fixtures -- fixtures [OUT_DIR]");
            ExitCode::from(2)
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn build_guests(out: &Path) -> Result<(), String> {
    fs::create_dir_all(out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let mut index = Vec::new();
    for guest in RUST_GUESTS {
        for (name, features) in guest.variants {
            let bytes = build_rust_guest(guest, features)?;
            index.push(write_guest(out, name, &bytes)?);
        }
    }
    for (name, text) in wat_guests::all() {
        let bytes = wat::parse_str(&text).map_err(|e| format!("{name}.wat: {e}"))?;
        index.push(write_guest(out, name, &bytes)?);
    }
    let json = format!("{{\n{}\n}}\n", index.join(",\n"));
    fs::write(out.join("index.json"), json).map_err(|e| format!("write index.json: {e}"))?;
    eprintln!("xtask guests: {} guests in {}", index.len(), out.display());
    Ok(())
}

/// The benchmark's editor histories (20,000 and 100,000 changes), unless already built from
/// the editor's current starting document (a history only merges into the document it grew from).
#[cfg(feature = "fixtures")]
fn write_fixtures(out: &Path) -> Result<(), String> {
    fs::create_dir_all(out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let origin = hex::encode(Sha256::digest(editor::initial_doc().save()));
    let stamp = out.join("editor-history.origin");
    let current = fs::read_to_string(&stamp).is_ok_and(|s| s == origin);
    for changes in [20_000, 100_000] {
        let path = out.join(format!("editor-history-{}k.bin", changes / 1000));
        if !current || !path.exists() {
            fs::write(&path, fixtures::editor_history(changes)?)
                .map_err(|e| format!("write {}: {e}", path.display()))?;
            eprintln!("xtask fixtures: {}", path.display());
        }
    }
    fs::write(&stamp, origin).map_err(|e| format!("write {}: {e}", stamp.display()))
}

fn build_rust_guest(guest: &Crate, features: &str) -> Result<Vec<u8>, String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Different rustflags get their own target dir, so the two sets never evict each other.
    let target_dir = match guest.rustflags {
        Some(_) => root().join("target").join(format!("{}-guest", guest.package)),
        None => root().join("target"),
    };
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .args(["build", "--quiet", "--profile", "guest", "--target", "wasm32-unknown-unknown", "-p", guest.package])
        .arg("--target-dir")
        .arg(&target_dir);
    if let Some(flags) = guest.rustflags {
        cmd.env("RUSTFLAGS", flags);
    }
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    let status = cmd.status().map_err(|e| format!("run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building {} with features [{features}] failed", guest.package));
    }
    let artifact = target_dir.join(format!("wasm32-unknown-unknown/guest/{}.wasm", guest.package));
    fs::read(&artifact).map_err(|e| format!("read {}: {e}", artifact.display()))
}

/// Write `<name>.wasm` unless identical bytes are already there (keeps mtimes stable for
/// caches), and return its `index.json` entry.
fn write_guest(out: &Path, name: &str, bytes: &[u8]) -> Result<String, String> {
    let path = out.join(format!("{name}.wasm"));
    if fs::read(&path).ok().as_deref() != Some(bytes) {
        fs::write(&path, bytes).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    let hex = hex::encode(Sha256::digest(bytes));
    Ok(format!("  \"{name}\": {{ \"file\": \"{name}.wasm\", \"sha256\": \"{hex}\", \"size\": {} }}", bytes.len()))
}
