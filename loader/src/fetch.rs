//! Stage 1 (fetch, verify): stream the module once. The body is teed: one branch feeds
//! `WebAssembly.compileStreaming`, the other is hashed and inspected chunk by chunk as it
//! arrives, under a byte cap. Compiling runs no guest code, and nothing is instantiated
//! until the digest of exactly these bytes has matched.

use std::ops::ControlFlow;

use hotswap_inspect::{InspectError, Inspector, ModuleInterface};
use js_sys::{Object, Promise, Reflect, WebAssembly};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, ReadableStream, Response, ResponseInit};

use crate::digest::{Digest, StreamingHash};
use crate::error::js_message;
use crate::error::LoaderError;
use crate::events::Clock;
use crate::js::invalid;
use crate::net::{self, ignore_rejection, ReadError};
use crate::options::{ModuleSource, Origin};

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
}

/// Fetch, hash, inspect and compile `source`, refusing it unless its digest matches.
pub(crate) async fn fetch_verified(source: ModuleSource, max_bytes: u64) -> Result<Fetched, LoaderError> {
    let clock = Clock::start();
    let (response, abort, url) = open(&source.origin).await?;
    let body = response
        .body()
        .ok_or_else(|| LoaderError::BodyIncomplete { received: 0, message: "the response has no body".into() })?;
    let branches = body.tee();
    let compiling = compile_branch(branches.get(0).unchecked_into())?;
    let mut hasher = StreamingHash::default();
    let mut inspector = Inspector::default();
    let read = net::read_capped(&response, branches.get(1).unchecked_into(), abort.as_ref(), max_bytes, |chunk| {
        hasher.update(chunk);
        inspector.feed(chunk);
        // Not wasm at all (an HTML error page): no need to download the rest.
        if matches!(inspector.error(), Some(InspectError::NotWasm { .. })) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .await;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge(actual)) => return Err(LoaderError::ModuleTooLarge { limit: max_bytes, actual }),
        Err(ReadError::Incomplete { received, message }) => {
            return Err(LoaderError::BodyIncomplete { received, message })
        }
        Err(ReadError::Stopped) => return Err(refusal(inspector.finish(), &response)),
    };
    let fetch_ms = clock.elapsed();
    let digest = hasher.finish();
    let verify_ms = clock.elapsed() - fetch_ms;
    if !source.sha256.matches(&digest) {
        return Err(LoaderError::HashMismatch { expected: source.sha256.to_hex(), actual: digest.to_hex() });
    }
    let module = match JsFuture::from(compiling).await {
        Ok(module) => module,
        Err(_) if matches!(inspector.error(), Some(InspectError::NotWasm { .. })) => {
            return Err(refusal(inspector.finish(), &response))
        }
        Err(e) => return Err(InspectError::malformed(format!("{url}: {}", js_message(&e))).into()),
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
    })
}

/// The response for `origin`, the controller that can abort its download, and a name for
/// it in error messages.
async fn open(origin: &Origin) -> Result<(Response, Option<AbortController>, String), LoaderError> {
    let (response, abort, url) = match origin {
        Origin::Url(url) => {
            let (response, abort) = net::fetch(url, &web_sys::RequestInit::new()).await?;
            (response, Some(abort), url.clone())
        }
        Origin::Bytes(bytes) => {
            let response = Response::new_with_opt_buffer_source(Some(bytes))
                .map_err(|e| LoaderError::internal("Response from bytes", &e))?;
            (response, None, "<bytes>".to_string())
        }
        Origin::Response(response) => {
            if response.body_used() {
                return Err(invalid("source.response", "a Response whose body has not been read yet"));
            }
            (Clone::clone(response), None, response.url())
        }
    };
    if !response.ok() {
        return Err(LoaderError::HttpStatus { url, status: response.status() });
    }
    Ok((response, abort, url))
}

/// Start compiling one branch. compileStreaming insists on `application/wasm`, which we
/// state ourselves: the bytes are checked by hash, not by the server's MIME type.
fn compile_branch(branch: ReadableStream) -> Result<Promise, LoaderError> {
    let headers = Object::new();
    let _ = Reflect::set(&headers, &"content-type".into(), &"application/wasm".into());
    let init = ResponseInit::new();
    init.set_headers(&headers);
    let response = Response::new_with_opt_readable_stream_and_init(Some(&branch), &init)
        .map_err(|e| LoaderError::internal("Response from a stream", &e))?;
    let compiling = WebAssembly::compile_streaming(&Promise::resolve(&response).unchecked_into());
    // When we bail out early (hash mismatch, cap) nobody awaits this promise.
    ignore_rejection(&compiling);
    Ok(compiling)
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
