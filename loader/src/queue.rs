//! Swaps and rollbacks run one at a time, in the order they were requested.
//!
//! Each request waits on the promise of the one before it, so the order is the order of
//! the calls — deterministic, unlike a lock whose waiters race for it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::closure::Closure;
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

/// Resolve on a later task of the event loop, after the tasks already queued: a message
/// posted to ourselves. Unlike `scheduler.yield()`, whose continuation runs ahead of other
/// queued tasks, this lets the page's own work (its events, timers, other messages) run
/// first; unlike `setTimeout(0)`, it is not clamped to 4 ms when nested.
pub(crate) async fn next_task() {
    let Some(tick) = TICKS.with(Ticks::next) else { return };
    let _ = JsFuture::from(tick).await;
}

thread_local! {
    static TICKS: Ticks = Ticks::new();
}

/// A `MessageChannel` whose messages resolve the promises waiting for the next task, oldest
/// first (messages on one channel arrive in order). The port listens only while a promise
/// waits: in Node a listening port keeps the process alive, so a script that swapped once
/// would otherwise never exit.
struct Ticks {
    channel: Option<web_sys::MessageChannel>,
    waiting: Rc<RefCell<VecDeque<Function>>>,
    on_message: Option<Closure<dyn FnMut(JsValue)>>,
}

impl Ticks {
    fn new() -> Self {
        let waiting: Rc<RefCell<VecDeque<Function>>> = Rc::default();
        let Ok(channel) = web_sys::MessageChannel::new() else {
            return Self { channel: None, waiting, on_message: None };
        };
        let queue = waiting.clone();
        let port = channel.port1();
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            let resolve = queue.borrow_mut().pop_front();
            if queue.borrow().is_empty() {
                port.set_onmessage(None);
            }
            if let Some(resolve) = resolve {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
        });
        Self { channel: Some(channel), waiting, on_message: Some(on_message) }
    }

    /// A promise resolved on the next task; `None` where there is no `MessageChannel`.
    fn next(&self) -> Option<Promise> {
        let (channel, on_message) = (self.channel.as_ref()?, self.on_message.as_ref()?);
        let tick = Promise::new(&mut |resolve, _| self.waiting.borrow_mut().push_back(resolve));
        channel.port1().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        if channel.port2().post_message(&JsValue::UNDEFINED).is_err() {
            self.waiting.borrow_mut().pop_back();
            return None;
        }
        Some(tick)
    }
}
