//! Stage 1 (fetch + compile): stream the module once. The body is teed: one branch feeds
//! `WebAssembly.compileStreaming`, the other is hashed chunk by chunk as it arrives, under
//! a byte cap. Compilation runs no guest code; nothing is instantiated until the digest of
//! exactly these bytes has matched.

use js_sys::{Function, Object, Promise, Reflect, Uint8Array, WebAssembly};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, ReadableStream, ReadableStreamDefaultReader, Response, ResponseInit};

use crate::error::{js_message, LoaderError};
use crate::events::Clock;
use crate::hash::{Digest, StreamingHash};
use crate::options::{ModuleSource, Origin};

/// A module whose bytes matched the expected digest, compiled but never run.
pub struct Verified {
    /// The compiled module.
    pub module: WebAssembly::Module,
    /// Its bytes (the validate stage reads their sections).
    pub bytes: Vec<u8>,
    /// Its digest.
    pub sha256: Digest,
    /// Milliseconds until the last byte arrived.
    pub fetch_ms: f64,
    /// Milliseconds until compilation finished (overlaps the fetch).
    pub compile_ms: f64,
    /// Milliseconds spent finishing and comparing the digest.
    pub verify_ms: f64,
}

/// Fetch, hash and compile `source`, refusing it unless its digest matches.
pub async fn fetch_verified(source: ModuleSource, max_bytes: u64) -> Result<Verified, LoaderError> {
    let clock = Clock::start();
    let (response, abort) = open(&source.origin).await?;
    if let Some(announced) = content_length(&response) {
        if announced > max_bytes {
            abort_download(&abort);
            return Err(LoaderError::ModuleTooLarge { limit: max_bytes, actual: announced });
        }
    }
    let body = response.body().ok_or_else(|| LoaderError::BodyIncomplete {
        received: 0,
        message: "the response has no body".into(),
    })?;
    let branches = body.tee();
    let compiling = compile_branch(branches.get(0).unchecked_into())?;
    let reader: ReadableStreamDefaultReader = branches.get(1).unchecked_into::<ReadableStream>().get_reader().unchecked_into();
    let expected_len = content_length(&response).unwrap_or(0).min(max_bytes);
    let read = read_and_hash(&reader, max_bytes, expected_len as usize).await;
    let (bytes, hasher) = match read {
        Ok(done) => done,
        Err(e) => {
            abort_download(&abort);
            let _ = reader.cancel();
            return Err(e);
        }
    };
    let fetch_ms = clock.elapsed();
    let actual = hasher.finish();
    let verify_ms = clock.elapsed() - fetch_ms;
    if !source.sha256.matches(&actual) {
        return Err(LoaderError::HashMismatch { expected: source.sha256.to_hex(), actual: actual.to_hex() });
    }
    let module = JsFuture::from(compiling).await.map_err(|e| compile_error(&bytes, &e))?;
    Ok(Verified { module: module.unchecked_into(), bytes, sha256: actual, fetch_ms, compile_ms: clock.elapsed(), verify_ms })
}

/// The response for `origin`, and the controller that can abort its download.
async fn open(origin: &Origin) -> Result<(Response, Option<AbortController>), LoaderError> {
    match origin {
        Origin::Url(url) => {
            let abort = AbortController::new().ok();
            let init = web_sys::RequestInit::new();
            if let Some(a) = &abort {
                init.set_signal(Some(&a.signal()));
            }
            let fetched = global_fetch(url, &init)
                .map_err(|e| LoaderError::FetchFailed { url: url.clone(), message: js_message(&e) })?;
            let response: Response = JsFuture::from(fetched)
                .await
                .map_err(|e| LoaderError::FetchFailed { url: url.clone(), message: js_message(&e) })?
                .unchecked_into();
            if !response.ok() {
                return Err(LoaderError::HttpStatus { url: url.clone(), status: response.status() });
            }
            Ok((response, abort))
        }
        Origin::Bytes(bytes) => {
            let response = Response::new_with_opt_buffer_source(Some(bytes))
                .map_err(|e| LoaderError::InvalidArgument(js_message(&e)))?;
            Ok((response, None))
        }
        Origin::Response(response) => {
            if response.body_used() {
                return Err(LoaderError::InvalidArgument("source.response: body already used".into()));
            }
            if !response.ok() {
                return Err(LoaderError::HttpStatus { url: response.url(), status: response.status() });
            }
            Ok((Clone::clone(response), None))
        }
    }
}

/// `fetch` from whichever global scope we run in (window or worker).
pub fn global_fetch(url: &str, init: &web_sys::RequestInit) -> Result<Promise, JsValue> {
    let global = js_sys::global();
    let fetch: Function = Reflect::get(&global, &"fetch".into())?.dyn_into()?;
    Ok(fetch.call2(&global, &url.into(), init)?.unchecked_into())
}

/// The announced body length, if any.
pub fn content_length(response: &Response) -> Option<u64> {
    response.headers().get("content-length").ok().flatten()?.parse().ok()
}

fn abort_download(abort: &Option<AbortController>) {
    if let Some(a) = abort {
        a.abort();
    }
}

/// Start compiling one branch. compileStreaming insists on `application/wasm`, which we
/// state ourselves: the bytes are checked by hash, not by the server's MIME type.
fn compile_branch(branch: ReadableStream) -> Result<Promise, LoaderError> {
    let headers = Object::new();
    let _ = Reflect::set(&headers, &"content-type".into(), &"application/wasm".into());
    let init = ResponseInit::new();
    init.set_headers(&headers);
    let response = Response::new_with_opt_readable_stream_and_init(Some(&branch), &init)
        .map_err(|e| LoaderError::InvalidArgument(js_message(&e)))?;
    let compiling = WebAssembly::compile_streaming(&Promise::resolve(&response).unchecked_into());
    // When we bail out early (hash mismatch, cap) nobody awaits this promise.
    ignore_rejection(&compiling);
    Ok(compiling)
}

/// Mark `promise` as handled, so that if nobody ends up awaiting it its rejection does not
/// surface as an "unhandled rejection" on the page. Awaiting it still sees the rejection.
pub fn ignore_rejection(promise: &Promise) {
    IGNORE.with(|ignore| {
        let _ = promise.catch(ignore);
    });
}

thread_local! {
    static IGNORE: Closure<dyn FnMut(JsValue)> = Closure::new(|_| {});
}

/// Read the hashing branch to the end: copy each chunk, hash it, enforce the cap.
async fn read_and_hash(
    reader: &ReadableStreamDefaultReader,
    max_bytes: u64,
    expected_len: usize,
) -> Result<(Vec<u8>, StreamingHash), LoaderError> {
    let mut hasher = StreamingHash::default();
    let bytes = read_capped(reader, max_bytes, expected_len, |chunk| hasher.update(chunk))
        .await
        .map_err(|e| e.into_error(max_bytes, |limit, actual| LoaderError::ModuleTooLarge { limit, actual }))?;
    Ok((bytes, hasher))
}

/// Why [`read_capped`] stopped early.
pub enum ReadError {
    /// More than the cap arrived (bytes seen so far).
    TooLarge(u64),
    /// The stream failed.
    Incomplete {
        /// Bytes received.
        received: u64,
        /// What happened.
        message: String,
    },
}

impl ReadError {
    /// The loader error; `too_large(limit, actual)` names what exceeded the cap `limit`.
    pub fn into_error(self, limit: u64, too_large: impl FnOnce(u64, u64) -> LoaderError) -> LoaderError {
        match self {
            Self::TooLarge(actual) => too_large(limit, actual),
            Self::Incomplete { received, message } => LoaderError::BodyIncomplete { received, message },
        }
    }
}

/// Read a body stream to its end, handing each chunk to `on_chunk` as it arrives; stop with
/// [`ReadError::TooLarge`] as soon as more than `max_bytes` have come (the caller aborts the
/// download), so an endless body costs at most the cap.
pub async fn read_capped(
    reader: &ReadableStreamDefaultReader,
    max_bytes: u64,
    expected_len: usize,
    mut on_chunk: impl FnMut(&[u8]),
) -> Result<Vec<u8>, ReadError> {
    // Sized from Content-Length (already capped) so the buffer is not re-copied as it grows.
    let mut bytes = Vec::with_capacity(expected_len);
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| ReadError::Incomplete { received: bytes.len() as u64, message: js_message(&e) })?;
        if Reflect::get(&chunk, &"done".into()).map(|d| d.is_truthy()).unwrap_or(true) {
            return Ok(bytes);
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())
            .ok()
            .and_then(|v| v.dyn_into().ok())
            .ok_or_else(|| ReadError::Incomplete { received: bytes.len() as u64, message: "a chunk was not bytes".into() })?;
        let start = bytes.len();
        let total = (start + value.length() as usize) as u64;
        if total > max_bytes {
            return Err(ReadError::TooLarge(total));
        }
        bytes.resize(total as usize, 0);
        value.copy_to(&mut bytes[start..]);
        on_chunk(&bytes[start..]);
    }
}

fn compile_error(bytes: &[u8], error: &JsValue) -> LoaderError {
    if !bytes.starts_with(b"\0asm") {
        LoaderError::NotWasm
    } else {
        LoaderError::CompileFailed(js_message(error))
    }
}
