//! The network, shared by the module download (stage 1) and the manifest download of a
//! watched slot: `fetch` from any global scope, and reading a body under a byte cap.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal, ReadableStream, ReadableStreamDefaultReader, RequestInit, Response};

use crate::error::{js_message, LoaderError};
use crate::queue::global_fn;
pub(crate) use crate::queue::ignore_rejection;

/// A download's abort handle: the byte cap aborts it, and so does the caller's signal (linked
/// until the handle is dropped), whether the download waits for headers or for a chunk; and
/// its watchdog, when the server sends nothing for `stall_ms`.
#[derive(Debug)]
pub(crate) struct Abort {
    controller: AbortController,
    link: Option<(AbortSignal, Function)>,
    watchdog: Option<Watchdog>,
}

/// One interval timer per download (not a timer per chunk: a chunk only notes the time),
/// which aborts it once nothing has arrived for `stall_ms`: detection takes 1 to 1.5 times it.
#[derive(Debug)]
struct Watchdog {
    stall_ms: u32,
    last: Rc<Cell<f64>>,
    stalled: Rc<Cell<bool>>,
    interval: JsValue,
    _check: Closure<dyn FnMut()>,
}

impl Watchdog {
    fn start(stall_ms: u32, controller: &AbortController) -> Option<Self> {
        let set_interval = global_fn("setInterval")?;
        let (last, stalled) = (Rc::new(Cell::new(js_sys::Date::now())), Rc::new(Cell::new(false)));
        let (seen, flag, controller) = (last.clone(), stalled.clone(), controller.clone());
        let check = Closure::<dyn FnMut()>::new(move || {
            if !flag.get() && js_sys::Date::now() - seen.get() >= f64::from(stall_ms) {
                flag.set(true);
                controller.abort();
            }
        });
        let period = f64::from(stall_ms / 2).max(1.0);
        let interval = set_interval.call2(&JsValue::NULL, check.as_ref(), &period.into()).ok()?;
        Some(Self { stall_ms, last, stalled, interval, _check: check })
    }
}

impl Abort {
    /// A handle that `follow` (the caller's signal) triggers, and the watchdog when nothing
    /// arrives for `stall_ms` (0 = never). For a body not fetched here (the app's `Response`),
    /// reading it follows the handle too: see [`read_capped`].
    pub(crate) fn new(follow: Option<&AbortSignal>, stall_ms: u32) -> Result<Self, LoaderError> {
        let controller = AbortController::new().map_err(|e| LoaderError::internal("AbortController", &e))?;
        let link = follow.map(|signal| {
            let abort: Function = Reflect::get(&controller, &"abort".into())
                .ok()
                .and_then(|f| f.dyn_into::<Function>().ok())
                .map(|f| f.bind0(&controller).unchecked_into())
                .unwrap_or_else(|| Function::new_no_args(""));
            let _ = signal.add_event_listener_with_callback("abort", &abort);
            if signal.aborted() {
                controller.abort();
            }
            (signal.clone(), abort)
        });
        let watchdog = (stall_ms > 0).then(|| Watchdog::start(stall_ms, &controller)).flatten();
        Ok(Self { controller, link, watchdog })
    }

    /// Bytes arrived: the watchdog starts counting again.
    fn progress(&self) {
        if let Some(w) = &self.watchdog {
            w.last.set(js_sys::Date::now());
        }
    }

    /// What a failure really was, if the watchdog stopped the download: "no {what} for N ms".
    fn stall_message(&self, what: &str) -> Option<String> {
        let w = self.watchdog.as_ref().filter(|w| w.stalled.get())?;
        Some(format!("no {what} for {} ms", w.stall_ms))
    }

    /// Stop the download.
    pub(crate) fn abort(&self) {
        self.controller.abort();
    }

    /// Why reading stopped, if this handle stopped it: the watchdog's "no bytes for N ms", or
    /// the caller's abort.
    fn stopped(&self) -> Option<String> {
        let signal = self.controller.signal();
        signal.aborted().then(|| self.stall_message("bytes").unwrap_or_else(|| "the download was aborted".into()))
    }
}

impl Drop for Abort {
    fn drop(&mut self) {
        if let Some((signal, abort)) = &self.link {
            let _ = signal.remove_event_listener_with_callback("abort", abort);
        }
        if let (Some(w), Some(clear)) = (&self.watchdog, global_fn("clearInterval")) {
            let _ = clear.call1(&JsValue::NULL, &w.interval);
        }
    }
}

/// `fetch(url, init)` from whichever global scope we run in (window or worker), with an
/// abort handle attached that `follow` (the caller's signal) also triggers; a server that
/// sends nothing for `stall_ms` (0 = wait forever) fails it.
pub(crate) async fn fetch(
    url: &str,
    init: &RequestInit,
    follow: Option<&AbortSignal>,
    stall_ms: u32,
) -> Result<(Response, Abort), LoaderError> {
    let failed = |e: &JsValue| LoaderError::FetchFailed { url: url.to_string(), message: js_message(e) };
    let abort = Abort::new(follow, stall_ms)?;
    init.set_signal(Some(&abort.controller.signal()));
    let global = js_sys::global();
    let fetch: Function =
        Reflect::get(&global, &"fetch".into()).and_then(|f| f.dyn_into::<Function>()).map_err(|e| failed(&e))?;
    let promise: Promise = fetch.call2(&global, &url.into(), init).map_err(|e| failed(&e))?.unchecked_into();
    let answer = JsFuture::from(promise).await;
    let response: Response = answer
        .map_err(|e| abort.stall_message("response").map_or_else(|| failed(&e), |m| failed(&m.into())))?
        .unchecked_into();
    Ok((response, abort))
}

/// The announced body length, if any.
pub(crate) fn content_length(response: &Response) -> Option<u64> {
    response.headers().get("content-length").ok().flatten()?.parse().ok()
}

/// Why [`read_capped`] stopped before the end of the body.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// More than the cap was announced or arrived (bytes announced or seen so far).
    TooLarge(u64),
    /// The stream failed.
    Incomplete {
        /// Bytes received.
        received: u64,
        /// What happened.
        message: String,
    },
    /// `on_chunk` asked to stop.
    Stopped,
}

/// Read `body` to its end, handing each chunk to `on_chunk` as it arrives. Stops (and aborts
/// the download) as soon as more than `cap` bytes are announced or have come, so an endless
/// body costs at most the cap, or when `on_chunk` breaks. Returns the byte count.
pub(crate) async fn read_capped(
    response: &Response,
    body: ReadableStream,
    abort: Option<&Abort>,
    cap: u64,
    mut on_chunk: impl FnMut(Uint8Array) -> ControlFlow<()>,
) -> Result<u64, ReadError> {
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    // A body the app made does not hear our abort as a fetched one does: cancelling the
    // reader ends a read that waits for it.
    let cancel = abort.map(|abort| {
        let signal = abort.controller.signal();
        let waiting = reader.clone();
        let cancel = Closure::<dyn FnMut()>::new(move || ignore_rejection(&waiting.cancel()));
        let _ = signal.add_event_listener_with_callback("abort", cancel.as_ref().unchecked_ref());
        // Aborted already: that event has been and gone.
        if signal.aborted() {
            ignore_rejection(&reader.cancel());
        }
        (signal, cancel)
    });
    let result = read_chunks(&reader, abort, content_length(response), cap, &mut on_chunk).await;
    if let Some((signal, cancel)) = &cancel {
        let _ = signal.remove_event_listener_with_callback("abort", cancel.as_ref().unchecked_ref());
    }
    if result.is_err() {
        if let Some(abort) = abort {
            abort.abort();
        }
        // Rejects once the download is aborted: nobody needs to hear it.
        ignore_rejection(&reader.cancel());
    }
    result
}

async fn read_chunks(
    reader: &ReadableStreamDefaultReader,
    abort: Option<&Abort>,
    announced: Option<u64>,
    cap: u64,
    on_chunk: &mut impl FnMut(Uint8Array) -> ControlFlow<()>,
) -> Result<u64, ReadError> {
    if let Some(announced) = announced.filter(|n| *n > cap) {
        return Err(ReadError::TooLarge(announced));
    }
    let mut total = 0u64;
    loop {
        let incomplete = |e: &JsValue| ReadError::Incomplete { received: total, message: js_message(e) };
        let chunk = JsFuture::from(reader.read()).await;
        if let Some(message) = abort.and_then(Abort::stopped) {
            return Err(ReadError::Incomplete { received: total, message });
        }
        let chunk = chunk.map_err(|e| incomplete(&e))?;
        if let Some(abort) = abort {
            abort.progress();
        }
        if Reflect::get(&chunk, &"done".into()).map(|d| d.is_truthy()).unwrap_or(true) {
            return Ok(total);
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())
            .ok()
            .and_then(|v| v.dyn_into().ok())
            .ok_or_else(|| incomplete(&"a chunk was not bytes".into()))?;
        total += u64::from(value.length());
        if total > cap {
            return Err(ReadError::TooLarge(total));
        }
        if on_chunk(value).is_break() {
            return Err(ReadError::Stopped);
        }
    }
}
