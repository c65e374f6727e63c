//! Waiting: swaps and rollbacks run one at a time, in the order they were requested; the
//! next task of the event loop; a promise awaited with a way out (an abort signal, a deadline).
//!
//! Each request waits on the promise of the one before it, so the order is the order of
//! the calls — deterministic, unlike a lock whose waiters race for it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
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

/// Mark `promise` as handled, so that if nobody ends up awaiting it its rejection does not
/// surface as an "unhandled rejection" on the page. Awaiting it still sees the rejection.
pub(crate) fn ignore_rejection(promise: &Promise) {
    thread_local! {
        static IGNORE: wasm_bindgen::closure::Closure<dyn FnMut(JsValue)> = wasm_bindgen::closure::Closure::new(|_| {});
    }
    IGNORE.with(|ignore| {
        let _ = promise.catch(ignore);
    });
}

/// Why [`settle_within`] stopped waiting.
#[derive(Debug)]
pub(crate) enum GaveUp {
    /// The signal aborted (its reason).
    Aborted(JsValue),
    /// The deadline passed.
    Expired,
}

/// `promise`'s outcome, unless `signal` aborts or `deadline_ms` passes first. The timer and
/// the listener are removed once it settles.
pub(crate) async fn settle_within(
    promise: Promise,
    deadline_ms: Option<f64>,
    signal: Option<&web_sys::AbortSignal>,
) -> Result<Result<JsValue, JsValue>, GaveUp> {
    let stop = Stop::new(deadline_ms, signal);
    let either: Array = [promise, stop.promise.clone()].into_iter().map(JsValue::from).collect();
    let outcome = JsFuture::from(Promise::race(&either)).await;
    stop.clear();
    match outcome {
        Err(e) if Object::is(&e, &stop.marker) => match signal.filter(|s| s.aborted()) {
            Some(signal) => Err(GaveUp::Aborted(signal.reason())),
            None => Err(GaveUp::Expired),
        },
        other => Ok(other),
    }
}

/// A promise rejected with `marker` when the signal aborts or the deadline passes.
struct Stop {
    promise: Promise,
    marker: JsValue,
    timer: JsValue,
    on_abort: Option<(web_sys::AbortSignal, Function)>,
}

impl Stop {
    fn new(deadline_ms: Option<f64>, signal: Option<&web_sys::AbortSignal>) -> Self {
        let marker: JsValue = Object::new().into();
        let (mut timer, mut on_abort) = (JsValue::UNDEFINED, None);
        let promise = Promise::new(&mut |_, reject| {
            let stop: Function = reject.bind1(&JsValue::NULL, &marker).unchecked_into();
            if let (Some(ms), Some(set)) = (deadline_ms, global_fn("setTimeout")) {
                timer = set.call2(&JsValue::NULL, &stop, &ms.into()).unwrap_or_default();
            }
            if let Some(signal) = signal {
                let _ = signal.add_event_listener_with_callback("abort", &stop);
                if signal.aborted() {
                    let _ = stop.call0(&JsValue::NULL);
                }
                on_abort = Some((signal.clone(), stop));
            }
        });
        ignore_rejection(&promise);
        Self { promise, marker, timer, on_abort }
    }

    fn clear(&self) {
        if let Some(clear) = global_fn("clearTimeout") {
            let _ = clear.call1(&JsValue::NULL, &self.timer);
        }
        if let Some((signal, stop)) = &self.on_abort {
            let _ = signal.remove_event_listener_with_callback("abort", stop);
        }
    }
}

/// A function of the global scope (a window, a worker or Node).
pub(crate) fn global_fn(name: &str) -> Option<Function> {
    Reflect::get(&js_sys::global(), &name.into()).ok().and_then(|f| f.dyn_into().ok())
}
