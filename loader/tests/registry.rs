//! Watched slots in headless Chrome: a registry served by `tests/support/server.mjs`
//! (in-memory channels, one per test), manifests signed here with real Ed25519 keys and
//! verified by the loader with WebCrypto. One test per TUF protection, then the update
//! policy, push, polling and the fallback guest.
//!
//! Every refusal test checks the typed code, and that the running version still answers
//! with its state unchanged.
#![cfg(all(target_arch = "wasm32", feature = "watch"))]

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey};
use hotswap_registry::{Envelope, GuestReleases, Manifest, Release};
use js_sys::{Array, Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use wasm_hotswap::{HotSwap, LoaderError};

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn public_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

fn unix_now() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

/// A listed release of a fixture guest: its real digest and size, served from `path`.
async fn release(guest_file: &str, path: &str, state_schema: u32, migrates_from: &[u32]) -> Release {
    let index = get_json("/guests/index.json").await;
    let entry = Reflect::get(&index, &guest_file.into()).unwrap();
    Release {
        sha256: Reflect::get(&entry, &"sha256".into()).unwrap().as_string().unwrap(),
        size: Reflect::get(&entry, &"size".into()).unwrap().as_f64().unwrap() as u64,
        abi: "1.0".into(),
        state_schema,
        migrates_from: migrates_from.to_vec(),
        url: format!("{}{path}", server()),
    }
}

async fn counter_v1() -> Release {
    release("counter-v1", "/guests/counter-v1.wasm", 1, &[]).await
}

/// A manifest for the `counter` guest expiring `ttl` seconds from now.
fn manifest(version: u64, ttl: i64, current: &str, releases: Vec<(&str, Release)>) -> Manifest {
    let versions = releases.into_iter().map(|(v, r)| (v.to_string(), r)).collect();
    let guests = BTreeMap::from([("counter".to_string(), GuestReleases { current: current.into(), versions })]);
    Manifest { version, expires: (unix_now() as i64 + ttl) as u64, guests }
}

fn seal(manifest: &Manifest, signers: &[&SigningKey]) -> Vec<u8> {
    let publics: Vec<[u8; 32]> = signers.iter().map(|k| k.verifying_key().to_bytes()).collect();
    Envelope::seal(manifest, &publics, |i, message| signers[i].sign(message).to_bytes()).to_json()
}

/// One registry channel on the fixture server.
struct Registry {
    base: String,
}

impl Registry {
    fn new(tag: &str) -> Self {
        let unique = (js_sys::Math::random() * 1e12) as u64;
        Self { base: format!("{}/registry/{tag}-{unique}", server()) }
    }

    fn manifest_url(&self) -> String {
        format!("{}/manifest.json", self.base)
    }

    async fn put(&self, path: &str, body: &[u8]) {
        let init = web_sys::RequestInit::new();
        init.set_method("PUT");
        init.set_body(&js_sys::Uint8Array::from(body).into());
        let url = format!("{}/{path}", self.base);
        let response: web_sys::Response =
            JsFuture::from(web_sys::window().unwrap().fetch_with_str_and_init(&url, &init))
                .await
                .unwrap()
                .unchecked_into();
        assert!(response.ok(), "PUT {url}: {}", response.status());
    }

    async fn publish(&self, manifest: &Manifest, signers: &[&SigningKey]) {
        self.put("manifest.json", &seal(manifest, signers)).await;
    }

    async fn stat(&self, name: &str) -> f64 {
        let path = self.base.trim_start_matches(server()).to_string();
        Reflect::get(&get_json(&format!("{path}/stats")).await, &name.into()).unwrap().as_f64().unwrap()
    }
}

/// `HotSwap.watch(url, options)` through the public JS API, with `options` (JSON, merged
/// over: guest `counter`, the key of seed 1, no polling to speak of), and every event.
struct Watched {
    result: Result<JsHotSwap, JsValue>,
    events: Array,
}

async fn watch_url(manifest_url: &str, options: &str) -> Watched {
    let defaults = format!(r#"{{"guest":"counter","keys":["{}"],"pollIntervalMs":600000}}"#, public_hex(&key(1)));
    let target: js_sys::Object = js_sys::JSON::parse(&defaults).unwrap().unchecked_into();
    let overrides: js_sys::Object = js_sys::JSON::parse(options).unwrap().unchecked_into();
    let object = js_sys::Object::assign(&target, &overrides);
    let events = Array::new();
    let collect = Function::new_with_args("e", "this.push(e)").bind0(&events);
    Reflect::set(&object, &"onEvent".into(), &collect).unwrap();
    let result = JsFuture::from(HotSwap::watch(manifest_url.to_string(), object.into())).await.map(JsHotSwap);
    Watched { result, events }
}

async fn watch(registry: &Registry, options: &str) -> Watched {
    watch_url(&registry.manifest_url(), options).await
}

impl Watched {
    fn hot_swap(&self) -> &JsHotSwap {
        self.result.as_ref().unwrap_or_else(|e| panic!("watch failed: {}", message_of(e)))
    }

    /// The code `HotSwap.watch` rejected with.
    fn refused(&self) -> Option<String> {
        self.result.as_ref().err().and_then(LoaderError::code_of)
    }

    fn version(&self) -> String {
        self.hot_swap().version()
    }

    fn event(&self, kind: &str) -> Option<JsValue> {
        self.events.iter().find(|e| field(e, "type") == kind)
    }

    /// `checkForUpdates()`.
    async fn check(&self) -> Result<JsValue, JsValue> {
        self.hot_swap().call_async("checkForUpdates", &[]).await
    }

    /// A check that must succeed: (action, running version, reason).
    async fn checked(&self) -> (String, String, String) {
        let check = self.check().await.unwrap_or_else(|e| panic!("check failed: {}", message_of(&e)));
        (field(&check, "action"), field(&check, "running"), field(&check, "reason"))
    }

    /// `registry`: the verified manifest, as the page sees it.
    fn view(&self) -> JsValue {
        self.hot_swap().get("registry")
    }

    /// A check must fail with `code`, and the running version must keep answering with its
    /// state unchanged. Returns the message.
    async fn assert_check_refused(&self, code: &str) -> String {
        let hot_swap = self.hot_swap();
        let (before, version) = (hot_swap.checksum(), self.version());
        let err = self.check().await.expect_err("the check should have been refused");
        assert_eq!(LoaderError::code_of(&err).as_deref(), Some(code), "wrong code for: {}", message_of(&err));
        assert_eq!(
            (self.version(), hot_swap.checksum()),
            (version, before),
            "the running version or its state changed"
        );
        let increment = hot_swap.export("increment");
        let count = call_i64(&increment);
        assert_eq!(call_i64(&increment), count + 1, "the running version no longer answers");
        message_of(&err)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Ok(hot_swap) = &self.result {
            hot_swap.free();
        }
    }
}

fn number(value: &JsValue, name: &str) -> f64 {
    Reflect::get(value, &name.into()).ok().and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
}

/// Wait (up to 10 s) until the slot runs `version`.
async fn until_running(w: &Watched, version: &str) {
    for _ in 0..200 {
        if w.version() == version {
            return;
        }
        sleep_ms(50).await;
    }
    panic!("still running {} instead of {version}", w.version());
}

// ---------- loading and following

#[wasm_bindgen_test]
async fn watch_loads_the_release_the_signed_manifest_names_and_swaps_to_a_patch_with_the_state() {
    let registry = Registry::new("follow");
    registry.publish(&manifest(1, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]), &[&key(1)]).await;
    let w = watch(&registry, "{}").await;
    assert_eq!(w.version(), "1.0.0");
    let increment = w.hot_swap().export("increment");
    call_i64(&increment);
    call_i64(&increment);
    let patch = release("wat-counter", "/guests/wat-counter.wasm", 1, &[]).await;
    let v2 = manifest(2, 3600, "1.0.2", vec![("1.0.0", counter_v1().await), ("1.0.2", patch)]);
    registry.publish(&v2, &[&key(1)]).await;
    let check = w.check().await.unwrap();
    assert_eq!(
        (field(&check, "action"), number(&check, "manifestVersion"), field(&check, "running")),
        ("swapped".into(), 2.0, "1.0.2".into())
    );
    assert_eq!(call_i64(&increment), 3, "the count travelled to the new version through the same reference");
    let view = w.view();
    let listed = Reflect::get(&view, &"versions".into()).unwrap().unchecked_into::<Array>().length();
    assert_eq!((number(&view, "manifestVersion"), field(&view, "current"), listed), (2.0, "1.0.2".into(), 2));
    assert_eq!(w.checked().await.0, "up-to-date");
    assert_eq!(number(&w.event("manifest").unwrap(), "manifestVersion"), 1.0);
}

#[wasm_bindgen_test]
async fn a_major_release_is_taken_when_it_migrates_the_running_schema_and_never_when_the_policy_says_so() {
    let v2 = release("counter-v2", "/guests/counter-v2.wasm", 2, &[1]).await;
    let listed = manifest(1, 3600, "2.0.0", vec![("1.0.0", counter_v1().await), ("2.0.0", v2.clone())]);
    let start = manifest(1, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]);

    let never = Registry::new("major-never");
    never.publish(&start, &[&key(1)]).await;
    let w = watch(&never, r#"{"majorUpdates":"never"}"#).await;
    never.publish(&Manifest { version: 2, ..listed.clone() }, &[&key(1)]).await;
    let (action, _, reason) = w.checked().await;
    assert_eq!((action.as_str(), reason.as_str(), w.version().as_str()), ("skipped", "major", "1.0.0"));
    let skipped = w.event("update-skipped").expect("an update-skipped event");
    assert_eq!((field(&skipped, "version"), field(&skipped, "reason")), ("2.0.0".into(), "major".into()));

    let no_path = Registry::new("major-no-path");
    no_path.publish(&start, &[&key(1)]).await;
    let w = watch(&no_path, "{}").await;
    let unconnected = Release { state_schema: 3, migrates_from: vec![2], ..v2.clone() };
    no_path.publish(&manifest(2, 3600, "3.0.0", vec![("3.0.0", unconnected)]), &[&key(1)]).await;
    assert_eq!(w.checked().await.2, "no-migration");

    let migrating = Registry::new("major-migrates");
    migrating.publish(&start, &[&key(1)]).await;
    let w = watch(&migrating, "{}").await;
    call_i64(&w.hot_swap().export("increment"));
    migrating.publish(&Manifest { version: 2, ..listed }, &[&key(1)]).await;
    assert_eq!(w.checked().await.0, "swapped");
    assert_eq!(w.version(), "2.0.0");
    assert_eq!(
        call_i64(&w.hot_swap().export("increment")),
        3,
        "the count of 1 migrated to schema 2 (which steps by 2)"
    );
}

// ---------- the TUF protections

#[wasm_bindgen_test]
async fn rollback_attack_an_older_manifest_is_refused_and_the_last_seen_version_outlives_the_watcher() {
    let registry = Registry::new("rollback");
    let old = manifest(4, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]);
    registry.publish(&manifest(5, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]), &[&key(1)]).await;
    let w = watch(&registry, "{}").await;
    registry.publish(&old, &[&key(1)]).await;
    let err = w.assert_check_refused("MANIFEST_ROLLBACK").await;
    assert!(err.contains("version 4 is older than version 5"), "{err}");
    drop(w);
    // A new watcher of the same manifest URL (as after a page reload) shares nothing with
    // the first but localStorage, and still refuses version 4.
    let again = watch(&registry, "{}").await;
    assert_eq!(again.refused().as_deref(), Some("MANIFEST_ROLLBACK"), "a reloaded page must refuse the older manifest");
}

#[wasm_bindgen_test]
async fn freeze_attack_an_expired_manifest_is_refused_and_reported_even_when_the_server_answers_304() {
    let expired = Registry::new("freeze");
    expired.publish(&manifest(1, -10, "1.0.0", vec![("1.0.0", counter_v1().await)]), &[&key(1)]).await;
    let w = watch(&expired, "{}").await;
    assert_eq!(w.refused().as_deref(), Some("MANIFEST_EXPIRED"));

    let stale = Registry::new("freeze-304");
    stale.publish(&manifest(1, 2, "1.0.0", vec![("1.0.0", counter_v1().await)]), &[&key(1)]).await;
    let w = watch(&stale, "{}").await;
    assert_eq!(w.version(), "1.0.0");
    sleep_ms(3000).await;
    w.assert_check_refused("MANIFEST_EXPIRED").await;
    assert!(stale.stat("notModified").await >= 1.0, "the server answered 304; the cached manifest had expired");
    let reported = w.event("error").expect("the refusal is reported as an event");
    assert_eq!(field(&reported, "code"), "MANIFEST_EXPIRED");
}

#[wasm_bindgen_test]
async fn mix_and_match_attack_a_module_other_than_the_listed_one_is_refused_and_not_retried() {
    let registry = Registry::new("mix");
    registry.publish(&manifest(1, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]), &[&key(1)]).await;
    let w = watch(&registry, "{}").await;
    call_i64(&w.hot_swap().export("increment"));
    // The listed 1.0.1 is the trapping build's digest; the server hands out another genuine
    // guest (a signed 1.0.2 from elsewhere) at its URL.
    let listed = release("counter-traps-after-swap", "/guests/wat-counter.wasm", 1, &[]).await;
    registry
        .publish(&manifest(2, 3600, "1.0.1", vec![("1.0.0", counter_v1().await), ("1.0.1", listed)]), &[&key(1)])
        .await;
    w.assert_check_refused("HASH_MISMATCH").await;
    let (action, _, reason) = w.checked().await;
    assert_eq!((action.as_str(), reason.as_str()), ("skipped", "failed-here"));
}

#[wasm_bindgen_test]
async fn endless_data_attack_manifest_and_module_downloads_stop_at_their_caps() {
    let w = watch_url(&format!("{}/endless", server()), r#"{"maxManifestBytes":65536}"#).await;
    let err = w.result.as_ref().err().expect("an endless manifest must be refused");
    assert_eq!(
        (w.refused().as_deref(), message_of(err).contains("65536")),
        (Some("MANIFEST_TOO_LARGE"), true),
        "{}",
        message_of(err)
    );

    let registry = Registry::new("endless-module");
    registry.publish(&manifest(1, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]), &[&key(1)]).await;
    let w = watch(&registry, "{}").await;
    // The listed size, not the loader's 32 MiB default, caps the download.
    let endless = Release { size: 40_000, url: format!("{}/endless", server()), ..counter_v1().await };
    let endless = Release { sha256: "00".repeat(32), ..endless };
    registry.publish(&manifest(2, 3600, "1.0.1", vec![("1.0.1", endless)]), &[&key(1)]).await;
    let err = w.assert_check_refused("MODULE_TOO_LARGE").await;
    assert!(err.contains("40000"), "{err}");
}

#[wasm_bindgen_test]
async fn wrong_software_a_module_whose_bytes_do_not_match_the_listed_hash_never_runs() {
    let registry = Registry::new("wrong-software");
    registry.publish(&manifest(1, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]), &[&key(1)]).await;
    let w = watch(&registry, "{}").await;
    let flipped = release("wat-counter", "/flipped/wat-counter.wasm", 1, &[]).await;
    registry.publish(&manifest(2, 3600, "1.0.2", vec![("1.0.2", flipped)]), &[&key(1)]).await;
    w.assert_check_refused("HASH_MISMATCH").await;
    let validated = w.events.iter().filter(|e| field(e, "type") == "validate").count();
    assert_eq!(validated, 1, "only the first load got past the hash check");
    assert!(w.event("commit").is_none(), "nothing was committed");
}

#[wasm_bindgen_test]
async fn arbitrary_installation_only_manifests_signed_by_enough_pinned_keys_are_trusted() {
    let v1 = manifest(1, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]);
    let untrusted = Registry::new("sig-untrusted");
    untrusted.publish(&v1, &[&key(9)]).await;
    let w = watch(&untrusted, "{}").await;
    assert_eq!(w.refused().as_deref(), Some("MANIFEST_SIGNATURE"), "signed by a key nobody pinned");

    // A valid signature over other bytes: the payload was edited after signing.
    let edited = Registry::new("sig-edited");
    let mut envelope = Envelope::parse(&seal(&v1, &[&key(1)])).unwrap();
    let evil =
        manifest(1, 3600, "1.0.2", vec![("1.0.2", release("wat-counter", "/guests/wat-counter.wasm", 1, &[]).await)]);
    envelope.payload = Envelope::seal(&evil, &[], |_, _| [0; 64]).payload;
    edited.put("manifest.json", &envelope.to_json()).await;
    let w = watch(&edited, "{}").await;
    assert_eq!(w.refused().as_deref(), Some("MANIFEST_SIGNATURE"), "edited payload");

    // 2-of-2: one signature is not enough, both are.
    let pins = format!(r#"{{"keys":["{}","{}"],"threshold":2}}"#, public_hex(&key(1)), public_hex(&key(2)));
    let one = Registry::new("sig-one-of-two");
    one.publish(&v1, &[&key(1), &key(1)]).await;
    let w = watch(&one, &pins).await;
    let err = w.result.as_ref().err().expect("one distinct signer of two required");
    assert_eq!(
        (w.refused().as_deref(), message_of(err).contains("1 trusted key(s), 2 required")),
        (Some("MANIFEST_SIGNATURE"), true),
        "{}",
        message_of(err)
    );
    let both = Registry::new("sig-two-of-two");
    both.publish(&v1, &[&key(2), &key(1)]).await;
    assert_eq!(watch(&both, &pins).await.version(), "1.0.0");
}

// ---------- fallback, polling, push

#[wasm_bindgen_test]
async fn the_fallback_guest_runs_when_the_registry_is_unreachable_and_is_replaced_once_it_verifies() {
    let fallback = format!(
        r#"{{"fallback":{{"url":"{}/guests/counter-v1.wasm","sha256":"{}"}}}}"#,
        server(),
        digest_of("counter-v1").await.to_hex()
    );
    let registry = Registry::new("fallback");
    let w = watch(&registry, &fallback).await;
    assert_eq!(w.version(), "1.0.0");
    let notice = w.event("fallback").expect("a fallback event says why");
    assert_eq!(field(&notice, "code"), "HTTP_STATUS");
    assert_eq!(Reflect::get(&w.view(), &"usingFallback".into()).unwrap(), JsValue::TRUE);
    call_i64(&w.hot_swap().export("increment"));
    let patch = release("wat-counter", "/guests/wat-counter.wasm", 1, &[]).await;
    registry.publish(&manifest(1, 3600, "1.0.2", vec![("1.0.2", patch)]), &[&key(1)]).await;
    assert_eq!(w.checked().await.0, "swapped");
    assert_eq!(Reflect::get(&w.view(), &"usingFallback".into()).unwrap(), JsValue::FALSE);
    assert_eq!(call_i64(&w.hot_swap().export("increment")), 2, "the fallback's state moved to the listed release");

    let forged = Registry::new("fallback-forged");
    forged.publish(&manifest(1, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]), &[&key(7)]).await;
    let w = watch(&forged, &fallback).await;
    assert_eq!(field(&w.event("fallback").unwrap(), "code"), "MANIFEST_SIGNATURE");
    assert_eq!(w.version(), "1.0.0");
}

#[wasm_bindgen_test]
async fn without_push_the_watcher_polls_with_if_none_match_and_backs_off_after_errors() {
    let registry = Registry::new("poll");
    registry.publish(&manifest(1, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]), &[&key(1)]).await;
    let w = watch(&registry, r#"{"pollIntervalMs":40,"maxBackoffMs":300}"#).await;
    sleep_ms(400).await;
    assert!(registry.stat("notModified").await >= 2.0, "unchanged manifests are answered 304");
    assert_eq!(registry.stat("full").await, 1.0, "only the first request downloaded the manifest");
    registry.put("fail/4", b"").await;
    let retries = || -> Vec<f64> {
        w.events.iter().filter(|e| field(e, "code") == "HTTP_STATUS").map(|e| number(&e, "retryMs")).collect()
    };
    for _ in 0..100 {
        if retries().len() >= 4 {
            break;
        }
        sleep_ms(50).await;
    }
    assert_eq!(retries(), [80.0, 160.0, 300.0, 300.0], "waits double from the poll interval up to maxBackoffMs");
    let patch = release("wat-counter", "/guests/wat-counter.wasm", 1, &[]).await;
    registry.publish(&manifest(2, 3600, "1.0.2", vec![("1.0.2", patch)]), &[&key(1)]).await;
    until_running(&w, "1.0.2").await;
}

#[wasm_bindgen_test]
async fn a_server_push_makes_the_page_update_without_waiting_for_the_next_poll() {
    let registry = Registry::new("push");
    registry.publish(&manifest(1, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]), &[&key(1)]).await;
    let push = format!(r#"{{"push":"{}/events"}}"#, registry.base);
    let w = watch(&registry, &push).await;
    let push_open = || Reflect::get(&w.view(), &"pushOpen".into()).unwrap() == JsValue::TRUE;
    for _ in 0..100 {
        if push_open() {
            break;
        }
        sleep_ms(50).await;
    }
    assert!(push_open(), "the push channel opened");
    let patch = release("wat-counter", "/guests/wat-counter.wasm", 1, &[]).await;
    registry.publish(&manifest(2, 3600, "1.0.2", vec![("1.0.2", patch)]), &[&key(1)]).await;
    // The poll interval is 10 minutes (100 while pushed): only the push can bring this.
    until_running(&w, "1.0.2").await;
    assert_eq!(registry.stat("full").await, 2.0);
}

#[wasm_bindgen_test]
async fn a_release_rolled_back_after_a_trap_is_skipped_but_releases_promoted_again_are_taken() {
    let registry = Registry::new("revisit");
    let v1 = counter_v1().await;
    let broken = release("counter-traps-after-swap", "/guests/counter-traps-after-swap.wasm", 1, &[]).await;
    let patch = release("wat-counter", "/guests/wat-counter.wasm", 1, &[]).await;
    let all = |current: &str, version| {
        manifest(
            version,
            3600,
            current,
            vec![("1.0.0", v1.clone()), ("1.0.1", broken.clone()), ("1.0.2", patch.clone())],
        )
    };
    registry.publish(&all("1.0.0", 1), &[&key(1)]).await;
    let w = watch(&registry, "{}").await;
    registry.publish(&all("1.0.1", 2), &[&key(1)]).await;
    assert_eq!(w.checked().await.0, "swapped");
    let trap = w.hot_swap().export("increment").call0(&JsValue::UNDEFINED).expect_err("1.0.1 traps on probation");
    assert_eq!(LoaderError::detail_of(&trap, "rolledBack").unwrap(), JsValue::TRUE);
    let (action, running, reason) = w.checked().await;
    assert_eq!((action.as_str(), reason.as_str(), running.as_str()), ("skipped", "failed-here", "1.0.0"));
    // The publisher moves on (1.0.2), goes back (1.0.0) and forward again (1.0.2): every
    // release that ran fine here is taken each time it is made current.
    for (version, current) in [(3, "1.0.2"), (4, "1.0.0"), (5, "1.0.2")] {
        registry.publish(&all(current, version), &[&key(1)]).await;
        let (action, running, _) = w.checked().await;
        assert_eq!((action.as_str(), running.as_str()), ("swapped", current), "manifest {version}");
    }
}

#[wasm_bindgen_test]
async fn a_digest_refused_for_wrong_bytes_is_tried_again_once_a_later_manifest_names_it_again() {
    let registry = Registry::new("refused-again");
    let v1 = counter_v1().await;
    registry.publish(&manifest(1, 3600, "1.0.0", vec![("1.0.0", v1.clone())]), &[&key(1)]).await;
    let w = watch(&registry, "{}").await;
    let flipped = release("wat-counter", "/flipped/wat-counter.wasm", 1, &[]).await;
    registry
        .publish(&manifest(2, 3600, "1.0.2", vec![("1.0.0", v1.clone()), ("1.0.2", flipped.clone())]), &[&key(1)])
        .await;
    w.assert_check_refused("HASH_MISMATCH").await;
    let (action, _, reason) = w.checked().await;
    assert_eq!((action.as_str(), reason.as_str()), ("skipped", "failed-here"), "not retried under the same manifest");
    // The module is repaired where it is served, and the publisher names 1.0.2 again.
    let repaired = Release { url: format!("{}/guests/wat-counter.wasm", server()), ..flipped };
    registry.publish(&manifest(3, 3600, "1.0.2", vec![("1.0.0", v1), ("1.0.2", repaired)]), &[&key(1)]).await;
    assert_eq!(w.checked().await.0, "swapped");
    assert_eq!(w.version(), "1.0.2");
}

/// A manifest for the demo's `editor` guest.
fn editor_manifest(version: u64, current: &str, releases: Vec<(&str, Release)>) -> Manifest {
    let mut m = manifest(version, 3600, current, releases);
    let releases = m.guests.remove("counter").unwrap();
    m.guests.insert("editor".into(), releases);
    m
}

/// `call("edit", …)`: insert `text` at the start; the change made.
fn edit(w: &Watched, text: &str) -> Result<JsValue, JsValue> {
    let request = format!(r#"{{"pos":0,"del":0,"ins":{text:?}}}"#);
    w.hot_swap().call("call", &["edit".into(), js_sys::Uint8Array::from(request.as_bytes()).into()])
}

fn text(w: &Watched) -> String {
    w.hot_swap().call("callString", &["text".into(), "".into()]).unwrap().as_string().unwrap()
}

#[wasm_bindgen_test]
async fn a_page_whose_first_release_fails_runs_the_bundled_or_last_good_release_and_loses_no_edit() {
    let good = release("editor-2.0.0", "/guests/editor-2.0.0.wasm", 2, &[1]).await;
    let broken = release("editor-2.1.0", "/guests/editor-2.1.0.wasm", 2, &[1]).await;
    let listed =
        |version, current| editor_manifest(version, current, vec![("2.0.0", good.clone()), ("2.1.0", broken.clone())]);
    let options = format!(
        r#"{{"guest":"editor","autoRollbackCalls":3,"fallback":{{"url":"{}/guests/editor-1.0.0.wasm","sha256":"{}"}}}}"#,
        server(),
        digest_of("editor-1.0.0").await.to_hex()
    );
    let registry = Registry::new("first-fails");
    registry.publish(&listed(1, "2.1.0"), &[&key(1)]).await;

    // Nothing has run fine on this origin yet: the page starts on its bundled editor and
    // takes 2.1.0 on probation; its first edit traps and rolls back, and the edit is made.
    let w = watch(&registry, &options).await;
    assert_eq!((w.version(), field(&w.hot_swap().get("previous"), "version")), ("2.1.0".into(), "1.0.0".into()));
    let trap = edit(&w, "a").expect_err("2.1.0 traps on every edit");
    assert_eq!(LoaderError::detail_of(&trap, "rolledBack").unwrap(), JsValue::TRUE, "{}", message_of(&trap));
    assert_eq!(w.version(), "1.0.0");
    edit(&w, "a").expect("the bundled editor takes the edit");
    assert_eq!(text(&w), "a");
    let (action, running, reason) = w.checked().await;
    assert_eq!((action.as_str(), running.as_str(), reason.as_str()), ("skipped", "1.0.0", "failed-here"));
    drop(w);

    // 2.0.0 runs fine here: past its probation, it is this origin's last good release.
    registry.publish(&listed(2, "2.0.0"), &[&key(1)]).await;
    let w = watch(&registry, &options).await;
    assert_eq!(w.version(), "2.0.0");
    for _ in 0..4 {
        text(&w);
    }
    sleep_ms(50).await;
    drop(w);

    // A page opened once 2.1.0 is current again starts on 2.0.0 and falls back to it.
    registry.publish(&listed(3, "2.1.0"), &[&key(1)]).await;
    let w = watch(&registry, &options).await;
    assert_eq!((w.version(), field(&w.hot_swap().get("previous"), "version")), ("2.1.0".into(), "2.0.0".into()));
    assert!(edit(&w, "b").is_err());
    assert_eq!(w.version(), "2.0.0");
    edit(&w, "b").expect("2.0.0 takes the edit");
    assert_eq!(text(&w), "b");
}

#[wasm_bindgen_test]
async fn a_manifest_that_is_not_an_envelope_is_refused_as_invalid() {
    let registry = Registry::new("garbage");
    registry.put("manifest.json", b"<html>maintenance</html>").await;
    let w = watch(&registry, "{}").await;
    assert_eq!(w.refused().as_deref(), Some("MANIFEST_INVALID"));
    registry.put("manifest.json", br#"{"payload":"e30=","signatures":[],"extra":1}"#).await;
    let w = watch(&registry, "{}").await;
    assert_eq!(w.refused().as_deref(), Some("MANIFEST_INVALID"), "unknown envelope fields are refused");
}

#[wasm_bindgen_test]
async fn freeing_a_watched_hotswap_without_dispose_stops_polling_closes_the_push_channel_and_the_guest() {
    let registry = Registry::new("free");
    registry.publish(&manifest(1, 3600, "1.0.0", vec![("1.0.0", counter_v1().await)]), &[&key(1)]).await;
    let push = format!(r#"{{"push":"{}/events","pollIntervalMs":40,"maxBackoffMs":40}}"#, registry.base);
    let w = watch(&registry, &push).await;
    let increment = w.hot_swap().export("increment");
    call_i64(&increment);
    for _ in 0..100 {
        if registry.stat("listeners").await >= 1.0 {
            break;
        }
        sleep_ms(20).await;
    }
    assert_eq!(registry.stat("listeners").await, 1.0, "the push channel is open");
    // Make the watcher poll busily (40 ms while the push channel is open means 400 ms; the
    // 503s make it retry every 40 ms), so a watcher left running would show in the stats.
    registry.put("fail/1000", b"").await;
    sleep_ms(200).await;
    w.hot_swap().free();
    sleep_ms(100).await;
    let requests = registry.stat("failed").await + registry.stat("notModified").await + registry.stat("full").await;
    sleep_ms(500).await;
    let later = registry.stat("failed").await + registry.stat("notModified").await + registry.stat("full").await;
    assert_eq!(later, requests, "no request after free()");
    assert_eq!(registry.stat("listeners").await, 0.0, "the push channel was closed");
    let err = increment.call0(&JsValue::UNDEFINED).expect_err("the guest no longer runs");
    assert_eq!(LoaderError::code_of(&err).as_deref(), Some("DISPOSED"));
    std::mem::forget(w);
}

/// The shared corpus (`tests/manifests/corpus.json`, also run through `hotswap verify` by
/// `cli/tests/manifest_corpus.rs`): the verdict a page reaches with WebCrypto on each signed
/// manifest. An accepted manifest goes on to its listed release, the smallest module, which
/// the loader then refuses as a module (not a manifest); the `manifest` event shows it was
/// accepted, with its version.
#[wasm_bindgen_test]
async fn a_page_reaches_the_corpus_verdict_on_every_manifest_the_cli_checks() {
    let corpus = js_sys::JSON::parse(include_str!("../../tests/manifests/corpus.json")).unwrap();
    let module = hex::decode(field(&Reflect::get(&corpus, &"module".into()).unwrap(), "hex")).unwrap();
    let module_path = field(&Reflect::get(&corpus, &"module".into()).unwrap(), "path");
    let keys = Reflect::get(&corpus, &"keys".into()).unwrap();
    let cases: Array = Reflect::get(&corpus, &"cases".into()).unwrap().unchecked_into();
    let mut wrong = Vec::new();
    for case in cases.iter() {
        let (name, expect) = (field(&case, "name"), field(&case, "expect"));
        let registry = Registry::new("corpus");
        registry.put(&module_path, &module).await;
        let mut manifest = field(&case, "manifest").into_bytes();
        if let Some(pad) = Reflect::get(&case, &"padTo".into()).unwrap().as_f64() {
            manifest.resize(pad as usize, b' ');
        }
        registry.put("manifest.json", &manifest).await;
        let min_version = Reflect::get(&case, &"minVersion".into()).unwrap().as_f64();
        if let Some(seen) = min_version {
            let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
            let key = format!("wasm-hotswap:manifest-version:{}", registry.manifest_url());
            storage.set_item(&key, &seen.to_string()).unwrap();
        }
        let pins: Array = Reflect::get(&case, &"pins".into()).unwrap().unchecked_into();
        let pinned: Vec<String> = pins.iter().map(|k| field(&keys, &k.as_string().unwrap())).collect();
        let threshold = Reflect::get(&case, &"threshold".into()).unwrap().as_f64().unwrap();
        let options = format!(r#"{{"keys":{pinned:?},"threshold":{threshold}}}"#);
        let w = watch(&registry, &options).await;
        let code = w.refused().unwrap_or_else(|| "none: the module was accepted".into());
        let verdict = match code.starts_with("MANIFEST_") {
            true => code.clone(),
            false => {
                let announced = w.event("manifest").map(|e| number(&e, "manifestVersion"));
                match (announced, min_version) {
                    (Some(7.0), _) | (None, Some(_)) => "accept".into(),
                    _ => format!("{code} without a manifest event"),
                }
            }
        };
        if verdict != expect {
            wrong.push(format!("{name}: expected {expect}, got {verdict}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
