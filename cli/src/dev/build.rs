//! One cargo build of the guest for `wasm32-unknown-unknown`, in its own process group so
//! that a newer save can stop it — cargo and every rustc it started — at once.
//!
//! The profile is the release profile minus what slows an incremental rebuild: no LTO, many
//! codegen units, incremental compilation on. It is declared on the command line (`--config`),
//! so any guest crate gets it without editing its `Cargo.toml`, and builds into its own
//! directory, so release builds are never evicted.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::package::{cargo, Package};
use super::DevConfig;

/// The profile dev builds use.
pub(crate) const PROFILE: &str = "hotswap-dev";

/// Its settings, all spelled out (the crate's own `release` profile is only inherited for
/// what is not listed), so every guest crate builds its dependencies alike and can share
/// one target directory. Optimised for size and stripped like a release guest (`s`,
/// `symbols`): the module is fetched, hashed and compiled in the page on every save, and
/// the name section alone would more than double the editor's size.
const PROFILE_SETTINGS: &[(&str, &str)] = &[
    ("inherits", "\"release\""),
    ("opt-level", "\"s\""),
    ("lto", "false"),
    ("codegen-units", "256"),
    ("incremental", "true"),
    ("debug", "false"),
    ("strip", "\"symbols\""),
    ("debug-assertions", "false"),
    ("overflow-checks", "false"),
];

/// How a build ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The module, and cargo's wall time.
    Built { wasm: PathBuf, ms: f64 },
    /// The compiler's diagnostics (or why cargo could not run).
    Failed { message: String, ms: f64 },
    /// Stopped by [`Running::cancel`].
    Cancelled,
}

/// A build under way.
#[derive(Debug)]
pub(crate) struct Running {
    pid: Option<u32>,
    cancelled: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
}

impl Running {
    /// Stop the build (cargo and its compilers); its outcome is [`Outcome::Cancelled`].
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if self.finished.load(Ordering::SeqCst) {
            return;
        }
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            kill_group(pid);
        }
    }
}

impl Running {
    /// [`Running::cancel`], then wait (up to `limit`) until no process of the build is left,
    /// so that nothing outlives a stopped dev loop.
    pub(crate) fn stop(&self, limit: std::time::Duration) {
        self.cancel();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline && self.pid.and_then(|p| i32::try_from(p).ok()).is_some_and(group_alive) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

#[cfg(unix)]
fn group_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks whether the process group exists.
    unsafe { libc::kill(-pid, 0) == 0 }
}

#[cfg(not(unix))]
fn group_alive(_pid: i32) -> bool {
    false
}

#[cfg(unix)]
fn kill_group(pid: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group `pid` leads — the group
    // this build was started in, which holds only cargo and its children.
    unsafe {
        libc::kill(-pid, libc::SIGTERM);
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: i32) {}

/// Start building `package`; `done` gets the outcome, on another thread.
pub(crate) fn start(config: &DevConfig, package: &Package, done: impl FnOnce(Outcome) + Send + 'static) -> Running {
    let cancelled = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let child = command(config, package).spawn();
    let pid = child.as_ref().ok().map(std::process::Child::id);
    let (was_cancelled, has_finished) = (cancelled.clone(), finished.clone());
    let manifest = package.manifest_path.to_string_lossy().into_owned();
    let wait = move || {
        let outcome = match child.and_then(std::process::Child::wait_with_output) {
            Err(e) => Outcome::Failed { message: format!("could not run cargo: {e}"), ms: 0.0 },
            Ok(_) if was_cancelled.load(Ordering::SeqCst) => Outcome::Cancelled,
            Ok(output) => outcome(&output, &manifest, started.elapsed().as_secs_f64() * 1000.0),
        };
        has_finished.store(true, Ordering::SeqCst);
        done(outcome);
    };
    if let Err(e) = std::thread::Builder::new().name("hotswap-dev-build".into()).spawn(wait) {
        eprintln!("hotswap dev: cannot wait for the build: {e}");
    }
    Running { pid, cancelled, finished }
}

fn command(config: &DevConfig, package: &Package) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.args(["build", "--quiet", "--message-format", "json-render-diagnostics", "--target", "wasm32-unknown-unknown"])
        .args(["--profile", PROFILE, "--manifest-path"])
        .arg(&package.manifest_path)
        .arg("--target-dir")
        .arg(target_dir(config, package))
        .args(["--color", if std::io::stderr().is_terminal() { "always" } else { "never" }])
        // The crate's own `.cargo/config.toml` applies, as when its developer runs cargo there.
        .current_dir(package.manifest_path.parent().unwrap_or(Path::new(".")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in PROFILE_SETTINGS {
        cmd.arg("--config").arg(format!("profile.{PROFILE}.{key}={value}"));
    }
    if !config.features.is_empty() {
        cmd.args(["--features", &config.features.join(",")]);
    }
    if let Some(flags) = &config.rustflags {
        cmd.env("RUSTFLAGS", flags);
    }
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd
}

/// Absolute: cargo runs in the crate's directory.
fn target_dir(config: &DevConfig, package: &Package) -> PathBuf {
    let dir = config.target_dir.clone().unwrap_or_else(|| package.target_dir.join("hotswap-dev"));
    std::path::absolute(&dir).unwrap_or(dir)
}

fn outcome(output: &Output, manifest: &str, ms: f64) -> Outcome {
    let diagnostics = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Outcome::Failed { message: diagnostics, ms };
    }
    match artifact(&output.stdout, manifest) {
        Some(wasm) => Outcome::Built { wasm, ms },
        None => Outcome::Failed { message: format!("cargo built no .wasm for {manifest}\n{diagnostics}"), ms },
    }
}

/// The `.wasm` cargo reports for the package at `manifest` (`compiler-artifact` messages).
fn artifact(stdout: &[u8], manifest: &str) -> Option<PathBuf> {
    let same_manifest =
        |m: &str| std::path::Path::new(m).canonicalize().ok() == std::path::Path::new(manifest).canonicalize().ok();
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["manifest_path"].as_str().is_some_and(same_manifest))
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
}

/// `text` without terminal colour codes (for the page).
pub(crate) fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_taken_out_for_the_page() {
        assert_eq!(plain("\u{1b}[1m\u{1b}[38;5;9merror\u{1b}[0m: x"), "error: x");
    }

    #[test]
    fn the_wasm_artifact_of_the_package_is_found_among_cargo_messages() {
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let other = concat!(env!("CARGO_MANIFEST_DIR"), "/../abi/Cargo.toml");
        let stdout = format!(
            "{{\"reason\":\"compiler-artifact\",\"manifest_path\":\"{other}\",\"filenames\":[\"/t/abi.wasm\"]}}\nnot json\n{{\"reason\":\"compiler-artifact\",\"manifest_path\":\"{manifest}\",\"filenames\":[\"/t/libg.rlib\",\"/t/g.wasm\"]}}\n{{\"reason\":\"build-finished\",\"success\":true}}\n"
        );
        assert_eq!(artifact(stdout.as_bytes(), manifest), Some(PathBuf::from("/t/g.wasm")));
        assert_eq!(artifact(b"", manifest), None);
    }
}
