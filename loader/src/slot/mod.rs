//! A slot: one guest, its stable exports object, the previous version kept for rollback, and
//! the operations on them. The slot orchestrates the pipeline, whose stages live in their own
//! files: loading here, [`swap`] (fetch → validate → instantiate → pre-copy or reserve →
//! commit), [`back`] (rollback), and [`calls`], the path of a call into the guest (the guard,
//! traps during probation, bytes helpers). Plain Rust; `api.rs` is the JS facade over it.

mod back;
mod calls;
mod swap;

use std::cell::{OnceCell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Function, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::cache::ModuleCache;
use crate::commit::Snapshot;
use crate::error::LoaderError;
use crate::events::{Clock, Emitter, ErrorCode, ErrorValue, Event};
use crate::fetch::fetch_verified;
use crate::hasher::Hasher;
use crate::instance::GuestInstance;
use crate::js::ToJs;
use crate::options::{LoadOptions, ModuleSource, Signal, SwapOptions};
use crate::precopy::{Capture, Converter};
use crate::probation::Probation;
use crate::queue::{global_fn, OpQueue};
use crate::rollback::Previous;
use crate::shim::CallTable;
use crate::validate::validate;
use crate::version::{CompiledVersion, VersionInfo};

#[derive(Debug)]
struct State {
    current: Option<Rc<GuestInstance>>,
    previous: Option<Previous>,
    probation: Probation,
}

impl State {
    /// Replace what a rollback returns to; the instance the old `Previous` kept as its
    /// snapshot (pre-copy), for the caller to retire once no borrow is held.
    fn set_previous(&mut self, previous: Option<Previous>) -> Option<Rc<GuestInstance>> {
        match std::mem::replace(&mut self.previous, previous).and_then(|p| p.snapshot) {
            Some(Snapshot::Frozen(instance)) => Some(instance),
            _ => None,
        }
    }
}

/// A hot-swap slot: the plain-Rust core of `HotSwap`.
#[derive(Debug)]
pub struct Slot {
    options: LoadOptions,
    emitter: Rc<Emitter>,
    queue: OpQueue,
    state: RefCell<State>,
    table: RefCell<CallTable>,
    /// The pre-copy worker, started on the first swap that uses it; `Err` once it could not
    /// be (then swaps take the ABI 1.0 path).
    converter: RefCell<Option<Result<Rc<Converter>, ()>>>,
    /// [`Slot::dispose`] ran.
    disposed: std::cell::Cell<bool>,
    /// Aborted by [`Slot::dispose`]: stops the swap under way (its download, its wait for
    /// the pre-copy worker) rather than letting it run to its end or its stall timeout.
    disposal: Option<web_sys::AbortController>,
    /// A copy of the running guest's memory under way (pre-copy).
    capturing: RefCell<Option<Rc<Capture>>>,
    /// Versions compiled before, by digest.
    modules: ModuleCache,
    /// What the operation under way tries to run (for its `error` event).
    trying: RefCell<Option<Tried>>,
}

/// What a failed operation was trying to run.
#[derive(Clone, Debug, Default)]
struct Tried {
    sha256: Option<String>,
    version: Option<String>,
}

/// Why a guest call failed: a loader error, or an exception from JS code the guest called
/// (an app import), which is passed on unchanged.
#[derive(Debug)]
pub enum CallFailure {
    /// Typed.
    Loader(LoaderError),
    /// Thrown by JS.
    Js(JsValue),
}

impl From<LoaderError> for CallFailure {
    fn from(e: LoaderError) -> Self {
        Self::Loader(e)
    }
}

impl CallFailure {
    /// The value to throw to JS.
    pub fn into_js(self) -> JsValue {
        match self {
            Self::Loader(e) => e.to_js(),
            Self::Js(v) => v,
        }
    }
}

impl Slot {
    /// Load the first version of a guest.
    pub async fn load(source: ModuleSource, options: LoadOptions) -> Result<Rc<Slot>, LoaderError> {
        let slot = Self::new(options)?;
        slot.load_first(source).await?;
        Ok(slot)
    }

    /// An empty slot: nothing runs until [`Slot::load_first`] succeeds.
    pub(crate) fn new(options: LoadOptions) -> Result<Rc<Slot>, LoaderError> {
        let emitter = Rc::new(Emitter::default());
        if let Some(listener) = &options.on_event {
            emitter.add(listener.0.clone());
        }
        let cell: Rc<OnceCell<Weak<Slot>>> = Rc::default();
        let for_guard = cell.clone();
        let table = CallTable::new(Rc::new(move |slot_index, args| {
            let slot = for_guard.get().and_then(Weak::upgrade).ok_or_else(|| LoaderError::Disposed {}.to_js())?;
            slot.invoke(slot_index, &args).map_err(CallFailure::into_js)
        }))?;
        let probation = Probation::new(table.flag().clone());
        let state = RefCell::new(State { current: None, previous: None, probation });
        let modules = ModuleCache::new(options.limits.cached_modules as usize);
        let slot = Rc::new(Slot {
            modules,
            trying: RefCell::default(),
            options,
            emitter,
            queue: OpQueue::default(),
            state,
            table: RefCell::new(table),
            converter: RefCell::default(),
            disposed: std::cell::Cell::default(),
            disposal: web_sys::AbortController::new().ok(),
            capturing: RefCell::default(),
        });
        let _ = cell.set(Rc::downgrade(&slot));
        Ok(slot)
    }

    /// Load the first version into an empty slot. On failure the slot stays empty, so another
    /// source can be tried (the watcher's fallback).
    pub(crate) async fn load_first(&self, source: ModuleSource) -> Result<VersionInfo, LoaderError> {
        let _turn = self.queue.enter().await;
        self.trying(Some(source.sha256.to_hex()), None);
        let result = self.load_now(source).await;
        match &result {
            Ok(_) => Hasher::start_in_background(),
            Err(e) => self.emit_error(e),
        }
        self.trying.take();
        result
    }

    async fn load_now(&self, source: ModuleSource) -> Result<VersionInfo, LoaderError> {
        if self.state.borrow().current.is_some() {
            return Err(LoaderError::Internal { what: "load into a slot that already runs a version".into() });
        }
        let compiled = self.fetch_version(source, None).await?;
        // The shims compile while the guest instantiates.
        let shims = self.table.borrow().prepare(&compiled.interface.user_exports)?;
        let instance = self.instantiate(&compiled).await?;
        let shims = shims.finish().await?;
        let mut table = self.table.try_borrow_mut().map_err(|_| LoaderError::Reentrant {})?;
        table.adopt(shims);
        table.bind(&instance);
        drop(table);
        self.state.borrow_mut().current = Some(Rc::new(instance));
        Ok(compiled.info())
    }

    /// The stable exports object.
    pub fn exports(&self) -> Object {
        self.table.borrow().exports()
    }

    /// The JS object that owns this slot (the app's `HotSwap`): its exports object keeps it
    /// alive, so that garbage collection never frees a `HotSwap` whose exports are in use.
    pub(crate) fn set_owner(&self, owner: &Object) {
        if let Ok(mut table) = self.table.try_borrow_mut() {
            table.set_owner(owner);
        }
    }

    /// Add an event listener; returns its id for [`Slot::off`].
    pub fn on(&self, listener: Function) -> Result<u32, LoaderError> {
        if self.is_disposed() {
            return Err(LoaderError::Disposed {});
        }
        Ok(self.emitter.add(listener))
    }

    /// Whether [`Slot::dispose`] ran.
    fn is_disposed(&self) -> bool {
        self.disposed.get()
    }

    /// `options` for a swap or rollback that also stops when this slot is disposed: its signal
    /// becomes the app's and the disposal's together. Where the browser has no
    /// `AbortSignal.any` (before Chrome 116, Firefox 124, Safari 17.4), an app's signal stays
    /// alone; a disposal then shows once the download ends or stalls.
    pub(super) fn following_disposal(&self, mut options: SwapOptions) -> SwapOptions {
        let Some(disposal) = self.disposal.as_ref().map(|c| c.signal()) else { return options };
        let signal = match options.abort_signal() {
            None => disposal,
            Some(app) => {
                let both: js_sys::Array = [JsValue::from(app.clone()), disposal.into()].into_iter().collect();
                let combined = global_fn("AbortSignal").and_then(|class| {
                    let any: Function = Reflect::get(&class, &"any".into()).ok()?.dyn_into().ok()?;
                    any.call1(&class, &both).ok()?.dyn_into().ok()
                });
                combined.unwrap_or_else(|| app.clone())
            }
        };
        options.signal = Some(Signal(signal));
        options
    }

    /// `e`, or `DISPOSED` if the slot was disposed meanwhile: that is why it failed (a
    /// download cut short, an abort, a retired guest refusing the call).
    fn unless_disposed(&self, e: LoaderError) -> LoaderError {
        if self.is_disposed() {
            LoaderError::Disposed {}
        } else {
            e
        }
    }

    /// Remove an event listener.
    pub fn off(&self, id: u32) {
        self.emitter.remove(id)
    }

    /// The running version.
    pub fn current(&self) -> Result<VersionInfo, LoaderError> {
        Ok(self.current_instance()?.compiled.info())
    }

    /// The version a rollback would return to.
    pub fn previous(&self) -> Option<VersionInfo> {
        self.state.borrow().previous.as_ref().map(|p| p.compiled.info())
    }

    /// Is a new version still on probation?
    pub fn on_probation(&self) -> bool {
        self.state.borrow().probation.is_on()
    }

    fn current_instance(&self) -> Result<Rc<GuestInstance>, LoaderError> {
        let state = self.state.try_borrow().map_err(|_| LoaderError::Reentrant {})?;
        state.current.clone().ok_or(LoaderError::Disposed {})
    }

    /// Drop every instance and listener; later calls fail with `DISPOSED`.
    pub fn dispose(&self) -> Result<(), LoaderError> {
        // Inside the pause (a host import called from a guest's state load) the table is
        // being rebound: disposing there would be undone by the commit.
        self.table.try_borrow().map_err(|_| LoaderError::Reentrant {})?.unbind();
        self.disposed.set(true);
        if let Some(disposal) = &self.disposal {
            disposal.abort_with_reason(&"the HotSwap was disposed".into());
        }
        let (running, frozen) = {
            let mut state = self.state.borrow_mut();
            let frozen = state.set_previous(None);
            drop(state.probation.end());
            (state.current.take(), frozen)
        };
        for instance in running.into_iter().chain(frozen) {
            self.retire(instance);
        }
        self.converter.take();
        self.modules.clear();
        self.emitter.clear();
        Ok(())
    }

    /// Stages 1–2: the module, fetched, verified and validated — or taken from the cache when
    /// bytes of its digest were compiled before. `signal` (a swap's) aborts the download.
    async fn fetch_version(
        &self,
        source: ModuleSource,
        signal: Option<&web_sys::AbortSignal>,
    ) -> Result<CompiledVersion, LoaderError> {
        if let Some(hit) = self.modules.get(&source.sha256) {
            self.trying(None, Some(hit.version.version()));
            source.origin.discard();
            self.emit(&Event::Fetch { duration_ms: 0.0, bytes: hit.bytes, cached: true });
            return Ok(hit.version);
        }
        let cap = self.options.limits.max_module_bytes.min(source.listed_size.unwrap_or(u64::MAX));
        let fetched = fetch_verified(source, cap, signal, self.options.limits.stall_timeout_ms).await?;
        let bytes = fetched.bytes;
        self.emit(&Event::Fetch { duration_ms: fetched.fetch_ms, bytes, cached: false });
        self.emit(&Event::Compile { duration_ms: fetched.compile_ms });
        self.emit(&Event::Verify { duration_ms: fetched.verify_ms, hashed_on: fetched.hashed_on });
        let clock = Clock::start();
        self.trying(None, Some(fetched.interface.metadata.version.to_string()));
        let compiled = validate(fetched, &self.options)?;
        self.emit(&Event::Validate { version: compiled.version(), duration_ms: clock.elapsed() });
        self.modules.put(&compiled, bytes);
        Ok(compiled)
    }

    /// Stage 3.
    async fn instantiate(&self, compiled: &CompiledVersion) -> Result<GuestInstance, LoaderError> {
        let clock = Clock::start();
        let instance = GuestInstance::new(compiled, &self.options.app_imports, self.emitter.clone()).await?;
        self.emit(&Event::Instantiate { version: instance.version(), duration_ms: clock.elapsed() });
        Ok(instance)
    }

    /// Let a replaced version clean up, then drop it: no reference to it remains.
    fn retire(&self, instance: Rc<GuestInstance>) {
        if let Err(e) = instance.dispose() {
            self.emit_error(&e);
        }
    }

    /// Deliver `event` to the slot's listeners.
    pub(crate) fn emit(&self, event: &impl ToJs) {
        self.emitter.emit(event);
    }

    fn emit_error(&self, e: &LoaderError) {
        self.emit(&self.error_event(e, None));
    }

    /// The `error` event for `e`: the running version, what was being tried, the error.
    pub(crate) fn error_event(&self, e: &LoaderError, retry_ms: Option<f64>) -> Event {
        let tried = self.trying.borrow().clone().unwrap_or_default();
        Event::Error {
            version: self.current_instance().ok().map(|c| c.version()),
            tried_version: tried.version,
            tried_sha256: tried.sha256,
            code: ErrorCode(e.code().into()),
            message: e.to_string(),
            error: ErrorValue(e.to_js()),
            retry_ms,
        }
    }

    /// Note what the operation under way tries to run, for its `error` event.
    pub(super) fn trying(&self, sha256: Option<String>, version: Option<String>) {
        let mut trying = self.trying.borrow_mut();
        let tried = trying.get_or_insert_with(Tried::default);
        tried.sha256 = sha256.or(tried.sha256.take());
        tried.version = version.or(tried.version.take());
    }
}
