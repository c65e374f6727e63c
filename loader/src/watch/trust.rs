//! Stage 0 (trust), for watched slots: fetch the registry's signed manifest under a byte
//! cap, check its signatures with WebCrypto Ed25519 against the keys the app pinned, and
//! apply the freshness rules (expiry; never older than the last manifest seen, remembered in
//! `localStorage` so a reload does not forget it). Nothing in a manifest is read before its
//! signatures reach the threshold; the rules themselves live in `hotswap-registry`, shared
//! with the `hotswap` CLI.

use std::ops::ControlFlow;

use hotswap_registry::{signed_message, Envelope, Manifest, PinnedKey, RegistryError};
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::RequestCache;

use crate::error::{js_message, LoaderError};
use crate::net::{self, ReadError};

/// What the app trusts: its pinned keys and how many of them must have signed.
#[derive(Clone, Debug)]
pub(crate) struct Trust {
    /// Pinned Ed25519 public keys.
    pub keys: Vec<PinnedKey>,
    /// Valid signatures by distinct pinned keys required (k of n).
    pub threshold: usize,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: u64,
}

/// The answer to a manifest request.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// 304: the manifest last fetched is still the registry's.
    NotModified,
    /// The manifest's bytes (not yet trusted) and its ETag.
    Body {
        /// The bytes of `manifest.json`.
        bytes: Vec<u8>,
        /// The ETag, for the next request's `If-None-Match`.
        etag: Option<String>,
    },
}

/// Fetch the manifest, conditionally on `etag`, never reading more than `max_bytes`.
pub(crate) async fn fetch_manifest(url: &str, etag: Option<&str>, max_bytes: u64) -> Result<Fetched, LoaderError> {
    let init = web_sys::RequestInit::new();
    // Our own If-None-Match decides freshness; the HTTP cache must not answer for the server.
    init.set_cache(RequestCache::NoStore);
    if let Some(etag) = etag {
        let headers = web_sys::Headers::new().map_err(|e| LoaderError::internal("Headers", &e))?;
        headers.set("if-none-match", etag).map_err(|e| LoaderError::internal("If-None-Match", &e))?;
        init.set_headers(&headers);
    }
    let (response, abort) = net::fetch(url, &init, None, crate::options::STALL_TIMEOUT_MS).await?;
    if response.status() == 304 {
        return Ok(Fetched::NotModified);
    }
    if !response.ok() {
        return Err(LoaderError::HttpStatus { url: url.to_string(), status: response.status() });
    }
    let etag = response.headers().get("etag").ok().flatten();
    let body = response.body().ok_or_else(|| LoaderError::BodyIncomplete { received: 0, message: "no body".into() })?;
    let mut bytes = Vec::new();
    let read = net::read_capped(&response, body, Some(&abort), max_bytes, |chunk| {
        bytes.extend_from_slice(&chunk.to_vec());
        ControlFlow::Continue(())
    })
    .await;
    match read {
        Ok(_) => Ok(Fetched::Body { bytes, etag }),
        Err(ReadError::TooLarge(actual)) => Err(RegistryError::TooLarge { limit: max_bytes, actual }.into()),
        Err(ReadError::Incomplete { received, message }) => Err(LoaderError::BodyIncomplete { received, message }),
        Err(ReadError::Stopped) => {
            Err(LoaderError::BodyIncomplete { received: bytes.len() as u64, message: "stopped".into() })
        }
    }
}

/// The manifest in `bytes`, if enough pinned keys signed it, it has not expired and it is
/// not older than `seen`.
pub(crate) async fn verify_manifest(bytes: &[u8], trust: &Trust, seen: Option<u64>) -> Result<Manifest, LoaderError> {
    let envelope = Envelope::parse(bytes)?;
    let message = signed_message(&envelope.payload_bytes()?);
    let mut valid = 0;
    for candidate in envelope.candidates(&trust.keys) {
        if ed25519_verify(&candidate.public, &candidate.signature, &message).await? {
            valid += 1;
        }
    }
    let manifest = envelope.accept(valid, trust.threshold)?;
    manifest.check_fresh(unix_now(), seen)?;
    Ok(manifest)
}

/// Seconds since the Unix epoch, by the page's clock.
pub(crate) fn unix_now() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

/// Check one Ed25519 signature with WebCrypto. A key WebCrypto rejects is a failed
/// signature; a browser without Ed25519 is an error of its own.
async fn ed25519_verify(public: &[u8; 32], signature: &[u8; 64], message: &[u8]) -> Result<bool, LoaderError> {
    let subtle = Reflect::get(&js_sys::global(), &"crypto".into())
        .and_then(|crypto| Reflect::get(&crypto, &"subtle".into()))
        .ok()
        .filter(|s| s.is_object())
        .ok_or_else(|| LoaderError::CryptoUnavailable { reason: "no crypto.subtle (not a secure context?)".into() })?;
    let algorithm = Object::new();
    let _ = Reflect::set(&algorithm, &"name".into(), &"Ed25519".into());
    let usages: Array = [JsValue::from("verify")].into_iter().collect();
    let args: Array = [
        JsValue::from("raw"),
        Uint8Array::from(&public[..]).into(),
        algorithm.clone().into(),
        JsValue::FALSE,
        usages.into(),
    ]
    .into_iter()
    .collect();
    let key = match call_subtle(&subtle, "importKey", &args).await {
        Ok(key) => key,
        Err(e) if error_name(&e) == "NotSupportedError" => {
            return Err(LoaderError::CryptoUnavailable {
                reason: format!("WebCrypto has no Ed25519: {}", js_message(&e)),
            })
        }
        Err(_) => return Ok(false),
    };
    let args: Array =
        [algorithm.into(), key, Uint8Array::from(&signature[..]).into(), Uint8Array::from(message).into()]
            .into_iter()
            .collect();
    Ok(call_subtle(&subtle, "verify", &args).await.map(|ok| ok.is_truthy()).unwrap_or(false))
}

async fn call_subtle(subtle: &JsValue, method: &str, args: &Array) -> Result<JsValue, JsValue> {
    let function: js_sys::Function = Reflect::get(subtle, &method.into())?.dyn_into()?;
    let promise: Promise = Reflect::apply(&function, subtle, args)?.dyn_into()?;
    JsFuture::from(promise).await
}

fn error_name(e: &JsValue) -> String {
    Reflect::get(e, &"name".into()).ok().and_then(|n| n.as_string()).unwrap_or_default()
}

/// The highest manifest version accepted from one manifest URL, kept in `localStorage`
/// (when the page has one) so that the rollback protection survives a reload.
#[derive(Debug)]
pub(crate) struct SeenVersion {
    key: String,
}

impl SeenVersion {
    /// The record for `manifest_url` (an absolute URL).
    pub(crate) fn new(manifest_url: &str) -> Self {
        Self { key: format!("wasm-hotswap:manifest-version:{manifest_url}") }
    }

    /// The version last recorded.
    pub(crate) fn get(&self) -> Option<u64> {
        storage()?.get_item(&self.key).ok()??.parse().ok()
    }

    /// Record `version` (never lowering the record).
    pub(crate) fn raise_to(&self, version: u64) {
        if self.get().is_some_and(|seen| seen >= version) {
            return;
        }
        if let Some(storage) = storage() {
            // Storage full or denied: the in-memory record still protects this page.
            let _ = storage.set_item(&self.key, &version.to_string());
        }
    }
}

fn storage() -> Option<web_sys::Storage> {
    Reflect::get(&js_sys::global(), &"localStorage".into()).ok()?.dyn_into().ok()
}
