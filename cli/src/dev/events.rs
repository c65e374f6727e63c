//! What the dev loop reports: to the terminal (one line per rebuild) and, as JSON over
//! Server-Sent Events, to the pages (the error overlay, the dev notices).

use serde::Serialize;

/// One step of the loop. JSON: `{"type": "build-failed", "changed": [...], ...}`, field
/// names in camelCase.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum DevEvent {
    /// A build started for these changed files (relative to the crate, or the dependency's
    /// directory); empty for the first build.
    Building {
        /// The files.
        changed: Vec<String>,
    },
    /// The compiler refused the source: the last good version stays published.
    BuildFailed {
        /// What changed since the last build that finished.
        changed: Vec<String>,
        /// Cargo's wall time.
        build_ms: f64,
        /// The compiler's diagnostics, as text.
        message: String,
    },
    /// A new dev version is listed as current, signed, and announced to the pages.
    Published {
        /// The guest's name.
        guest: String,
        /// The dev version, `1.1.0-dev.7`.
        version: String,
        /// The module's digest.
        sha256: String,
        /// What changed.
        changed: Vec<String>,
        /// Cargo's wall time.
        build_ms: f64,
        /// Stamping, signing, writing and announcing it.
        publish_ms: f64,
    },
    /// The build produced the module already published (a comment, a formatting change).
    Unchanged {
        /// What changed.
        changed: Vec<String>,
        /// Cargo's wall time.
        build_ms: f64,
        /// The version still current.
        version: String,
    },
    /// The module built but cannot be published (the loader would refuse it, or the
    /// registry could not be written): the last good version stays published.
    PublishFailed {
        /// What changed.
        changed: Vec<String>,
        /// Why.
        message: String,
    },
}

impl DevEvent {
    /// Whether the page should show this as an error overlay.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::BuildFailed { .. } | Self::PublishFailed { .. })
    }

    /// The terminal's line for this event.
    pub fn line(&self) -> String {
        match self {
            Self::Building { changed } => format!("{} → building", what_changed(changed)),
            Self::BuildFailed { changed, build_ms, .. } => {
                format!(
                    "{} → build failed after {}; the last good version stays live",
                    what_changed(changed),
                    secs(*build_ms)
                )
            }
            Self::Published { guest, version, changed, build_ms, publish_ms, .. } => format!(
                "{} → {guest} {version} live: build {}, publish+push {publish_ms:.0} ms",
                what_changed(changed),
                secs(*build_ms)
            ),
            Self::Unchanged { changed, build_ms, version } => {
                format!(
                    "{} → same module as {version} (build {}): nothing to publish",
                    what_changed(changed),
                    secs(*build_ms)
                )
            }
            Self::PublishFailed { changed, message } => {
                format!("{} → not published: {message}", what_changed(changed))
            }
        }
    }
}

fn what_changed(changed: &[String]) -> String {
    match changed {
        [] => "first build".into(),
        [one] => format!("{one} changed"),
        [first, rest @ ..] => format!("{first} and {} more changed", rest.len()),
    }
}

fn secs(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}
