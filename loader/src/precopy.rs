//! Stage 4a (pre-copy, ABI 1.1): for guests that declare it, the state is converted before
//! the pause and off the main thread, so the pause does not grow with the state.
//!
//! 1. [`Capture`]: the running guest marks its state (`hotswap_delta_mark`) and its memory is
//!    copied, a slice per event-loop turn, into a buffer whose pages were touched beforehand.
//!    A guest call that arrives before the copy is complete completes it first, so the copy
//!    is always the memory as it was at the mark.
//! 2. [`Converter::convert`]: a worker instantiates the running guest's module on that copy,
//!    saves the state (`state_save`), instantiates the new module and loads it (`state_load`),
//!    and sends back a copy of the new guest's memory. However long automerge takes to load a
//!    document, it takes it there.
//!    It also runs the code the pause may need (`hotswap_warm` of the new guest, the old
//!    guest's `delta_mark` and `delta_save`) there: compiled code is shared with the page, so
//!    nothing runs cold on the main thread because of the swap.
//! 3. [`install`]: the copy goes into the new instance on the main thread, a slice per turn.
//! 4. The pause (`commit.rs`) asks the running guest for what changed since the mark
//!    (`hotswap_delta_save`). Usually nothing: then it only rebinds. Otherwise the changes go
//!    to the worker ([`Converter::apply`]), the new copy is installed, and the pause is tried
//!    again; after [`ROUNDS`] tries the last changes are applied inside the pause.
//!
//! Both guests promise that their whole state lives in their memory (ABI.md), which is what
//! makes a copy of the memory a copy of the guest. Guests that import `app` functions are not
//! pre-copied (the worker cannot call the page), nor is anything when the page forbids
//! workers from `blob:` URLs (a Content-Security-Policy without `worker-src blob:`): those
//! swaps take the ABI 1.0 path.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, ArrayBuffer, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::{js_message, LoaderError};
use crate::instance::{buffer_bytes, GuestInstance};
use crate::queue::{next_task, settle_within, GaveUp};
use crate::version::CompiledVersion;
use crate::worker::{message as object, BlobWorker};

/// How many times the pause is tried before the last changes are applied inside it.
pub(crate) const ROUNDS: u32 = 8;

/// The largest memory pre-copied: its copies cross to the worker and back as `ArrayBuffer`s,
/// which Chromium refuses to post near 2 GiB. A larger guest takes the ABI 1.0 path.
pub(crate) const LARGEST_MEMORY: u64 = 1 << 30;

/// Memory is touched and copied in slices of this size, one per event-loop turn: a couple of
/// ms each, into pages never used before (~0.7 ms per MiB).
const SLICE: u32 = 1 << 20;

/// The worker's code. It runs guest code only on copies of guest memories it is sent, with
/// the host functions the loader provides (`log` is dropped: the conversion is the loader's).
const WORKER_SOURCE: &str = r#"
let target = null;
const unpack = (p) => [Number(BigInt.asUintN(64, p) >> 32n), Number(BigInt.asUintN(32, p))];
function fail(phase, e) { return { phase, trap: e instanceof WebAssembly.RuntimeError, message: String((e && e.message) || e) }; }
function call(phase, f, ...args) { try { return f(...args); } catch (e) { throw fail(phase, e); } }
async function instantiate(phase, module, image, length) {
  let memory = null;
  const hotswap = {
    log() {},
    now_ms: () => Date.now(),
    random_fill(ptr, len) {
      if (!memory) throw new Error("random_fill: the guest's memory is not reachable from a start function (docs/ABI.md)");
      for (let o = 0; o < len; o += 65536) crypto.getRandomValues(new Uint8Array(memory.buffer, ptr + o, Math.min(65536, len - o)));
    },
  };
  let exports;
  try { exports = (await WebAssembly.instantiate(module, { hotswap })).exports; } catch (e) { throw fail(phase, e); }
  memory = exports.memory;
  if (image) {
    const missing = length - memory.buffer.byteLength;
    if (missing > 0) memory.grow(Math.ceil(missing / 65536));
    new Uint8Array(memory.buffer).set(new Uint8Array(image, 0, length));
  }
  return exports;
}
// The same checks as on the main thread, with the same codes (see worker_error).
function inside(phase, exports, ptr, len) {
  const size = exports.memory.buffer.byteLength;
  if (ptr + len > size) throw { phase, outOfBounds: { ptr, len, size } };
}
function load(exports, f, phase, bytes, schema) {
  const ptr = call('alloc', exports.hotswap_alloc, bytes.length) >>> 0;
  if (ptr === 0 && bytes.length > 0) throw { phase: 'alloc', allocFailed: bytes.length };
  inside('alloc', exports, ptr, bytes.length);
  new Uint8Array(exports.memory.buffer, ptr, bytes.length).set(bytes);
  const status = call(phase, f, ptr, bytes.length, schema);
  call('free', exports.hotswap_free, ptr, bytes.length);
  if (status !== 0) throw { phase, status };
}
onmessage = async ({ data }) => {
  try {
    if (data.op === 'ping') { postMessage({ pong: true }); return; }
    if (data.op === 'reset') { target = null; return; }
    // A copy this worker made, handed back once installed: freed here, not on the page.
    if (data.op === 'discard') return;
    if (data.op === 'convert') {
      const from = await instantiate('precopy instantiate', data.from, data.image, data.length);
      const [ptr, len] = unpack(call('precopy save', from.hotswap_state_save, data.schema));
      inside('precopy save', from, ptr, len);
      if (len > data.maxState) throw { phase: 'precopy save', tooLarge: { len, limit: data.maxState } };
      const state = new Uint8Array(from.memory.buffer, ptr, len).slice();
      // Compile the old guest's delta path here rather than in the pause.
      call('precopy warm', from.hotswap_delta_mark);
      call('precopy warm', from.hotswap_delta_save, data.schema);
      target = await instantiate('precopy instantiate', data.to, null, 0);
      if (target.hotswap_warm) call('warm', target.hotswap_warm);
      load(target, target.hotswap_state_load, 'precopy load', state, data.schema);
    } else {
      load(target, target.hotswap_delta_load, 'precopy delta', new Uint8Array(data.delta), data.schema);
    }
    const image = target.memory.buffer.slice(0);
    postMessage({ image }, [image]);
  } catch (e) {
    postMessage({ error: e && e.phase ? e : fail('precopy', e) });
  }
};
"#;

/// How long a new worker may take to answer its first message before the page is taken not
/// to run it: then the swap takes the ABI 1.0 path.
const START_MS: f64 = 5_000.0;

/// The worker that converts state off the main thread, one request at a time.
pub(crate) struct Converter {
    worker: BlobWorker,
    reply: Rc<RefCell<Option<Function>>>,
    /// Terminated after a request was given up (the guest code in it may never return): the
    /// slot starts a new worker for the next swap.
    stopped: std::cell::Cell<bool>,
    /// `limits.maxStateBytes`: the worker refuses a larger state, as the pause would.
    max_state: u64,
}

/// When a request to the worker is given up: the swap's abort signal fires, or the deadline
/// passes (guest code that never returns runs there, on copies, out of the page's sight).
#[derive(Debug)]
pub(crate) struct GiveUp<'a> {
    /// The swap's abort signal.
    pub signal: Option<&'a web_sys::AbortSignal>,
    /// Milliseconds the worker may take to answer (`limits.precopyTimeoutMs`).
    pub after_ms: f64,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter").field("worker", &self.worker).finish_non_exhaustive()
    }
}

impl Converter {
    /// Start the worker; an error when the page has no `Worker`. Whether it runs is known
    /// from [`Converter::usable`].
    pub(crate) fn start(max_state: u64) -> Result<Self, LoaderError> {
        let reply: Rc<RefCell<Option<Function>>> = Rc::default();
        let answer = |reply: &Rc<RefCell<Option<Function>>>, data: &JsValue| {
            if let Some(resolve) = reply.borrow_mut().take() {
                let _ = resolve.call1(&JsValue::UNDEFINED, data);
            }
        };
        let (for_message, for_failure) = (reply.clone(), reply.clone());
        let on_message = move |data: JsValue| answer(&for_message, &data);
        // A request under way fails now rather than at its deadline.
        let on_failure = move || {
            let error = object(&[("phase", "worker".into()), ("message", "the pre-copy worker stopped".into())]);
            answer(&for_failure, &object(&[("error", error.into())]));
        };
        let worker = BlobWorker::start(WORKER_SOURCE, on_message, on_failure)
            .map_err(|e| LoaderError::internal("starting the pre-copy worker", &e))?;
        let _ = worker.worker.post_message(&object(&[("op", "ping".into())]));
        Ok(Self { worker, reply, stopped: std::cell::Cell::new(false), max_state })
    }

    /// Whether the worker runs: it answered its first message. Not when the page refuses it
    /// (a Content-Security-Policy without `worker-src blob:` reports that as an error event,
    /// after the worker was constructed) or it stays silent for [`START_MS`].
    pub(crate) async fn usable(&self, signal: Option<&web_sys::AbortSignal>) -> Result<bool, LoaderError> {
        if self.worker.answered() || self.worker.failed() {
            return Ok(self.worker.answered() && !self.worker.failed());
        }
        let pong = Promise::new(&mut |resolve, _| *self.reply.borrow_mut() = Some(resolve));
        match settle_within(pong, Some(START_MS), signal).await {
            Err(GaveUp::Aborted(reason)) => Err(LoaderError::Aborted { reason: js_message(&reason) }),
            Ok(Ok(answer)) => Ok(Reflect::has(&answer, &"pong".into()).unwrap_or(false)),
            Ok(Err(_)) | Err(GaveUp::Expired) => {
                self.reply.borrow_mut().take();
                Ok(false)
            }
        }
    }

    /// Whether the page refused the worker: it failed before it ever answered (a CSP).
    pub(crate) fn refused(&self) -> bool {
        self.worker.failed() && !self.worker.answered()
    }

    /// Whether the worker was terminated after a request was given up, or died.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.get() || self.worker.failed()
    }

    /// Convert the state of `from`, whose memory copy is `image` (`length` bytes of it), into
    /// a new instance of `to`, through `schema`; the copy of that instance's memory.
    pub(crate) async fn convert(
        &self,
        from: &CompiledVersion,
        image: ArrayBuffer,
        length: u32,
        to: &CompiledVersion,
        schema: u32,
        give_up: &GiveUp<'_>,
    ) -> Result<ArrayBuffer, LoaderError> {
        let message = object(&[
            ("op", "convert".into()),
            ("from", from.module.clone().into()),
            ("to", to.module.clone().into()),
            ("image", image.clone().into()),
            ("length", length.into()),
            ("schema", schema.into()),
            ("maxState", (self.max_state as f64).into()),
        ]);
        self.request(&message, &[image.into()], give_up).await
    }

    /// Apply `delta` (what changed since the copy) to the converted instance; its new copy.
    pub(crate) async fn apply(
        &self,
        delta: Uint8Array,
        schema: u32,
        give_up: &GiveUp<'_>,
    ) -> Result<ArrayBuffer, LoaderError> {
        let buffer = delta.buffer();
        let message = object(&[("op", "delta".into()), ("delta", buffer.clone().into()), ("schema", schema.into())]);
        self.request(&message, &[buffer.into()], give_up).await
    }

    /// Put `image`, a copy this worker made, into `instance` (see [`install`]), then hand it
    /// back: the page would free it at its next collection, and the kernel's unmapping of a
    /// copy of the editor's memory at 100,000 changes blocked the page for 20-30 ms.
    pub(crate) async fn install(&self, instance: &GuestInstance, image: ArrayBuffer) -> Result<(), LoaderError> {
        let installed = install(instance, &image).await;
        self.discard(image);
        installed
    }

    /// Hand `image`, a copy this worker made, back to it to be freed there (see
    /// [`Converter::install`]); also when a swap is cancelled before installing it.
    pub(crate) fn discard(&self, image: ArrayBuffer) {
        let message = object(&[("op", "discard".into()), ("image", image.clone().into())]);
        let transfer: Array = [JsValue::from(image)].into_iter().collect();
        let _ = self.worker.worker.post_message_with_transfer(&message, &transfer);
    }

    /// Let the worker drop its instance.
    pub(crate) fn reset(&self) {
        let _ = self.worker.worker.post_message(&object(&[("op", "reset".into())]));
    }

    async fn request(
        &self,
        message: &Object,
        transfer: &[JsValue],
        give_up: &GiveUp<'_>,
    ) -> Result<ArrayBuffer, LoaderError> {
        let reply = Promise::new(&mut |resolve, _| *self.reply.borrow_mut() = Some(resolve));
        let transfer: Array = transfer.iter().collect();
        self.worker
            .worker
            .post_message_with_transfer(message, &transfer)
            .map_err(|e| LoaderError::PrecopyFailed { phase: "precopy post".into(), message: js_message(&e) })?;
        let answer = match settle_within(reply, Some(give_up.after_ms), give_up.signal).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(LoaderError::internal("the pre-copy worker", &e)),
            Err(why) => return Err(self.give_up(why, give_up)),
        };
        match Reflect::get(&answer, &"image".into()).ok().and_then(|i| i.dyn_into::<ArrayBuffer>().ok()) {
            // The new guest grew its memory in the worker past what installing can copy.
            Some(image) if buffer_bytes(&image) > LARGEST_MEMORY => {
                Err(too_large("precopy install", buffer_bytes(&image)))
            }
            Some(image) => Ok(image),
            None => Err(worker_error(&Reflect::get(&answer, &"error".into()).unwrap_or_default())),
        }
    }

    /// Stop the worker, whatever guest code it is running, and say why.
    fn give_up(&self, why: GaveUp, give_up: &GiveUp<'_>) -> LoaderError {
        self.worker.worker.terminate();
        self.stopped.set(true);
        self.reply.borrow_mut().take();
        match why {
            GaveUp::Aborted(reason) => LoaderError::Aborted { reason: js_message(&reason) },
            GaveUp::Expired => LoaderError::PrecopyFailed {
                phase: "timeout".into(),
                message: format!(
                    "the pre-copy worker did not answer within {} ms (guest code that never returns?)",
                    give_up.after_ms as u64
                ),
            },
        }
    }
}

/// What the worker reported, as the error the same failure on the main thread would be.
fn worker_error(error: &JsValue) -> LoaderError {
    let text = |key: &str| Reflect::get(error, &key.into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
    let status = Reflect::get(error, &"status".into()).ok().and_then(|v| v.as_f64());
    let trap = Reflect::get(error, &"trap".into()).map(|v| v.is_truthy()).unwrap_or(false);
    let number = |object: &JsValue, key: &str| Reflect::get(object, &key.into()).ok().and_then(|v| v.as_f64());
    let detail = |key: &str| Reflect::get(error, &key.into()).ok().filter(|v| v.is_object());
    if let Some(bounds) = detail("outOfBounds") {
        let (ptr, len) = (number(&bounds, "ptr").unwrap_or(0.0) as u32, number(&bounds, "len").unwrap_or(0.0) as u32);
        let memory_bytes = number(&bounds, "size").unwrap_or(0.0) as u64;
        return LoaderError::OutOfBounds { phase: text("phase"), ptr, len, memory_bytes };
    }
    if let Some(large) = detail("tooLarge") {
        let (actual, limit) =
            (number(&large, "len").unwrap_or(0.0) as u64, number(&large, "limit").unwrap_or(0.0) as u64);
        return LoaderError::StateTooLarge { limit, actual };
    }
    if let Some(len) = number(error, "allocFailed") {
        return LoaderError::AllocFailed { len: len as u32 };
    }
    match (status, trap) {
        (Some(status), _) => LoaderError::StateLoadRejected { status: status as i32, detail: None },
        (None, true) => LoaderError::GuestTrap { phase: text("phase"), message: text("message"), rolled_back: false },
        (None, false) => LoaderError::PrecopyFailed { phase: text("phase"), message: text("message") },
    }
}

/// A copy of the running guest's memory, made a slice at a time. The slot routes every call
/// to the guest through [`Capture::complete`] while one is under way: no guest code runs
/// between two slices, so the copy is the memory as it was at the mark.
#[derive(Debug)]
pub(crate) struct Capture {
    instance: Rc<GuestInstance>,
    buffer: ArrayBuffer,
    length: u32,
    copied: std::cell::Cell<u32>,
}

impl Capture {
    /// Mark the guest's state; copying starts with [`Capture::step`].
    pub(crate) async fn start(instance: &Rc<GuestInstance>) -> Result<Self, LoaderError> {
        let size = capturable(instance)?;
        // Headroom for memory the guest grows while the pages are touched.
        let buffer = touched(size.saturating_add(size / 8).max(SLICE)).await?;
        instance.delta_mark()?;
        let length = capturable(instance)?;
        if length > buffer.byte_length() {
            // It grew past the headroom: copy into fresh pages now (slower, in one step).
            let whole = instance.view().slice(0, length).buffer();
            return Ok(Self { instance: instance.clone(), buffer: whole, length, copied: length.into() });
        }
        Ok(Self { instance: instance.clone(), buffer, length, copied: 0.into() })
    }

    /// Copy the next slice; true once everything is copied.
    pub(crate) fn step(&self) -> bool {
        self.copy_until(self.copied.get().saturating_add(SLICE));
        self.copied.get() >= self.length
    }

    /// Copy all that is left: a call to the guest is about to run.
    pub(crate) fn complete(&self) {
        self.copy_until(self.length);
    }

    fn copy_until(&self, end: u32) {
        let (start, end) = (self.copied.get(), end.min(self.length));
        if start < end {
            Uint8Array::new(&self.buffer).set(&self.instance.view().subarray(start, end), start);
            self.copied.set(end);
        }
    }

    /// The copy, and how much of it is the memory.
    pub(crate) fn image(&self) -> (ArrayBuffer, u32) {
        (self.buffer.clone(), self.length)
    }
}

/// The size of `instance`'s memory, unless it grew past [`LARGEST_MEMORY`] since the swap
/// chose pre-copy.
fn capturable(instance: &GuestInstance) -> Result<u32, LoaderError> {
    let size = instance.memory_bytes();
    match u32::try_from(size) {
        Ok(size) if u64::from(size) <= LARGEST_MEMORY => Ok(size),
        _ => Err(too_large("precopy capture", size)),
    }
}

fn too_large(phase: &str, size: u64) -> LoaderError {
    LoaderError::PrecopyFailed {
        phase: phase.into(),
        message: format!("a memory of {size} bytes is over the {LARGEST_MEMORY} bytes pre-copy moves"),
    }
}

/// Put `image` (a copy from the worker) into `instance`, a fresh instance of the module it
/// was taken from, a slice per event-loop turn. Nothing calls `instance` meanwhile.
async fn install(instance: &GuestInstance, image: &ArrayBuffer) -> Result<(), LoaderError> {
    let length = image.byte_length();
    let missing = u64::from(length).saturating_sub(instance.memory_bytes());
    if missing > 0 {
        // Through Reflect: a refused grow (over the memory's maximum) throws a RangeError,
        // which must become an error, not an abort.
        let memory: &JsValue = instance.memory().as_ref();
        let grow: Function =
            Reflect::get(memory, &"grow".into()).and_then(JsCast::dyn_into).map_err(|e| internal(&e))?;
        grow.call1(memory, &JsValue::from_f64(missing.div_ceil(65_536) as f64))
            .map_err(|e| LoaderError::PrecopyFailed { phase: "precopy install".into(), message: js_message(&e) })?;
    }
    let source = Uint8Array::new(image);
    for start in (0..length).step_by(SLICE as usize) {
        let end = length.min(start + SLICE);
        // A fresh view each slice: memory must not be held across a turn.
        instance.view().set(&source.subarray(start, end), start);
        next_task().await;
    }
    Ok(())
}

/// A buffer of `size` bytes whose pages are all mapped, so a copy into it costs ~0.05 ms per
/// MiB instead of ~0.7. Touched a slice per event-loop turn.
async fn touched(size: u32) -> Result<ArrayBuffer, LoaderError> {
    let buffer = ArrayBuffer::new(size);
    let view = Uint8Array::new(&buffer);
    for start in (0..size).step_by(SLICE as usize) {
        view.fill(0, start, size.min(start + SLICE));
        next_task().await;
    }
    Ok(buffer)
}

fn internal(e: &JsValue) -> LoaderError {
    LoaderError::internal("pre-copy", e)
}
