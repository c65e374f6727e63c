//! Stage 1 (fetch, verify): read the module once, under a byte cap, inspecting and keeping
//! it chunk by chunk as it arrives; compile it as it streams in if it is slow to arrive, in
//! one call once complete if it arrives at once or fast. Its SHA-256 is taken once the last byte is in — by
//! WebCrypto in a worker ([`crate::hasher`]), while the compiler finishes — so that hashing
//! adds next to nothing to the time a load takes and does not block the page. (Pages that
//! cannot run the worker hash with WebCrypto here; pages without WebCrypto, outside a secure
//! context, with `sha2`, a slice per event-loop turn.) Compiling runs no guest code, and
//! nothing is instantiated until the digest of exactly these bytes has matched.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::rc::Rc;

use hotswap_inspect::{InspectError, Inspector, ModuleInterface};
use js_sys::{Array, ArrayBuffer, Object, Promise, Reflect, Uint8Array, WebAssembly};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, ReadableStream, ReadableStreamDefaultController, Response, ResponseInit};

use crate::digest::{Digest, StreamingHash};
use crate::error::{js_message, LoaderError};
use crate::events::{Clock, HashedOn};
use crate::hasher::Hasher;
use crate::js::invalid;
use crate::net::{self, ignore_rejection, ReadError};
use crate::options::{ModuleSource, Origin};
use crate::queue::{global_fn, next_task};

/// A module whose bytes matched the expected digest, compiled but never run, with the
/// interface read from the same bytes.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The compiled module.
    pub module: WebAssembly::Module,
    /// Its interface (not yet checked against the app's policy).
    pub interface: ModuleInterface,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub bytes: u64,
    /// Milliseconds until the last byte arrived.
    pub fetch_ms: f64,
    /// Milliseconds until compilation finished (overlaps the fetch).
    pub compile_ms: f64,
    /// Milliseconds spent finishing and comparing the digest.
    pub verify_ms: f64,
    /// Which thread hashed it.
    pub hashed_on: HashedOn,
}

/// Fetch, hash, inspect and compile `source`, refusing it unless its digest matches.
/// `signal` (a swap's) aborts the download too, even one that has stalled; a server silent
/// for `stall_ms` fails it.
pub(crate) async fn fetch_verified(
    source: ModuleSource,
    max_bytes: u64,
    signal: Option<&AbortSignal>,
    stall_ms: u32,
) -> Result<Fetched, LoaderError> {
    let clock = Clock::start();
    let (response, abort, url) = open(&source.origin, signal, stall_ms).await?;
    let body = response
        .body()
        .ok_or_else(|| LoaderError::BodyIncomplete { received: 0, message: "the response has no body".into() })?;
    let mut download = Download::new(Clock::start());
    // A stream the app built may hand over a chunk and write into it again later (a pooled
    // or BYOB buffer): each chunk is copied as it arrives, so the compiler, the inspector and
    // the hash see the same bytes. Bodies the browser made are never written again.
    let own_chunks = matches!(source.origin, Origin::Response(_));
    // The body is kept in one typed array to be hashed: 4 GiB at most, whatever the limit.
    let max_bytes = max_bytes.min(u64::from(u32::MAX));
    let read = net::read_capped(&response, body, abort.as_ref(), max_bytes, |chunk| {
        download.take(if own_chunks { chunk.slice(0, chunk.length()) } else { chunk })
    })
    .await;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) => {
            download.abandon();
            return Err(match e {
                ReadError::TooLarge(actual) => LoaderError::ModuleTooLarge { limit: max_bytes, actual },
                ReadError::Incomplete { received, message } => LoaderError::BodyIncomplete { received, message },
                ReadError::Stopped => refusal(download.inspector.finish(), &response),
            });
        }
    };
    let fetch_ms = clock.elapsed();
    let Arrived { whole, chunks, compiling, inspector } = download.finish(bytes).await?;
    let (digest, hashed_on) = digest_of(whole, &chunks, Hasher::ready().as_deref(), signal).await?;
    drop(chunks);
    let verify_ms = clock.elapsed() - fetch_ms;
    if !source.sha256.matches(&digest) {
        return Err(LoaderError::HashMismatch { expected: source.sha256.to_hex(), actual: digest.to_hex() });
    }
    let module = match JsFuture::from(compiling).await {
        Ok(module) => module,
        Err(e) => {
            // Not wasm at all (an empty body, an HTML page) says so rather than what V8 said.
            let verdict = inspector.finish();
            if let Err(InspectError::NotWasm { .. }) = verdict {
                return Err(refusal(verdict, &response));
            }
            return Err(InspectError::malformed(format!("{url}: {}", js_message(&e))).into());
        }
    };
    let interface = inspector.finish().map_err(|e| refusal(Err(e), &response))?;
    Ok(Fetched {
        module: module.unchecked_into(),
        interface,
        digest,
        bytes,
        fetch_ms,
        compile_ms: clock.elapsed(),
        verify_ms,
        hashed_on,
    })
}

/// A body arriving: inspected and kept chunk by chunk. A body that arrives at once or fast
/// (loopback, a cache, a blob, bytes the app holds) is compiled in one call once complete,
/// which is faster than streaming it through a JS stream to the compiler and costs the page
/// less: feeding that stream runs the compiler's decoding on the main thread, 37 ms of one
/// task for a 16 MB module from a blob. One arriving slower than [`FAST_BYTES_PER_MS`]
/// after [`STREAM_AFTER_MS`] is streamed to `compileStreaming` from then on, so compiling
/// overlaps the download.
struct Download {
    clock: Clock,
    inspector: Inspector,
    chunks: Vec<Uint8Array>,
    received: f64,
    streaming: Option<(ReadableStreamDefaultController, Promise)>,
}

/// How long a body may take before its compilation may start while it downloads.
const STREAM_AFTER_MS: f64 = 10.0;

/// A body arriving at least this fast (~800 Mbit/s) is compiled once complete: it will be
/// there before a compiler fed as it arrives would have gained anything.
const FAST_BYTES_PER_MS: f64 = 100_000.0;

impl Download {
    fn new(clock: Clock) -> Self {
        Self { clock, inspector: Inspector::default(), chunks: Vec::new(), received: 0.0, streaming: None }
    }

    /// Whether the body is slow to arrive: then compiling it as it arrives pays.
    fn is_slow(&self) -> bool {
        let elapsed = self.clock.elapsed();
        elapsed > STREAM_AFTER_MS && self.received / elapsed < FAST_BYTES_PER_MS
    }

    /// The next chunk; breaks as soon as the body is known not to be wasm at all (an HTML
    /// error page): no need to download the rest.
    fn take(&mut self, chunk: Uint8Array) -> ControlFlow<()> {
        inspect_chunk(&mut self.inspector, &chunk);
        if matches!(self.inspector.error(), Some(InspectError::NotWasm { .. })) {
            return ControlFlow::Break(());
        }
        if self.streaming.is_none() && self.is_slow() {
            self.streaming = start_streaming_compile(&self.chunks);
        }
        self.received += f64::from(chunk.length());
        if let Some((feed, _)) = &self.streaming {
            let _ = feed.enqueue_with_chunk(&chunk);
        }
        self.chunks.push(chunk);
        ControlFlow::Continue(())
    }

    /// The download failed: stop the compiler too.
    fn abandon(&mut self) {
        if let Some((feed, compiling)) = self.streaming.take() {
            // The compiler's promise rejects in turn: nobody awaits it any more.
            ignore_rejection(&compiling);
            feed.error_with_e(&"download stopped".into());
        }
    }

    /// The whole body, its compilation under way, and the inspector. Each step that grows
    /// with the module runs in tasks of its own: closing the compiler's stream (it decodes
    /// what is left, on this thread), and the copy into one array, a slice per task.
    async fn finish(self, total: u64) -> Result<Arrived, LoaderError> {
        let Download { chunks, streaming, inspector, .. } = self;
        let (whole, compiling) = match streaming {
            Some((feed, compiling)) => {
                let _ = feed.close();
                next_task().await;
                (concat(&chunks, total).await?, compiling)
            }
            None => {
                let whole = concat(&chunks, total).await?;
                let compiling = WebAssembly::compile(&whole);
                (whole, compiling)
            }
        };
        // When we bail out (a digest mismatch) nobody awaits it.
        ignore_rejection(&compiling);
        Ok(Arrived { whole, chunks, compiling, inspector })
    }
}

/// A body that has all arrived. The compiler has its own copy of the bytes (the JS API
/// copies them when called), so `whole` is free to move to the hashing worker; `chunks` are
/// kept until the digest is known, in case it cannot answer.
struct Arrived {
    whole: Uint8Array,
    chunks: Vec<Uint8Array>,
    compiling: Promise,
    inspector: Inspector,
}

/// `chunks`, `total` bytes in all, in one array of their own: copied [`CONCAT_SLICE`] bytes
/// per event-loop turn (~3 ms into fresh pages).
async fn concat(chunks: &[Uint8Array], total: u64) -> Result<Uint8Array, LoaderError> {
    // Through Reflect: a page out of memory throws a RangeError, which must become an error.
    let out_of_memory = |e: &JsValue| LoaderError::internal("allocating an array for the module (out of memory?)", e);
    let constructor = global_fn("Uint8Array").ok_or_else(|| out_of_memory(&JsValue::UNDEFINED))?;
    let length: Array = [JsValue::from_f64(total as f64)].into_iter().collect();
    let whole: Uint8Array = Reflect::construct(&constructor, &length).map_err(|e| out_of_memory(&e))?.unchecked_into();
    let (mut at, mut since_turn) = (0, 0);
    for chunk in chunks {
        let mut from = 0;
        while from < chunk.length() {
            if since_turn >= CONCAT_SLICE {
                next_task().await;
                since_turn = 0;
            }
            let end = chunk.length().min(from + CONCAT_SLICE - since_turn);
            whole.set(&chunk.subarray(from, end), at);
            at += end - from;
            since_turn += end - from;
            from = end;
        }
    }
    Ok(whole)
}

/// Bytes copied per event-loop turn when a body is put in one array.
const CONCAT_SLICE: u32 = 4 << 20;

/// `compileStreaming` fed from a stream we push to, starting with what has arrived so far.
fn start_streaming_compile(arrived: &[Uint8Array]) -> Option<(ReadableStreamDefaultController, Promise)> {
    let controller = Rc::new(RefCell::new(None));
    let set = controller.clone();
    let source = Object::new();
    let start = Closure::once_into_js(move |c: ReadableStreamDefaultController| *set.borrow_mut() = Some(c));
    Reflect::set(&source, &"start".into(), &start).ok()?;
    // `start` runs inside the constructor.
    let stream = ReadableStream::new_with_underlying_source(&source).ok()?;
    let feed = controller.borrow_mut().take()?;
    for chunk in arrived {
        feed.enqueue_with_chunk(chunk).ok()?;
    }
    let compiling = compile_stream(stream).ok()?;
    Some((feed, compiling))
}

/// What the inspector reads is copied to it; what it only counts (the code, the data) is
/// skipped, never copied.
fn inspect_chunk(inspector: &mut Inspector, chunk: &Uint8Array) {
    let (mut at, length) = (0, chunk.length());
    let mut piece = Vec::new();
    while at < length && inspector.error().is_none() {
        let skip = inspector.skippable().min(length - at);
        if skip > 0 {
            inspector.skip(skip);
            at += skip;
            continue;
        }
        let end = length.min(at + PEEK);
        piece.resize((end - at) as usize, 0);
        chunk.subarray(at, end).copy_to(&mut piece);
        inspector.feed(&piece);
        at = end;
    }
}

/// Bytes handed to the inspector at a time: a section header and whatever follows it.
const PEEK: u32 = 4 << 10;

/// SHA-256 of the body, while the compiler finishes: in the hashing worker where the page
/// can run one ([`Hasher`]); else by WebCrypto here (secure contexts), which blocks the page
/// while it hashes; else with `sha2` here, yielding between slices.
async fn digest_of(
    whole: Uint8Array,
    chunks: &[Uint8Array],
    hasher: Option<&Hasher>,
    signal: Option<&AbortSignal>,
) -> Result<(Digest, HashedOn), LoaderError> {
    let whole = match hasher {
        Some(hasher) => match hasher.sha256(whole.clone(), signal).await? {
            Some(digest) => return Ok((digest, HashedOn::Worker)),
            // `whole` went to the worker: hash the chunks' bytes here instead.
            None => concat(chunks, chunks.iter().map(|c| u64::from(c.length())).sum()).await?,
        },
        None => whole,
    };
    let digest = match web_crypto_sha256(&whole).await {
        Some(digest) => digest,
        None => sha2_in_slices(&whole).await,
    };
    Ok((digest, HashedOn::Page))
}

async fn web_crypto_sha256(bytes: &Uint8Array) -> Option<Digest> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).ok()?;
    let subtle: web_sys::SubtleCrypto = Reflect::get(&crypto, &"subtle".into()).ok()?.dyn_into().ok()?;
    let promise = subtle.digest_with_str_and_buffer_source("SHA-256", bytes).ok()?;
    let hash: ArrayBuffer = JsFuture::from(promise).await.ok()?.dyn_into().ok()?;
    let mut out = [0u8; 32];
    (Uint8Array::new(&hash).length() == 32).then(|| Uint8Array::new(&hash).copy_to(&mut out))?;
    Some(Digest(out))
}

async fn sha2_in_slices(bytes: &Uint8Array) -> Digest {
    const SLICE: u32 = 256 << 10;
    let mut hasher = StreamingHash::default();
    for start in (0..bytes.length()).step_by(SLICE as usize) {
        hasher.update_array(&bytes.subarray(start, bytes.length().min(start + SLICE)));
        next_task().await;
    }
    hasher.finish()
}

/// The response for `origin`, the controller that can abort its download, and a name for
/// it in error messages.
async fn open(
    origin: &Origin,
    signal: Option<&AbortSignal>,
    stall_ms: u32,
) -> Result<(Response, Option<net::Abort>, String), LoaderError> {
    let (response, abort, url) = match origin {
        Origin::Url(url) => {
            let (response, abort) = net::fetch(url, &web_sys::RequestInit::new(), signal, stall_ms).await?;
            (response, Some(abort), url.clone())
        }
        Origin::Bytes(bytes) => {
            let response = Response::new_with_opt_buffer_source(Some(bytes))
                .map_err(|e| LoaderError::internal("Response from bytes", &e))?;
            (response, Some(net::Abort::new(signal, 0)?), "<bytes>".to_string())
        }
        Origin::Response(response) => {
            if response.body_used() {
                return Err(invalid("source.response", "a Response whose body has not been read yet"));
            }
            // A Response made in JS (not fetched) has no URL.
            let url = Some(response.url()).filter(|u| !u.is_empty()).unwrap_or_else(|| "<the source Response>".into());
            // The app's stream: the swap's signal and the stall watchdog stop it as they
            // would a download (its reader is cancelled).
            (Clone::clone(response), Some(net::Abort::new(signal, stall_ms)?), url)
        }
    };
    if !response.ok() {
        return Err(LoaderError::HttpStatus { url, status: response.status() });
    }
    Ok((response, abort, url))
}

/// Compile what `stream` delivers. compileStreaming insists on `application/wasm`, which we
/// state ourselves: the bytes are checked by hash, not by the server's MIME type.
fn compile_stream(branch: ReadableStream) -> Result<Promise, LoaderError> {
    let headers = Object::new();
    let _ = Reflect::set(&headers, &"content-type".into(), &"application/wasm".into());
    let init = ResponseInit::new();
    init.set_headers(&headers);
    let response = Response::new_with_opt_readable_stream_and_init(Some(&branch), &init)
        .map_err(|e| LoaderError::internal("Response from a stream", &e))?;
    Ok(WebAssembly::compile_streaming(&Promise::resolve(&response).unchecked_into()))
}

/// The inspector's verdict as an error; `NOT_WASM` also looks at the content type to say
/// whether the server sent an HTML page (a mistyped URL under an SPA fallback).
fn refusal(verdict: Result<ModuleInterface, InspectError>, response: &Response) -> LoaderError {
    match verdict {
        Err(InspectError::NotWasm { looks_like_html }) => {
            let html_type =
                response.headers().get("content-type").ok().flatten().is_some_and(|t| t.contains("text/html"));
            InspectError::NotWasm { looks_like_html: looks_like_html || html_type }.into()
        }
        Err(other) => other.into(),
        Ok(_) => InspectError::malformed("the download stopped early").into(),
    }
}
