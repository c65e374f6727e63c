//! The network, shared by the module download (stage 1) and the manifest download of a
//! watched slot: `fetch` from any global scope, and reading a body under a byte cap.

use std::ops::ControlFlow;

use js_sys::{Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal, ReadableStream, ReadableStreamDefaultReader, RequestInit, Response};

use crate::error::{js_message, LoaderError};
pub(crate) use crate::queue::ignore_rejection;
use crate::queue::settle_within;

/// A download's abort handle: the byte cap aborts it, and so does the caller's signal (linked
/// until the handle is dropped), whether the download waits for headers or for a chunk; and
/// how long it may wait for either (`stall_ms`, 0 = forever) before it is given up.
#[derive(Debug)]
pub(crate) struct Abort {
    controller: AbortController,
    link: Option<(AbortSignal, Function)>,
    stall_ms: u32,
}

impl Abort {
    fn new(follow: Option<&AbortSignal>, stall_ms: u32) -> Result<Self, LoaderError> {
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
        Ok(Self { controller, link, stall_ms })
    }

    /// Wait for `promise` at most the stall time; `None` when it passed.
    async fn within_stall(&self, promise: Promise) -> Option<Result<JsValue, JsValue>> {
        let deadline = (self.stall_ms > 0).then_some(f64::from(self.stall_ms));
        settle_within(promise, deadline, None).await.ok()
    }

    /// Stop the download.
    pub(crate) fn abort(&self) {
        self.controller.abort();
    }
}

impl Drop for Abort {
    fn drop(&mut self) {
        if let Some((signal, abort)) = &self.link {
            let _ = signal.remove_event_listener_with_callback("abort", abort);
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
    let Some(answer) = abort.within_stall(promise).await else {
        abort.abort();
        return Err(failed(&format!("no response for {stall_ms} ms").into()));
    };
    let response: Response = answer.map_err(|e| failed(&e))?.unchecked_into();
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
    let result = read_chunks(&reader, abort, content_length(response), cap, &mut on_chunk).await;
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
        let chunk = match abort {
            Some(abort) => abort.within_stall(reader.read()).await.ok_or_else(|| ReadError::Incomplete {
                received: total,
                message: format!("no bytes for {} ms", abort.stall_ms),
            })?,
            None => JsFuture::from(reader.read()).await,
        };
        let chunk = chunk.map_err(|e| incomplete(&e))?;
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
