//! What a watched slot reports: its events, the outcome of a check, and the registry view.

use super::policy::SkipReason;
use crate::js::{js_enum, js_output, js_union};

js_union! {
    /// The events a watched slot adds to those of `HotSwap.load`.
    pub(crate) enum WatchEvent as "HotSwapWatchEvent" {
        /// A new manifest verified.
        Manifest "manifest" {
            /// The release it names as current for the guest followed.
            version: Option<String> as "version",
            /// The manifest's version.
            manifest_version: u64 as "manifestVersion",
        },
        /// The manifest names a release the policy does not take now.
        UpdateSkipped "update-skipped" {
            /// That release.
            version: String as "version",
            /// Why.
            reason: SkipReason as "reason",
        },
        /// The registry could not be reached or trusted: the app's fallback guest runs.
        Fallback "fallback" {
            /// The error's code.
            code: String as "code",
            /// The error's message.
            message: String as "message",
        },
    }
}

js_enum! {
    /// What one registry check did.
    pub(crate) enum CheckAction as "CheckAction" {
        /// The listed release runs already.
        UpToDate = "up-to-date",
        /// It was swapped in.
        Swapped = "swapped",
        /// The policy skipped it.
        Skipped = "skipped",
    }
}

js_output! {
    /// The outcome of one registry check.
    pub struct UpdateCheck as "UpdateCheck" {
        /// The verified manifest's version.
        manifest_version: u64 as "manifestVersion",
        /// The release the manifest names as current.
        listed: String as "listed",
        /// The version running after the check.
        running: String as "running",
        /// What the check did.
        action: CheckAction as "action",
        /// Why it was skipped.
        reason: Option<SkipReason> as "reason",
    }
}

js_output! {
    /// One listed release.
    pub struct ListedRelease as "ListedRelease" {
        /// SemVer version.
        version: String as "version",
        /// SHA-256, hex.
        sha256: String as "sha256",
        /// Size in bytes.
        size: u64 as "size",
        /// State schema.
        state_schema: u32 as "stateSchema",
    }
}

js_output! {
    /// The last verified manifest, as far as the guest followed is concerned.
    pub struct RegistryView as "RegistryView" {
        /// The manifest URL watched.
        manifest_url: String as "manifestUrl",
        /// The last verified manifest's version, if any was verified.
        manifest_version: Option<u64> as "manifestVersion",
        /// Its expiry (seconds since the Unix epoch).
        expires: Option<u64> as "expires",
        /// The release it names as current.
        current: Option<String> as "current",
        /// Every listed release of the guest.
        versions: Vec<ListedRelease> as "versions",
        /// Whether the running version is the app's fallback guest.
        using_fallback: bool as "usingFallback",
        /// Whether the push channel is open.
        push_open: bool as "pushOpen",
    }
}

impl crate::js::JsType for Vec<ListedRelease> {
    const TS: &'static str = "ListedRelease[]";
}

impl crate::js::ToJs for Vec<ListedRelease> {
    fn to_js(&self) -> wasm_bindgen::JsValue {
        self.iter().map(crate::js::ToJs::to_js).collect::<js_sys::Array>().into()
    }
}
