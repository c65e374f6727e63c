//! Publishing a dev build: the next dev version of its guest (one more than any dev build
//! listed), stamped into the module, signed and listed as current with the `hotswap
//! publish` code; dev builds beyond the last few are taken off the manifest.

use std::path::Path;

use hotswap_registry::Manifest;

use super::stamp::{dev_number, dev_version, read_metadata, stamp_version};
use super::DevConfig;
use crate::registry;

/// Days a dev manifest stays valid.
const EXPIRES_DAYS: u64 = 30;

/// A dev build now current.
#[derive(Debug)]
pub(crate) struct Published {
    pub guest: String,
    pub version: String,
    pub sha256: String,
    /// Dev builds of the guest listed now, this one included.
    pub listed: usize,
}

/// Publish `module` (built at `source`) as the next dev build of its guest.
pub(crate) fn publish(config: &DevConfig, module: &[u8], source: &Path) -> Result<Published, String> {
    let base = read_metadata(module).map_err(|e| e.to_string())?;
    let manifest = registry::manifest(&config.registry, &config.keys).map_err(|e| e.to_string())?;
    let builds = dev_builds(&manifest, &base.name);
    let number = builds.last().map_or(1, |(n, _)| n + 1);
    let version = dev_version(&base.version, number);
    let (stamped, _) = stamp_version(module, &version).map_err(|e| e.to_string())?;
    let publication = registry::publish_bytes(&stamped, source, &config.registry, &config.keys, true, EXPIRES_DAYS)
        .map_err(|e| e.to_string())?;
    Ok(Published {
        guest: base.name,
        version: version.to_string(),
        sha256: publication.sha256,
        listed: builds.len() + 1,
    })
}

/// Whether [`prune`] has work once `listed` dev builds are listed: more than twice `keep`
/// (pruning in batches, so most rebuilds write one manifest, not two, and do not hold the
/// registry's lock while the server reads the new manifest).
pub(crate) fn needs_pruning(config: &DevConfig, listed: usize) -> bool {
    listed > 2 * config.keep.max(1)
}

/// Take all dev builds of `guest` but the newest `keep` off the manifest.
pub(crate) fn prune(config: &DevConfig, guest: &str) -> Result<Vec<String>, String> {
    let manifest = registry::manifest(&config.registry, &config.keys).map_err(|e| e.to_string())?;
    let builds = dev_builds(&manifest, guest);
    if builds.len() <= config.keep.max(1) {
        return Ok(Vec::new());
    }
    let old: Vec<String> = builds[..builds.len() - config.keep.max(1)].iter().map(|(_, v)| v.clone()).collect();
    registry::unlist(&config.registry, guest, &old, &config.keys, EXPIRES_DAYS).map_err(|e| e.to_string())
}

/// The dev builds of `guest` listed in `manifest`, by build number.
fn dev_builds(manifest: &Manifest, guest: &str) -> Vec<(u64, String)> {
    let versions = manifest.guests.get(guest).map(|g| g.versions.keys()).into_iter().flatten();
    let mut builds: Vec<(u64, String)> = versions.filter_map(|v| Some((dev_number(v)?, v.clone()))).collect();
    builds.sort();
    builds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::test_guest::guest;

    fn config(dir: &Path) -> DevConfig {
        let key = dir.join("dev.key");
        crate::keys::keygen(dir, "dev").expect("key");
        DevConfig { keep: 2, ..DevConfig::new(dir, dir.join("registry"), key) }
    }

    #[test]
    fn each_build_is_the_next_dev_version_current_signed_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config(dir.path());
        let source = dir.path().join("g.wasm");
        let mut versions = Vec::new();
        for _ in 0..5 {
            let published = publish(&config, &guest("1.1.0"), &source).expect("published");
            assert_eq!(published.guest, "g");
            versions.push(published.version);
            if needs_pruning(&config, published.listed) {
                prune(&config, "g").expect("pruned");
            }
        }
        assert_eq!(versions, ["1.1.0-dev.1", "1.1.0-dev.2", "1.1.0-dev.3", "1.1.0-dev.4", "1.1.0-dev.5"]);
        let manifest = registry::manifest(&config.registry, &config.keys).expect("verifies");
        let listed: Vec<&String> = manifest.guests["g"].versions.keys().collect();
        assert_eq!(manifest.guests["g"].current, "1.1.0-dev.5");
        // More than twice `keep` (2) were listed after the 5th: back to the newest 2.
        assert_eq!(listed, ["1.1.0-dev.4", "1.1.0-dev.5"]);
        let files = std::fs::read_dir(config.registry.join(hotswap_registry::MODULES_DIR)).expect("modules").count();
        assert_eq!(files, 2, "unlisted modules are deleted");
        let report =
            registry::verify(&config.registry, &[dir.path().join("dev.pub")], 1, None).expect("registry verifies");
        assert!(report.contains("2 module(s)"), "{report}");
    }

    #[test]
    fn a_module_the_loader_would_refuse_is_not_published_and_the_current_build_stays() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config(dir.path());
        let source = dir.path().join("g.wasm");
        publish(&config, &guest("1.0.0"), &source).expect("published");
        let no_metadata = wat::parse_str("(module (memory (export \"memory\") 1))").expect("valid WAT");
        let error = publish(&config, &no_metadata, &source).expect_err("refused");
        assert!(error.contains("hotswap.meta"), "{error}");
        let missing_export = wat::parse_str(
            "(module (memory (export \"memory\") 1) (@custom \"hotswap.meta\" \"abi=1.0\\nname=g\\nversion=1.0.0\\nstate-schema=1\\n\"))",
        )
        .expect("valid WAT");
        let error = publish(&config, &missing_export, &source).expect_err("refused");
        assert!(error.contains("MISSING_EXPORT") || error.contains("hotswap_alloc"), "{error}");
        let manifest = registry::manifest(&config.registry, &config.keys).expect("verifies");
        assert_eq!(manifest.guests["g"].current, "1.0.0-dev.1");
    }
}
