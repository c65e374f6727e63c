//! The watcher: loads the release the verified manifest names as current (or the app's
//! fallback guest when the registry cannot be reached or trusted), then checks the manifest
//! again whenever the server pushes a hint (Server-Sent Events) and, as a fallback, by
//! polling with `If-None-Match`, backing off after errors. Each check runs the trust stage,
//! then the update policy, then an ordinary queued swap with the listed digest and size as
//! the module's hash and byte cap.
//!
//! A release that has not yet run fine on this origin is never the first version a page
//! loads: the page starts on the last good listed release (or the app's fallback) and swaps
//! to it, so if it fails at once it is on probation and rolls back, and a later trap still
//! has a version to go back to. Releases that passed probation are remembered per manifest
//! URL in `localStorage`. A release that failed here is skipped until a later manifest names
//! it as current again; if its bytes were wrong, it is then fetched past the browser cache.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::{Rc, Weak};

use hotswap_registry::{Manifest, Release};
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::EventSource;

use super::events::{CheckAction, ListedRelease, RegistryView, UpdateCheck, WatchEvent};
use super::options::WatchConfig;
use super::policy::{decide, last_good, Decision, SkipReason};
use super::trust::{fetch_manifest, unix_now, verify_manifest, Fetched, SeenVersion};
use crate::digest::Digest;
use crate::error::{js_message, LoaderError};
use crate::options::{ModuleSource, Origin};
use crate::queue::OpQueue;
use crate::slot::Slot;
use crate::version::VersionInfo;

/// While a push channel is open, polling only guards against a silently dead connection.
const POLL_FACTOR_WHILE_PUSHED: f64 = 10.0;

#[derive(Debug, Default)]
struct WatchState {
    etag: Option<String>,
    manifest: Option<Manifest>,
    /// Digests that failed here or were rolled back from, with the manifest version then:
    /// not tried again until a later manifest names them as current again.
    failed: HashMap<String, u64>,
    /// Digests whose bytes arrived wrong: fetched past the HTTP cache when tried again.
    refetch: HashSet<String>,
    /// The digest this watcher last swapped to; if something else runs at the next check,
    /// it was rolled back (a trap, or the app), and counts as failed.
    swapped_to: Option<String>,
    /// (digest, reason, manifest version) already announced by an `update-skipped` event.
    skipped: HashSet<(String, &'static str, u64)>,
    failures: u32,
    using_fallback: bool,
}

/// The push channel and the handlers it calls (dropped with it).
#[derive(Debug)]
struct Push {
    source: EventSource,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

/// Follows a registry for one slot.
#[derive(Debug)]
pub(crate) struct Watcher {
    slot: Rc<Slot>,
    options: WatchConfig,
    seen: SeenVersion,
    state: RefCell<WatchState>,
    turns: OpQueue,
    stopped: Cell<bool>,
    wake: RefCell<Option<Function>>,
    push: RefCell<Option<Push>>,
    push_open: Cell<bool>,
    good: GoodReleases,
    /// The slot listener that records releases passing probation.
    listener: RefCell<Option<Listener>>,
}

/// A slot event listener: its id, and the closure the slot calls (dropped after `off`).
type Listener = (u32, Closure<dyn FnMut(JsValue)>);

/// The digests of releases that passed probation on this origin, per manifest URL, kept in
/// `localStorage` (newest last, at most [`GoodReleases::KEEP`]).
#[derive(Debug)]
struct GoodReleases {
    key: String,
}

impl GoodReleases {
    const KEEP: usize = 16;

    fn new(manifest_url: &str) -> Self {
        Self { key: format!("wasm-hotswap:good:{manifest_url}") }
    }

    fn storage() -> Option<web_sys::Storage> {
        Reflect::get(&js_sys::global(), &"localStorage".into()).ok()?.dyn_into().ok()
    }

    fn get(&self) -> Vec<String> {
        let stored = Self::storage().and_then(|s| s.get_item(&self.key).ok().flatten()).unwrap_or_default();
        stored.split(',').filter(|d| Digest::from_hex(d).is_some()).map(str::to_string).collect()
    }

    fn add(&self, sha256: &str) {
        let mut good = self.get();
        good.retain(|d| d != sha256);
        good.push(sha256.to_string());
        let start = good.len().saturating_sub(Self::KEEP);
        if let Some(storage) = Self::storage() {
            // Storage full or denied: the page only loses the faster start.
            let _ = storage.set_item(&self.key, &good[start..].join(","));
        }
    }
}

impl Watcher {
    /// Load the current release (or the fallback) into the empty `slot`, then keep watching.
    pub(crate) async fn start(slot: Rc<Slot>, options: WatchConfig) -> Result<Rc<Watcher>, LoaderError> {
        let watcher = Rc::new(Watcher {
            seen: SeenVersion::new(&options.manifest_url),
            good: GoodReleases::new(&options.manifest_url),
            listener: RefCell::default(),
            slot,
            options,
            state: RefCell::default(),
            turns: OpQueue::default(),
            stopped: Cell::new(false),
            wake: RefCell::default(),
            push: RefCell::default(),
            push_open: Cell::new(false),
        });
        watcher.listen();
        if let Err(e) = watcher.load_listed().await {
            if let Err(e) = watcher.load_fallback(e).await {
                watcher.stop();
                return Err(e);
            }
        }
        watcher.open_push();
        spawn_local(watcher.clone().run());
        Ok(watcher)
    }

    async fn load_listed(&self) -> Result<(), LoaderError> {
        let _turn = self.turns.enter().await;
        let manifest = self.refresh().await?;
        let (listed, release) = manifest.release(&self.options.guest, None)?;
        let current = self.source_of(release)?;
        if let Some((base, is_fallback)) = self.base_for(&manifest, release) {
            if self.slot.load_first(base).await.is_ok() {
                self.state.borrow_mut().using_fallback = is_fallback;
                let running = self.slot.current()?;
                match decide(&running, listed, release, &HashSet::new(), self.options.major) {
                    // A failure is reported by the slot's error event and marks the release
                    // failed; the page keeps running the base.
                    Decision::Update => drop(self.swap_to(release, manifest.version).await),
                    Decision::Skip(reason) => self.announce_skip(listed, &release.sha256, reason, manifest.version),
                    Decision::UpToDate => {}
                }
                return Ok(());
            }
        }
        self.slot.load_first(current).await?;
        Ok(())
    }

    /// What to load before `current`, unless it has run fine here already: the last good
    /// listed release, or else the fallback (`true`).
    fn base_for(&self, manifest: &Manifest, current: &Release) -> Option<(ModuleSource, bool)> {
        let good = self.good.get();
        if good.contains(&current.sha256) {
            return None;
        }
        let releases = manifest.guests.get(&self.options.guest)?;
        if let Some((_, release)) = last_good(releases, &current.sha256, &good) {
            return self.source_of(release).ok().map(|source| (source, false));
        }
        let fallback = self.options.fallback.as_ref()?;
        (fallback.sha256.to_hex() != current.sha256).then(|| (fallback.clone(), true))
    }

    /// Record releases that pass probation (after the call that passed it returns).
    fn listen(self: &Rc<Self>) {
        let me = Rc::downgrade(self);
        let closure = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let kind = Reflect::get(&event, &"type".into()).ok().and_then(|t| t.as_string());
            if kind.as_deref() != Some("probation-passed") {
                return;
            }
            let me = me.clone();
            spawn_local(async move {
                if let Some(watcher) = me.upgrade() {
                    if let (false, Ok(running)) = (watcher.slot.on_probation(), watcher.slot.current()) {
                        watcher.good.add(&running.sha256);
                    }
                }
            });
        });
        // A disposed slot has no events to hear.
        if let Ok(id) = self.slot.on(closure.as_ref().unchecked_ref::<Function>().clone()) {
            *self.listener.borrow_mut() = Some((id, closure));
        }
    }

    async fn load_fallback(&self, why: LoaderError) -> Result<(), LoaderError> {
        let Some(fallback) = &self.options.fallback else { return Err(why) };
        self.slot.emit(&WatchEvent::Fallback { code: why.code().into(), message: why.to_string() });
        self.slot.load_first(fallback.clone()).await?;
        self.state.borrow_mut().using_fallback = true;
        Ok(())
    }

    /// Check the registry now. Checks (and the loop's) run one at a time.
    pub(crate) async fn check(&self) -> Result<UpdateCheck, LoaderError> {
        let _turn = self.turns.enter().await;
        let result = self.check_now().await;
        let mut state = self.state.borrow_mut();
        match &result {
            Ok(_) => state.failures = 0,
            Err(_) => state.failures += 1,
        }
        drop(state);
        result
    }

    async fn check_now(&self) -> Result<UpdateCheck, LoaderError> {
        let manifest = self.refresh().await.inspect_err(|e| self.report(e))?;
        let (listed, release) =
            manifest.release(&self.options.guest, None).inspect_err(|e| self.report(&e.clone().into()))?;
        let running = self.slot.current()?;
        self.note_rollback(&running, manifest.version);
        let failed: HashSet<String> = {
            let mut state = self.state.borrow_mut();
            // A failure holds until a later manifest names the release as current again.
            state.failed.retain(|_, at| *at >= manifest.version);
            state.failed.keys().cloned().collect()
        };
        let decision = decide(&running, listed, release, &failed, self.options.major);
        let outcome = |action, reason: Option<SkipReason>, running: &VersionInfo| UpdateCheck {
            manifest_version: manifest.version,
            listed: listed.to_string(),
            running: running.version.clone(),
            action,
            reason,
        };
        match decision {
            Decision::UpToDate => Ok(outcome(CheckAction::UpToDate, None, &running)),
            Decision::Skip(reason) => {
                self.announce_skip(listed, &release.sha256, reason, manifest.version);
                Ok(outcome(CheckAction::Skipped, Some(reason), &running))
            }
            Decision::Update => {
                let info = self.swap_to(release, manifest.version).await?;
                Ok(outcome(CheckAction::Swapped, None, &info))
            }
        }
    }

    /// Swap to a listed release (named current by manifest `manifest_version`). A failure
    /// marks it failed, unless it was the network's (then the next check tries again).
    async fn swap_to(&self, release: &Release, manifest_version: u64) -> Result<VersionInfo, LoaderError> {
        let mut source = self.source_of(release)?;
        if self.state.borrow_mut().refetch.remove(&release.sha256) {
            if let Origin::Url(url) = &mut source.origin {
                // Another URL for the same bytes: the HTTP cache cannot answer with the bad ones.
                let separator = if url.contains('?') { '&' } else { '?' };
                url.push_str(&format!("{separator}refetch={manifest_version}"));
            }
        }
        let result = self.slot.swap(source).await;
        let mut state = self.state.borrow_mut();
        match &result {
            Ok(_) => {
                state.using_fallback = false;
                state.swapped_to = Some(release.sha256.clone());
            }
            Err(
                LoaderError::FetchFailed { .. } | LoaderError::HttpStatus { .. } | LoaderError::BodyIncomplete { .. },
            ) => {}
            Err(e) => {
                if matches!(e.code(), "HASH_MISMATCH" | "MODULE_TOO_LARGE" | "NOT_WASM" | "COMPILE_FAILED") {
                    state.refetch.insert(release.sha256.clone());
                }
                state.failed.insert(release.sha256.clone(), manifest_version);
            }
        }
        result
    }

    /// If the version last swapped to no longer runs, it was rolled back from.
    fn note_rollback(&self, running: &VersionInfo, manifest_version: u64) {
        let mut state = self.state.borrow_mut();
        if let Some(left) = state.swapped_to.take_if(|s| *s != running.sha256) {
            state.failed.insert(left, manifest_version);
        }
    }

    /// The verified manifest: a new one from the registry, or the last one if unchanged
    /// (which must still not have expired).
    async fn refresh(&self) -> Result<Manifest, LoaderError> {
        let etag = self.state.borrow().etag.clone();
        let max = self.options.trust.max_manifest_bytes;
        let (bytes, etag) = match fetch_manifest(&self.options.manifest_url, etag.as_deref(), max).await? {
            Fetched::Body { bytes, etag } => (bytes, etag),
            Fetched::NotModified => {
                let cached = self.state.borrow().manifest.clone();
                if let Some(manifest) = cached {
                    manifest.check_fresh(unix_now(), None)?;
                    return Ok(manifest);
                }
                // A 304 to a request without If-None-Match: ask again, unconditionally.
                self.state.borrow_mut().etag = None;
                return Err(LoaderError::HttpStatus { url: self.options.manifest_url.clone(), status: 304 });
            }
        };
        let seen = self.seen.get().max(self.state.borrow().manifest.as_ref().map(|m| m.version));
        let manifest = verify_manifest(&bytes, &self.options.trust, seen).await?;
        self.seen.raise_to(manifest.version);
        let is_new = seen != Some(manifest.version);
        let mut state = self.state.borrow_mut();
        state.etag = etag;
        state.manifest = Some(manifest.clone());
        drop(state);
        if is_new {
            let listed = manifest.guests.get(&self.options.guest).map(|g| g.current.as_str());
            self.slot.emit(&WatchEvent::Manifest {
                version: listed.map(str::to_string),
                manifest_version: manifest.version,
            });
        }
        Ok(manifest)
    }

    fn source_of(&self, release: &Release) -> Result<ModuleSource, LoaderError> {
        let url = web_sys::Url::new_with_base(&release.url, &self.options.manifest_url).map_err(|e| {
            hotswap_registry::RegistryError::Malformed {
                reason: format!("release url {:?}: {}", release.url, js_message(&e)),
            }
        })?;
        let sha256 = Digest::from_hex(&release.sha256).ok_or_else(|| hotswap_registry::RegistryError::Malformed {
            reason: format!("sha256 {:?}", release.sha256),
        })?;
        Ok(ModuleSource { origin: Origin::Url(url.href()), sha256, listed_size: Some(release.size) })
    }

    fn announce_skip(&self, version: &str, sha256: &str, reason: SkipReason, manifest_version: u64) {
        if !self.state.borrow_mut().skipped.insert((sha256.to_string(), reason.as_str(), manifest_version)) {
            return;
        }
        self.slot.emit(&WatchEvent::UpdateSkipped { version: version.to_string(), reason });
    }

    /// An `error` event for a failed check (swap failures are reported by the slot).
    fn report(&self, e: &LoaderError) {
        let failures = self.state.borrow().failures + 1;
        let retry_ms = Some(self.delay_after(failures));
        self.slot.emit(&self.slot.error_event(e, retry_ms));
    }

    /// The wait before the next check.
    fn next_delay(&self) -> f64 {
        self.delay_after(self.state.borrow().failures)
    }

    fn delay_after(&self, failures: u32) -> f64 {
        let poll = self.options.poll_ms;
        if failures > 0 {
            return (poll * 2f64.powi(failures.min(30) as i32)).min(self.options.max_backoff_ms.max(poll));
        }
        if self.push_open.get() {
            poll * POLL_FACTOR_WHILE_PUSHED
        } else {
            poll
        }
    }

    async fn run(self: Rc<Self>) {
        while !self.stopped.get() {
            self.sleep(self.next_delay()).await;
            if self.stopped.get() {
                break;
            }
            if let Err(LoaderError::Disposed {}) = self.check().await {
                break;
            }
        }
    }

    /// Wait `ms`, or until [`Watcher::wake`].
    async fn sleep(&self, ms: f64) {
        let mut install = |resolve: Function, _reject: Function| {
            if let Some(set_timeout) = crate::queue::global_fn("setTimeout") {
                let _ = set_timeout.call2(&JsValue::UNDEFINED, &resolve, &JsValue::from_f64(ms));
            }
            *self.wake.borrow_mut() = Some(resolve);
        };
        let _ = JsFuture::from(Promise::new(&mut install)).await;
    }

    /// End the current wait: check now.
    pub(crate) fn wake(&self) {
        if let Some(resolve) = self.wake.borrow_mut().take() {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    }

    /// Stop watching: no more checks, the push channel closed. The slot keeps running.
    pub(crate) fn stop(&self) {
        self.stopped.set(true);
        if let Some((id, closure)) = self.listener.borrow_mut().take() {
            self.slot.off(id);
            drop(closure);
        }
        if let Some(push) = self.push.borrow_mut().take() {
            push.source.close();
        }
        self.push_open.set(false);
        self.wake();
    }

    /// Open the push channel, if configured. A message means "check now"; when the channel
    /// opens (again) a check catches up on anything missed; when it breaks, polling resumes.
    fn open_push(self: &Rc<Self>) {
        let Some(url) = &self.options.push_url else { return };
        let Ok(source) = EventSource::new(url) else { return };
        let handler = |watcher: Weak<Watcher>, on: fn(&Watcher)| {
            Closure::<dyn FnMut(JsValue)>::new(move |_| {
                if let Some(w) = watcher.upgrade() {
                    on(&w)
                }
            })
        };
        let me = Rc::downgrade(self);
        let opened = handler(me.clone(), |w| {
            w.push_open.set(true);
            w.wake();
        });
        let message = handler(me.clone(), Watcher::wake);
        let broke = handler(me, |w| {
            if w.push_open.replace(false) {
                w.wake();
            }
        });
        source.set_onopen(Some(opened.as_ref().unchecked_ref()));
        source.set_onmessage(Some(message.as_ref().unchecked_ref()));
        source.set_onerror(Some(broke.as_ref().unchecked_ref()));
        *self.push.borrow_mut() = Some(Push { source, _handlers: vec![opened, message, broke] });
    }

    /// What the page may show of the registry.
    pub(crate) fn view(&self) -> RegistryView {
        let state = self.state.borrow();
        let guest = state.manifest.as_ref().and_then(|m| m.guests.get(&self.options.guest));
        RegistryView {
            manifest_url: self.options.manifest_url.clone(),
            manifest_version: state.manifest.as_ref().map(|m| m.version),
            expires: state.manifest.as_ref().map(|m| m.expires),
            current: guest.map(|g| g.current.clone()),
            versions: guest
                .map(|g| {
                    g.versions
                        .iter()
                        .map(|(version, r)| ListedRelease {
                            version: version.clone(),
                            sha256: r.sha256.clone(),
                            size: r.size,
                            state_schema: r.state_schema,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            using_fallback: state.using_fallback,
            push_open: self.push_open.get(),
        }
    }
}
