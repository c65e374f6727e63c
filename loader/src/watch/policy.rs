//! The update policy of a watched slot: whether the release a verified manifest names as
//! current should replace the running version, decided from the manifest alone (before any
//! download). Patch and minor releases go ahead; a major one (a different SemVer
//! compatibility class: major, or minor below 1.0, as Cargo reads it) only when allowed
//! and when the two versions share a state schema path.

use std::collections::HashSet;

use hotswap_registry::{GuestReleases, Release};
use semver::Version;

use crate::js::js_enum;
use crate::version::VersionInfo;

js_enum! {
    /// What to do about major releases.
    pub(crate) enum MajorUpdates as "MajorUpdates" {
        /// Swap when the state can travel: the new guest migrates from the running schema
        /// (or the running guest can save down to the new one's).
        WithMigration = "with-migration",
        /// Never swap automatically; the app decides (`checkForUpdates` reports them).
        Never = "never",
    }
}

js_enum! {
    /// Why an update is skipped.
    pub(crate) enum SkipReason as "SkipReason" {
        /// A major release and `majorUpdates: "never"`.
        Major = "major",
        /// A major release whose state schema no migration connects to the running one.
        NoMigration = "no-migration",
        /// That exact module already failed on this page, or was rolled back from.
        FailedHere = "failed-here",
    }
}

/// The verdict on the manifest's current release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// It is the running version.
    UpToDate,
    /// Swap to it.
    Update,
    /// Not now; the reason is reported in `update-skipped` events.
    Skip(SkipReason),
}

/// Decide whether `release` (listed as `version`) should replace `running`. `failed` holds
/// the digests that failed on this page or were rolled back from: none is tried again.
pub(crate) fn decide(
    running: &VersionInfo,
    version: &str,
    release: &Release,
    failed: &HashSet<String>,
    major: MajorUpdates,
) -> Decision {
    if release.sha256 == running.sha256 {
        return Decision::UpToDate;
    }
    if failed.contains(&release.sha256) {
        return Decision::Skip(SkipReason::FailedHere);
    }
    let same_class = match (Version::parse(&running.version), Version::parse(version)) {
        (Ok(a), Ok(b)) => compatibility_class(&a) == compatibility_class(&b),
        _ => false,
    };
    if same_class {
        return Decision::Update;
    }
    if major == MajorUpdates::Never {
        return Decision::Skip(SkipReason::Major);
    }
    let migrates = release.state_schema == running.state_schema
        || release.migrates_from.contains(&running.state_schema)
        || running.migrates_to.contains(&release.state_schema);
    if migrates {
        Decision::Update
    } else {
        Decision::Skip(SkipReason::NoMigration)
    }
}

/// Where a page starts when the current release has not run fine here yet: the newest
/// listed release other than `current_sha256` whose digest did (`good`, newest last). The
/// current release is then swapped in on probation, so a release that fails at once rolls
/// back to this one instead of leaving the page with nothing to go back to.
pub(crate) fn last_good<'m>(
    releases: &'m GuestReleases,
    current_sha256: &str,
    good: &[String],
) -> Option<(&'m str, &'m Release)> {
    releases
        .versions
        .iter()
        .filter(|(_, r)| r.sha256 != current_sha256 && good.contains(&r.sha256))
        .filter_map(|(v, r)| Some((Version::parse(v).ok()?, v.as_str(), r)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v, r)| (v, r))
}

/// The part of a version whose change is breaking: (major) from 1.0, (0, minor) below,
/// (0, 0, patch) below 0.1 — Cargo's reading of SemVer.
fn compatibility_class(v: &Version) -> (u64, u64, u64) {
    match (v.major, v.minor) {
        (0, 0) => (0, 0, v.patch),
        (0, minor) => (0, minor, 0),
        (major, _) => (major, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(version: &str, schema: u32, migrates_to: &[u32]) -> VersionInfo {
        VersionInfo {
            name: "editor".into(),
            version: version.into(),
            abi: "1.0".into(),
            state_schema: schema,
            migrates_from: vec![],
            migrates_to: migrates_to.to_vec(),
            sha256: "aa".repeat(32),
            exports: vec![],
        }
    }

    fn release(digest: &str, schema: u32, migrates_from: &[u32]) -> Release {
        Release {
            sha256: digest.repeat(32),
            size: 1,
            abi: "1.0".into(),
            state_schema: schema,
            migrates_from: migrates_from.to_vec(),
            url: String::new(),
        }
    }

    fn decide_default(r: &VersionInfo, version: &str, rel: &Release) -> Decision {
        decide(r, version, rel, &HashSet::new(), MajorUpdates::WithMigration)
    }

    #[test]
    fn the_running_module_is_up_to_date() {
        assert_eq!(decide_default(&running("1.0.0", 1, &[]), "1.0.0", &release("aa", 1, &[])), Decision::UpToDate);
    }

    #[test]
    fn patch_minor_and_downgrades_within_a_major_update_automatically() {
        let r = running("1.1.0", 1, &[]);
        for v in ["1.1.1", "1.2.0", "1.0.0"] {
            assert_eq!(decide_default(&r, v, &release("bb", 1, &[])), Decision::Update, "{v}");
        }
    }

    #[test]
    fn a_major_update_needs_a_declared_migration_unless_never() {
        let r = running("1.1.0", 1, &[]);
        assert_eq!(decide_default(&r, "2.0.0", &release("bb", 2, &[1])), Decision::Update);
        assert_eq!(decide_default(&r, "2.0.0", &release("bb", 2, &[])), Decision::Skip(SkipReason::NoMigration));
        let never = decide(&r, "2.0.0", &release("bb", 2, &[1]), &HashSet::new(), MajorUpdates::Never);
        assert_eq!(never, Decision::Skip(SkipReason::Major));
    }

    #[test]
    fn a_major_downgrade_goes_ahead_when_the_running_guest_saves_down() {
        assert_eq!(decide_default(&running("2.1.0", 2, &[1]), "1.1.0", &release("bb", 1, &[])), Decision::Update);
        assert_eq!(
            decide_default(&running("2.1.0", 2, &[]), "1.1.0", &release("bb", 1, &[])),
            Decision::Skip(SkipReason::NoMigration)
        );
    }

    #[test]
    fn below_one_the_minor_is_the_breaking_part() {
        let r = running("0.3.1", 1, &[]);
        assert_eq!(decide_default(&r, "0.3.9", &release("bb", 2, &[])), Decision::Update);
        assert_eq!(decide_default(&r, "0.4.0", &release("bb", 2, &[])), Decision::Skip(SkipReason::NoMigration));
    }

    #[test]
    fn the_last_good_release_is_the_newest_listed_one_that_ran_fine_here() {
        let versions = [("1.0.0", "aa"), ("1.1.0", "bb"), ("2.0.0", "cc"), ("2.1.0", "dd")]
            .into_iter()
            .map(|(v, d)| (v.to_string(), release(d, 1, &[])))
            .collect();
        let listed = GuestReleases { current: "2.1.0".into(), versions };
        let good = |ds: &[&str]| ds.iter().map(|d| d.repeat(32)).collect::<Vec<_>>();
        let current = "dd".repeat(32);
        assert_eq!(last_good(&listed, &current, &good(&["bb", "aa"])).map(|(v, _)| v), Some("1.1.0"));
        assert_eq!(last_good(&listed, &current, &good(&["cc", "dd", "aa"])).map(|(v, _)| v), Some("2.0.0"));
        assert_eq!(last_good(&listed, &current, &good(&["dd", "ee"])), None, "the current one itself does not count");
        assert_eq!(last_good(&listed, &current, &[]), None);
    }

    #[test]
    fn a_module_that_failed_here_is_never_tried_again() {
        let failed = HashSet::from(["bb".repeat(32)]);
        let d =
            decide(&running("1.0.0", 1, &[]), "1.0.1", &release("bb", 1, &[]), &failed, MajorUpdates::WithMigration);
        assert_eq!(d, Decision::Skip(SkipReason::FailedHere));
    }
}
