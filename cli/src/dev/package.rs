//! The guest package, from `cargo metadata`: its name and manifest, the target directory,
//! and the directories of every local (path) package it depends on, which the loop
//! watches too — editing the SDK rebuilds the guest.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::DevError;

/// What to build and what to watch.
#[derive(Clone, Debug)]
pub(crate) struct Package {
    pub name: String,
    pub manifest_path: PathBuf,
    pub target_dir: PathBuf,
    /// The package's directory first, then those of its local dependencies (build and
    /// normal).
    pub watch_dirs: Vec<PathBuf>,
}

/// Describe the package whose `Cargo.toml` is in `dir`.
pub(crate) fn resolve(dir: &Path) -> Result<Package, DevError> {
    let fail = |why: String| DevError::NotAPackage { dir: dir.to_path_buf(), why };
    let dir = dir.canonicalize().map_err(|e| fail(e.to_string()))?;
    let manifest = dir.join("Cargo.toml");
    let output = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .current_dir(&dir)
        .output()
        .map_err(|e| fail(format!("running cargo: {e}")))?;
    if !output.status.success() {
        return Err(fail(String::from_utf8_lossy(&output.stderr).trim().to_string()));
    }
    let metadata: Value = serde_json::from_slice(&output.stdout).map_err(|e| fail(format!("cargo metadata: {e}")))?;
    from_metadata(&metadata, &manifest).map_err(fail)
}

/// The `cargo` that runs us (as a cargo subcommand or script), else the one on PATH.
pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn from_metadata(metadata: &Value, manifest: &Path) -> Result<Package, String> {
    let packages = metadata["packages"].as_array().ok_or("no packages in cargo metadata")?;
    let wanted = manifest.canonicalize().map_err(|e| format!("{}: {e}", manifest.display()))?;
    let root = packages
        .iter()
        .find(|p| p["manifest_path"].as_str().and_then(|m| Path::new(m).canonicalize().ok()).as_ref() == Some(&wanted))
        .ok_or("the directory's Cargo.toml is not a package (a virtual workspace?)")?;
    if !root["targets"].as_array().into_iter().flatten().any(|t| has_kind(t, "cdylib")) {
        return Err(format!("{} has no cdylib target; add `crate-type = [\"cdylib\"]` under [lib]", root["name"]));
    }
    let local: HashMap<&str, &Value> =
        packages.iter().filter(|p| p["source"].is_null()).filter_map(|p| Some((p["id"].as_str()?, p))).collect();
    let mut dirs = BTreeSet::new();
    for id in local_closure(metadata, root["id"].as_str().unwrap_or_default()) {
        if let Some(dir) =
            local.get(id.as_str()).and_then(|p| p["manifest_path"].as_str()).and_then(|m| Path::new(m).parent())
        {
            dirs.insert(dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()));
        }
    }
    let own = wanted.parent().map(Path::to_path_buf).unwrap_or_default();
    dirs.remove(&own);
    Ok(Package {
        name: root["name"].as_str().unwrap_or_default().to_string(),
        target_dir: PathBuf::from(metadata["target_directory"].as_str().unwrap_or("target")),
        watch_dirs: std::iter::once(own).chain(dirs).collect(),
        manifest_path: wanted,
    })
}

fn has_kind(target: &Value, kind: &str) -> bool {
    target["kind"].as_array().is_some_and(|k| k.iter().any(|v| v == kind))
}

/// The package `root` and every package it depends on (not dev-dependencies), by id.
fn local_closure(metadata: &Value, root: &str) -> BTreeSet<String> {
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_string()];
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let deps = nodes.get(id.as_str()).and_then(|n| n["deps"].as_array()).into_iter().flatten();
        for dep in deps.filter(|d| !only_dev(d)) {
            if let Some(pkg) = dep["pkg"].as_str() {
                todo.push(pkg.to_string());
            }
        }
    }
    seen
}

fn only_dev(dep: &Value) -> bool {
    let kinds = dep["dep_kinds"].as_array().map(Vec::as_slice).unwrap_or_default();
    !kinds.is_empty() && kinds.iter().all(|k| k["kind"] == "dev")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_editor_guest_watches_itself_and_the_sdk_but_not_the_server() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let package = resolve(&root.join("guest-modules/editor")).expect("the editor is a package");
        assert_eq!(package.name, "editor");
        let names: Vec<String> =
            package.watch_dirs.iter().filter_map(|d| Some(d.file_name()?.to_string_lossy().into_owned())).collect();
        for wanted in ["editor", "sdk", "sdk-macros", "abi"] {
            assert!(names.contains(&wanted.to_string()), "{wanted} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n == "demo-app" || n == "cli"), "{names:?}");
    }

    #[test]
    fn a_package_without_a_cdylib_is_refused_with_a_reason() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let error = resolve(&root.join("registry")).expect_err("the registry crate is no guest");
        assert!(error.to_string().contains("no cdylib target"), "{error}");
    }
}
