//! The loader's module graph is the pipeline the crate doc promises: acyclic, each stage
//! depending only on the stages before it and on the shared types. A `use crate::x` that
//! breaks the order fails here, naming the edge.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;
use std::path::Path;

/// Every module, in dependency order: each may use only those listed before it.
const ORDER: &[&str] = &[
    // Shared types.
    "digest",
    "error",
    "js",
    "events",
    "queue",
    "net",
    "options",
    "version",
    "cache",
    "worker",
    // The pipeline, in stage order, with the stable exports object and probation.
    "hasher",
    "fetch",
    "validate",
    "instance",
    "shim",
    "probation",
    "precopy",
    "commit",
    "rollback",
    // Orchestration, the registry watcher (its own stages in order), the facade.
    "slot",
    "slot/calls",
    "slot/swap",
    "slot/back",
    "watch/policy",
    "watch/trust",
    "watch/options",
    "watch/events",
    "watch/watcher",
    "watch",
    "api",
    "lib",
];

/// The modules `source` refers to through `crate::x` (and, in a submodule, `super::x`).
fn dependencies(module: &str, source: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    let parent = module.rsplit_once('/').map_or(String::new(), |(dir, _)| format!("{dir}/"));
    for (prefix, scope) in [("crate::", ""), ("super::", parent.as_str())] {
        if prefix == "super::" && scope.is_empty() {
            continue;
        }
        for (at, _) in source.match_indices(prefix) {
            // `$crate::` in a macro definition names the module that defines the macro.
            if prefix == "crate::" && source[..at].ends_with('$') {
                continue;
            }
            let name: String =
                source[at + prefix.len()..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            let target = format!("{scope}{name}");
            if !name.is_empty() && target != module {
                deps.insert(target);
            }
        }
    }
    deps
}

fn modules(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            modules(&path, &format!("{prefix}{name}/"), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module =
                if name == "mod" { prefix.trim_end_matches('/').to_string() } else { format!("{prefix}{name}") };
            out.push((module, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

#[test]
fn every_module_depends_only_on_modules_before_it_in_the_pipeline() {
    let mut found = Vec::new();
    modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), "", &mut found);
    let position = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut broken = Vec::new();
    for (module, source) in &found {
        let Some(at) = position(module) else {
            broken.push(format!("{module} is not placed in ORDER"));
            continue;
        };
        for dep in dependencies(module, source) {
            match position(&dep) {
                Some(d) if d < at => {}
                Some(_) => broken.push(format!("{module} -> {dep} (a later module)")),
                None => broken.push(format!("{module} -> {dep} (unknown module)")),
            }
        }
    }
    assert!(broken.is_empty(), "the module graph breaks the pipeline order:\n{}", broken.join("\n"));
    assert_eq!(found.len(), ORDER.len(), "ORDER lists modules that do not exist");
}
