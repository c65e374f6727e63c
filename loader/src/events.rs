//! Events: one per pipeline phase with its duration, plus rollbacks, errors and guest logs.

use std::cell::RefCell;

use js_sys::Function;
use serde::Serialize;
use wasm_bindgen::JsValue;

/// A monotonic millisecond clock (`performance.now()`, or `Date.now()` where absent).
#[derive(Clone, Copy)]
pub struct Clock(f64);

impl Clock {
    /// Start timing now.
    pub fn start() -> Self {
        Self(now())
    }

    /// Milliseconds since [`Clock::start`].
    pub fn elapsed(&self) -> f64 {
        now() - self.0
    }
}

/// The current time in milliseconds, sub-millisecond where the browser allows.
pub fn now() -> f64 {
    thread_local! {
        static PERFORMANCE: Option<web_sys::Performance> = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
            .ok()
            .and_then(|p| wasm_bindgen::JsCast::dyn_into(p).ok());
    }
    PERFORMANCE.with(|p| p.as_ref().map(|p| p.now())).unwrap_or_else(js_sys::Date::now)
}

/// One event, delivered to listeners as a plain object.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `fetch`, `compile`, `verify`, `validate`, `instantiate`, `commit`, `rollback`, `error`,
    /// `probation-passed` or `log`; from a watcher also `manifest`, `update-skipped` and
    /// `fallback`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The guest version concerned.
    pub version: Option<String>,
    /// How long the phase took, in milliseconds.
    pub duration_ms: Option<f64>,
    /// Phase-specific details.
    #[serde(flatten)]
    pub detail: Detail,
}

/// Phase-specific fields of an [`Event`].
#[derive(Serialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    /// Bytes fetched, or state bytes transferred.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The guest's own save time inside a commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_save_ms: Option<f64>,
    /// Copying the state between memories inside a commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_copy_ms: Option<f64>,
    /// The guest's own load time inside a commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_load_ms: Option<f64>,
    /// Schema the state travelled in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<u32>,
    /// The version swapped or rolled back from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// Why a rollback happened (`manual`, `trap`), or why a watcher skipped an update
    /// (`major`, `no-migration`, `failed-here`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Where a rollback's state came from: `carried` (down-migrated) or `snapshot`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_source: Option<&'static str>,
    /// Error code, for `error` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// Human-readable message (errors, guest logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Version of the signed manifest concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_version: Option<u64>,
    /// After a watcher's failed check: milliseconds until it tries again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_ms: Option<f64>,
    /// Guest log level (0 error … 3 debug).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
}

impl Event {
    /// An event with no details yet.
    pub fn new(kind: &'static str, version: Option<&str>, duration_ms: Option<f64>) -> Self {
        Self { kind, version: version.map(str::to_string), duration_ms, detail: Detail::default() }
    }

    /// The same event with `detail`.
    pub fn with(mut self, detail: Detail) -> Self {
        self.detail = detail;
        self
    }
}

/// Listeners of one slot.
#[derive(Default)]
pub struct Emitter {
    listeners: RefCell<Vec<(u32, Function)>>,
    next_id: std::cell::Cell<u32>,
}

impl Emitter {
    /// Add a listener; returns its id for [`Emitter::remove`].
    pub fn add(&self, listener: Function) -> u32 {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        self.listeners.borrow_mut().push((id, listener));
        id
    }

    /// Remove a listener.
    pub fn remove(&self, id: u32) {
        self.listeners.borrow_mut().retain(|(i, _)| *i != id);
    }

    /// Remove every listener (so none keeps page objects alive after `dispose`).
    pub fn clear(&self) {
        self.listeners.borrow_mut().clear();
    }

    /// Deliver `event`. A listener that throws does not stop the others or the loader.
    pub fn emit(&self, event: Event) {
        let snapshot: Vec<Function> = self.listeners.borrow().iter().map(|(_, f)| f.clone()).collect();
        if snapshot.is_empty() {
            return;
        }
        let serializer = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
        let Ok(value) = event.serialize(&serializer) else { return };
        for listener in snapshot {
            let _ = listener.call1(&JsValue::UNDEFINED, &value);
        }
    }
}
