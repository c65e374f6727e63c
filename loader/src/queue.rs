//! Swaps and rollbacks run one at a time, in the order they were requested.
//!
//! Each request waits on the promise of the one before it, so the order is the order of
//! the calls — deterministic, unlike a lock whose waiters race for it.

use std::cell::RefCell;

use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The FIFO of pending operations.
#[derive(Debug, Default)]
pub(crate) struct OpQueue {
    tail: RefCell<Option<Promise>>,
}

/// A turn at the head of the queue; dropping it lets the next operation run.
#[must_use = "the next operation starts as soon as the turn is dropped"]
#[derive(Debug)]
pub(crate) struct Turn {
    release: Option<Function>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.call0(&JsValue::UNDEFINED);
        }
    }
}

impl OpQueue {
    /// Wait until every earlier operation has finished.
    pub(crate) async fn enter(&self) -> Turn {
        let mut release = None;
        let done = Promise::new(&mut |resolve, _reject| release = Some(resolve));
        let previous = self.tail.replace(Some(done));
        if let Some(previous) = previous {
            // The tail promise only ever resolves.
            let _ = JsFuture::from(previous).await;
        }
        Turn { release }
    }
}

/// Resolve on a later task of the event loop, so that events queued meanwhile run first:
/// `scheduler.yield()` where the browser has it (no timer clamp), else `setTimeout(0)`.
pub(crate) async fn next_task() {
    let global = js_sys::global();
    let scheduler = js_sys::Reflect::get(&global, &"scheduler".into()).unwrap_or_default();
    let yield_fn: Option<Function> =
        js_sys::Reflect::get(&scheduler, &"yield".into()).ok().and_then(|f| f.dyn_into().ok());
    if let Some(promise) = yield_fn.and_then(|f| f.call0(&scheduler).ok()).and_then(|p| p.dyn_into::<Promise>().ok()) {
        let _ = JsFuture::from(promise).await;
        return;
    }
    let set_timeout: Option<Function> =
        js_sys::Reflect::get(&global, &"setTimeout".into()).ok().and_then(|f| f.dyn_into().ok());
    let Some(set_timeout) = set_timeout else { return };
    let tick = Promise::new(&mut |resolve, _reject| {
        let _ = set_timeout.call2(&global, &resolve, &JsValue::from(0));
    });
    let _ = JsFuture::from(tick).await;
}
