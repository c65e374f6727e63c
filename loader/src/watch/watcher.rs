//! The watcher: loads the release the verified manifest names as current (or the app's
//! fallback guest when the registry cannot be reached or trusted), then checks the manifest
//! again whenever the server pushes a hint (Server-Sent Events) and, as a fallback, by
//! polling with `If-None-Match`, backing off after errors. Each check runs the trust stage,
//! then the update policy, then an ordinary queued swap with the listed digest and size as
//! the module's hash and byte cap.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::{Rc, Weak};

use hotswap_registry::{Manifest, Release};
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::EventSource;

use super::events::{CheckAction, ListedRelease, RegistryView, UpdateCheck, WatchEvent};
use super::options::WatchConfig;
use super::policy::{decide, Decision, SkipReason};
use super::trust::{fetch_manifest, unix_now, verify_manifest, Fetched, SeenVersion};
use crate::digest::Digest;
use crate::error::{js_message, LoaderError};
use crate::events::Event;
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
    /// Digests that failed here or were rolled back from: never tried again.
    failed: HashSet<String>,
    /// The digest this watcher last swapped to; if something else runs at the next check,
    /// it was rolled back (a trap, or the app), and counts as failed.
    swapped_to: Option<String>,
    /// (digest, reason) already announced by an `update-skipped` event.
    skipped: HashSet<(String, &'static str)>,
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
}

impl Watcher {
    /// Load the current release (or the fallback) into the empty `slot`, then keep watching.
    pub(crate) async fn start(slot: Rc<Slot>, options: WatchConfig) -> Result<Rc<Watcher>, LoaderError> {
        let watcher = Rc::new(Watcher {
            seen: SeenVersion::new(&options.manifest_url),
            slot,
            options,
            state: RefCell::default(),
            turns: OpQueue::default(),
            stopped: Cell::new(false),
            wake: RefCell::default(),
            push: RefCell::default(),
            push_open: Cell::new(false),
        });
        if let Err(e) = watcher.load_listed().await {
            watcher.load_fallback(e).await?;
        }
        watcher.open_push();
        spawn_local(watcher.clone().run());
        Ok(watcher)
    }

    async fn load_listed(&self) -> Result<(), LoaderError> {
        let _turn = self.turns.enter().await;
        let manifest = self.refresh().await?;
        let (_, release) = manifest.release(&self.options.guest, None)?;
        self.slot.load_first(self.source_of(release)?).await?;
        Ok(())
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
        self.note_rollback(&running);
        let decision = decide(&running, listed, release, &self.state.borrow().failed, self.options.major);
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
                self.announce_skip(listed, &release.sha256, reason);
                Ok(outcome(CheckAction::Skipped, Some(reason), &running))
            }
            Decision::Update => {
                let info = self.swap_to(release).await?;
                Ok(outcome(CheckAction::Swapped, None, &info))
            }
        }
    }

    /// Swap to a listed release. A failure marks it failed, unless it was the network's
    /// (then the next check tries again).
    async fn swap_to(&self, release: &Release) -> Result<VersionInfo, LoaderError> {
        let result = self.slot.swap(self.source_of(release)?).await;
        let mut state = self.state.borrow_mut();
        match &result {
            Ok(_) => {
                state.using_fallback = false;
                state.swapped_to = Some(release.sha256.clone());
            }
            Err(
                LoaderError::FetchFailed { .. } | LoaderError::HttpStatus { .. } | LoaderError::BodyIncomplete { .. },
            ) => {}
            Err(_) => {
                state.failed.insert(release.sha256.clone());
            }
        }
        result
    }

    /// If the version last swapped to no longer runs, it was rolled back from.
    fn note_rollback(&self, running: &VersionInfo) {
        let mut state = self.state.borrow_mut();
        if let Some(left) = state.swapped_to.take_if(|s| *s != running.sha256) {
            state.failed.insert(left);
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

    fn announce_skip(&self, version: &str, sha256: &str, reason: SkipReason) {
        if !self.state.borrow_mut().skipped.insert((sha256.to_string(), reason.as_str())) {
            return;
        }
        self.slot.emit(&WatchEvent::UpdateSkipped { version: version.to_string(), reason });
    }

    /// An `error` event for a failed check (swap failures are reported by the slot).
    fn report(&self, e: &LoaderError) {
        let failures = self.state.borrow().failures + 1;
        let version = self.slot.current().ok().map(|c| c.version);
        let retry_ms = Some(self.delay_after(failures));
        self.slot.emit(&Event::Error { version, code: e.code().into(), message: e.to_string(), retry_ms });
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
            let set_timeout =
                Reflect::get(&js_sys::global(), &"setTimeout".into()).ok().and_then(|f| f.dyn_into::<Function>().ok());
            if let Some(set_timeout) = set_timeout {
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
