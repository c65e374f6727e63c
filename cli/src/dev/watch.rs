//! File events from the watched packages' directories, as the changed files' names: relative
//! to the guest crate (`src/lib.rs`), or prefixed with a dependency's directory name
//! (`sdk/src/lib.rs`). Build output (`target/`), hidden files and editors' temporary files
//! are not changes.

use std::path::{Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher};

use super::DevError;

/// Watch each of `dirs` (the guest crate first): its files, and its subdirectories but
/// `target` and hidden ones, recursively (a recursive watch of the package would follow
/// `target/` and its thousands of build files). `notify` calls `send` with each change's
/// files, named as above.
pub(crate) fn watch(
    dirs: &[PathBuf],
    send: impl Fn(Vec<String>) + Send + 'static,
) -> Result<notify::RecommendedWatcher, DevError> {
    let roots = dirs.to_vec();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if !matters(&event.kind) {
            return;
        }
        let names: Vec<String> = event.paths.iter().filter_map(|p| name(&roots, p)).collect();
        if !names.is_empty() {
            send(names);
        }
    })
    .map_err(|source| DevError::Watch { path: PathBuf::new(), source })?;
    for dir in dirs {
        add(&mut watcher, dir, RecursiveMode::NonRecursive)?;
        let entries = std::fs::read_dir(dir).map_err(|e| DevError::Watch { path: dir.clone(), source: e.into() })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_some_and(|n| is_source(Path::new(n))) {
                add(&mut watcher, &path, RecursiveMode::Recursive)?;
            }
        }
    }
    Ok(watcher)
}

fn add(watcher: &mut notify::RecommendedWatcher, path: &Path, mode: RecursiveMode) -> Result<(), DevError> {
    watcher.watch(path, mode).map_err(|source| DevError::Watch { path: path.to_path_buf(), source })
}

/// Writes, creations, removals, renames and `touch` (cargo rebuilds on a newer mtime too);
/// not reads.
fn matters(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(_))
}

/// `path`'s name for the terminal and the page, if it is a source file under one of `roots`.
fn name(roots: &[PathBuf], path: &Path) -> Option<String> {
    let (index, relative) = roots.iter().enumerate().find_map(|(i, r)| Some((i, path.strip_prefix(r).ok()?)))?;
    if !is_source(relative) {
        return None;
    }
    let relative = relative.display().to_string();
    match roots[index].file_name() {
        Some(dir) if index > 0 => Some(format!("{}/{relative}", dir.to_string_lossy())),
        _ => Some(relative),
    }
}

/// `path` (relative to a watched package) is not build output, not hidden, not an
/// editor's swap or backup file.
fn is_source(path: &Path) -> bool {
    if path.components().any(|c| c.as_os_str() == "target") {
        return false;
    }
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    !(name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || name == "4913")
}

#[cfg(test)]
mod tests {
    use super::{is_source, name};
    use std::path::{Path, PathBuf};

    #[test]
    fn build_output_and_editor_temporaries_are_not_sources() {
        for ignored in ["target/debug/x.rs", "src/.lib.rs.swp", "src/lib.rs~", "src/4913", ".git", "src/#lib.rs#"] {
            assert!(!is_source(Path::new(ignored)), "{ignored}");
        }
        for source in ["src/lib.rs", "Cargo.toml", "src/page.html", "build.rs"] {
            assert!(is_source(Path::new(source)), "{source}");
        }
    }

    #[test]
    fn changes_are_named_relative_to_the_guest_or_by_the_dependency() {
        let roots = [PathBuf::from("/w/target/g"), PathBuf::from("/w/sdk")];
        assert_eq!(name(&roots, Path::new("/w/target/g/src/lib.rs")).as_deref(), Some("src/lib.rs"));
        assert_eq!(name(&roots, Path::new("/w/sdk/src/lib.rs")).as_deref(), Some("sdk/src/lib.rs"));
        assert_eq!(name(&roots, Path::new("/w/target/g/target/x.rs")), None);
        assert_eq!(name(&roots, Path::new("/elsewhere/x.rs")), None);
    }
}
