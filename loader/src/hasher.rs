//! Stage 1 (verify): SHA-256 of a module's bytes in a worker, by WebCrypto there.
//!
//! `crypto.subtle.digest` hashes on the thread that calls it: in Chromium a 2 MB module
//! blocked the page for ~4.5 ms (~70 ms at the 32 MiB default cap) while the compiler
//! worked on other threads. The page hands the bytes over instead — a transfer, no copy —
//! and keeps the 32 bytes that come back; a load or swap takes as long as before. One worker per page, started
//! once a first version runs and kept for the downloads after it. Until it is up, where it
//! cannot run, or when it does not answer, the caller hashes on the page.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, ArrayBuffer, Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

use crate::digest::Digest;
use crate::error::{js_message, LoaderError};
use crate::queue::{global_fn, settle_within, GaveUp};
use crate::worker::{message, BlobWorker};

/// The worker's code: a digest per request, or `null` when WebCrypto refuses.
const WORKER_SOURCE: &str = r#"
onmessage = async ({ data: { id, bytes } }) => {
  let digest = null;
  try { digest = await crypto.subtle.digest("SHA-256", bytes); } catch (e) {}
  postMessage({ id, digest });
};
"#;

/// Longest wait for a digest, plus 1 ms per 10 KB, before the page hashes the bytes itself
/// (and stops using the worker).
const DEADLINE_MS: f64 = 5_000.0;

/// The page's hashing worker.
pub(crate) struct Hasher {
    worker: BlobWorker,
    /// Requests not answered yet: few at a time (one per slot swapping).
    waiting: Rc<RefCell<Vec<(u32, Function)>>>,
    next_id: Cell<u32>,
    /// It did not answer in time, or WebCrypto refused there.
    broken: Cell<bool>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("worker", &self.worker).finish_non_exhaustive()
    }
}

/// The page's hasher, once it was looked for.
enum Shared {
    NotStarted,
    Running(Rc<Hasher>),
    /// No worker here, or it failed once: the page hashes.
    Unavailable,
}

thread_local! {
    static SHARED: RefCell<Shared> = const { RefCell::new(Shared::NotStarted) };
}

impl Hasher {
    /// The page's hasher, if it is up; see [`Hasher::start_in_background`]. `None` where
    /// there is no `Worker` (Node), no WebCrypto (outside a secure context), or the worker
    /// failed before.
    pub(crate) fn ready() -> Option<Rc<Hasher>> {
        SHARED.with(|shared| {
            let mut shared = shared.borrow_mut();
            match &*shared {
                Shared::Running(hasher) if hasher.broken.get() || hasher.worker.failed() => {
                    *shared = Shared::Unavailable;
                }
                // Until its first answer it may still be refused (a CSP).
                Shared::Running(hasher) => return hasher.worker.answered().then(|| hasher.clone()),
                Shared::NotStarted | Shared::Unavailable => {}
            }
            None
        })
    }

    /// Start the page's hasher for the downloads to come, unless it was started before.
    /// Called once a first version runs: a worker starting while a page's first module
    /// downloads and compiles slowed that load by 6-15 ms on a 2-core machine, and a page's
    /// first load is not when its user is typing.
    pub(crate) fn start_in_background() {
        SHARED.with(|shared| {
            let mut shared = shared.borrow_mut();
            if matches!(*shared, Shared::NotStarted) {
                let available = global_fn("Worker").is_some() && has_web_crypto();
                *shared = match available.then(Hasher::spawn).flatten() {
                    Some(hasher) => Shared::Running(Rc::new(hasher)),
                    None => Shared::Unavailable,
                };
            }
        });
    }

    fn spawn() -> Option<Self> {
        let waiting: Rc<RefCell<Vec<(u32, Function)>>> = Rc::default();
        let for_message = waiting.clone();
        let on_message = move |data: JsValue| {
            let id = Reflect::get(&data, &"id".into()).ok().and_then(|v| v.as_f64());
            if let Some(resolve) = id.and_then(|id| take_waiting(&for_message, id as u32)) {
                let digest = Reflect::get(&data, &"digest".into()).unwrap_or(JsValue::NULL);
                let _ = resolve.call1(&JsValue::UNDEFINED, &digest);
            }
        };
        // Every request waiting falls back to the page, and so do later ones.
        let for_failure = waiting.clone();
        let on_failure = move || {
            for (_, resolve) in for_failure.borrow_mut().drain(..) {
                let _ = resolve.call1(&JsValue::UNDEFINED, &JsValue::NULL);
            }
        };
        let worker = BlobWorker::start(WORKER_SOURCE, on_message, on_failure).ok()?;
        // Id 0, answered with a digest of nothing once the worker runs.
        let ping = message(&[("id", 0.into()), ("bytes", Uint8Array::new_with_length(0).into())]);
        worker.worker.post_message(&ping).ok()?;
        Some(Self { worker, waiting, next_id: Cell::new(0), broken: Cell::new(false) })
    }

    /// SHA-256 of `bytes`, whose buffer moves to the worker (it is detached here, and must
    /// be the whole of its buffer). `Ok(None)` if the worker could not answer (it is not
    /// asked again): the caller then hashes another copy of the bytes on the page. `signal`
    /// (a swap's) stops the wait.
    pub(crate) async fn sha256(
        &self,
        bytes: Uint8Array,
        signal: Option<&web_sys::AbortSignal>,
    ) -> Result<Option<Digest>, LoaderError> {
        let id = self.next_id.get().wrapping_add(1).max(1);
        self.next_id.set(id);
        let answer = Promise::new(&mut |resolve, _| {
            self.waiting.borrow_mut().push((id, resolve));
        });
        // WebCrypto hashes hundreds of MB/s even on a phone: far more time than that is a
        // worker that will not answer.
        let deadline_ms = DEADLINE_MS + f64::from(bytes.length()) / 10_000.0;
        let request = message(&[("id", id.into()), ("bytes", bytes.clone().into())]);
        let transfer: Array = [JsValue::from(bytes.buffer())].into_iter().collect();
        if self.worker.worker.post_message_with_transfer(&request, &transfer).is_err() {
            take_waiting(&self.waiting, id);
            return Ok(None);
        }
        let answer = settle_within(answer, Some(deadline_ms), signal).await;
        if answer.is_err() {
            take_waiting(&self.waiting, id);
        }
        let digest = match answer {
            Ok(Ok(digest)) => digest_bytes(&digest),
            Err(GaveUp::Aborted(reason)) => return Err(LoaderError::Aborted { reason: js_message(&reason) }),
            Ok(Err(_)) | Err(GaveUp::Expired) => None,
        };
        // No answer, or WebCrypto refused there: the page hashes from now on.
        self.broken.set(self.broken.get() || digest.is_none());
        Ok(digest)
    }
}

/// The 32 bytes of a digest the worker sent, if that is what it sent.
fn digest_bytes(answer: &JsValue) -> Option<Digest> {
    let digest = Uint8Array::new(&answer.clone().dyn_into::<ArrayBuffer>().ok()?.into());
    let mut out = [0u8; 32];
    (digest.length() == 32).then(|| digest.copy_to(&mut out))?;
    Some(Digest(out))
}

/// The resolver of request `id`, no longer waiting.
fn take_waiting(waiting: &RefCell<Vec<(u32, Function)>>, id: u32) -> Option<Function> {
    let mut waiting = waiting.borrow_mut();
    let at = waiting.iter().position(|(waiting_id, _)| *waiting_id == id)?;
    Some(waiting.swap_remove(at).1)
}

/// Whether the page has `crypto.subtle` (secure contexts only): a worker it starts has it too.
pub(crate) fn has_web_crypto() -> bool {
    Reflect::get(&js_sys::global(), &"crypto".into())
        .ok()
        .filter(|c| c.is_object())
        .and_then(|c| Reflect::get(&c, &"subtle".into()).ok())
        .is_some_and(|s| s.is_object())
}
