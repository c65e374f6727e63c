//! Swaps and rollbacks run one at a time, in the order they were requested.
//!
//! Each request waits on the promise of the one before it, so the order is the order of
//! the calls — deterministic, unlike a lock whose waiters race for it.

use std::cell::RefCell;

use js_sys::{Function, Promise};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

/// The FIFO of pending operations.
#[derive(Default)]
pub struct OpQueue {
    tail: RefCell<Option<Promise>>,
}

/// A turn at the head of the queue; dropping it lets the next operation run.
#[must_use = "the next operation starts as soon as the turn is dropped"]
pub struct Turn {
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
    pub async fn enter(&self) -> Turn {
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
