//! `HotSwap.watch(manifestUrl, options)`: what to follow and whom to trust.

use hotswap_registry::PinnedKey;
use js_sys::Reflect;
use wasm_bindgen::JsValue;

use super::policy::MajorUpdates;
use super::trust::Trust;
use crate::digest::Digest;
use crate::error::LoaderError;
use crate::js::{invalid, js_input};
use crate::options::{LoadOptions, ModuleSource};

js_input! {
    /// `HotSwap.watch` options: what to follow and whom to trust, plus every `LoadOptions` key.
    pub struct WatchOptions as "WatchOptions" extends "LoadOptions" {
        /// The guest to follow (its name in the manifest).
        guest: String as "guest",
        /// Pinned Ed25519 public keys, 64 hex digits each (`hotswap keygen` writes them).
        keys: Vec<String> as "keys",
        /// How many distinct pinned keys must have signed the manifest (default 1).
        threshold: u32 as "threshold" = 1,
        /// Major releases: swap when the state migrates (default), or never automatically.
        major_updates: MajorUpdates as "majorUpdates" = MajorUpdates::WithMigration,
        /// Poll interval while no push channel is open, in ms (default 30000; 10x that while one is).
        poll_interval_ms: f64 as "pollIntervalMs" = 30_000.0,
        /// Longest wait after repeated errors, in ms (default 300000); waits double from pollIntervalMs.
        max_backoff_ms: f64 as "maxBackoffMs" = 300_000.0,
        /// A Server-Sent Events URL: any message means "check the manifest now".
        push: Option<String> as "push",
        /// The guest to run when the registry cannot be reached or trusted.
        fallback: Option<ModuleSource> as "fallback",
        /// Largest manifest accepted, in bytes (default 1 MiB).
        max_manifest_bytes: u64 as "maxManifestBytes" = hotswap_registry::MAX_MANIFEST_BYTES,
    }
}

/// How a slot follows its registry, checked and resolved.
#[derive(Clone, Debug)]
pub(crate) struct WatchConfig {
    /// The manifest's absolute URL.
    pub manifest_url: String,
    /// The guest to follow.
    pub guest: String,
    /// Pinned keys, threshold and manifest byte cap.
    pub trust: Trust,
    /// What to do about major releases.
    pub major: MajorUpdates,
    /// Milliseconds between polls while no push channel is open (and the first backoff step).
    pub poll_ms: f64,
    /// Longest wait between attempts after repeated errors.
    pub max_backoff_ms: f64,
    /// A Server-Sent Events URL; any message on it means "check the manifest now".
    pub push_url: Option<String>,
    /// The guest to run when the registry cannot be reached or trusted.
    pub fallback: Option<ModuleSource>,
}

impl WatchConfig {
    /// Read `HotSwap.watch(manifestUrl, options)`: the watch settings, and the load options
    /// for the slot. Relative URLs resolve against the page.
    pub(crate) fn from_js(manifest_url: &str, value: &JsValue) -> Result<(Self, LoadOptions), LoaderError> {
        let watch = WatchOptions::from_js_with(value, "options", LoadOptions::KEYS)?;
        let load = LoadOptions::from_js_with(value, "options", WatchOptions::KEYS)?;
        if watch.keys.is_empty() {
            return Err(invalid("options.keys", "at least one pinned Ed25519 public key (64 hex digits)"));
        }
        let keys = watch.keys.iter().enumerate().map(|(i, k)| pinned_key(i, k)).collect::<Result<Vec<_>, _>>()?;
        let threshold = watch.threshold as usize;
        if threshold == 0 || threshold > keys.len() {
            return Err(invalid("options.threshold", &format!("1..={} (the number of pinned keys)", keys.len())));
        }
        if watch.poll_interval_ms < 10.0 {
            return Err(invalid("options.pollIntervalMs", "at least 10"));
        }
        let config = WatchConfig {
            manifest_url: absolute(manifest_url, "manifestUrl")?,
            guest: watch.guest,
            trust: Trust { keys, threshold, max_manifest_bytes: watch.max_manifest_bytes },
            major: watch.major_updates,
            poll_ms: watch.poll_interval_ms,
            max_backoff_ms: watch.max_backoff_ms,
            push_url: watch.push.as_deref().map(|p| absolute(p, "options.push")).transpose()?,
            fallback: watch.fallback,
        };
        Ok((config, load))
    }
}

/// A pinned key: 64 hex digits (the `.pub` file `hotswap keygen` writes).
fn pinned_key(index: usize, hex: &str) -> Result<PinnedKey, LoaderError> {
    let public =
        Digest::from_hex(hex.trim()).ok_or_else(|| invalid(&format!("options.keys[{index}]"), "64 hex digits"))?;
    Ok(PinnedKey { public: public.0 })
}

/// `url` resolved against the page's (or worker's) location.
pub(crate) fn absolute(url: &str, path: &str) -> Result<String, LoaderError> {
    let base = Reflect::get(&js_sys::global(), &"location".into())
        .ok()
        .and_then(|l| Reflect::get(&l, &"href".into()).ok())
        .and_then(|h| h.as_string());
    let resolved = match base {
        Some(base) => web_sys::Url::new_with_base(url, &base),
        None => web_sys::Url::new(url),
    };
    resolved.map(|u| u.href()).map_err(|_| invalid(path, "a URL"))
}
