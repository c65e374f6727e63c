//! Workers the loader starts from its own code, through a `blob:` URL: the pre-copy converter
//! and the hasher. Nothing else runs in them.
//!
//! `new Worker(blobUrl)` succeeds even where a Content-Security-Policy forbids `blob:`
//! workers: the refusal arrives later, as an `error` event, and messages posted meanwhile are
//! lost. So a worker is only relied on once it has answered a message ([`BlobWorker::answered`]),
//! and its owner hears of a failure at once rather than waiting out a deadline.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use web_sys::{Blob, BlobPropertyBag, MessageEvent, Url, Worker};

/// A worker running `source`; terminated, and its URL revoked, when dropped.
pub(crate) struct BlobWorker {
    /// The worker.
    pub worker: Worker,
    url: String,
    answered: Rc<Cell<bool>>,
    failed: Rc<Cell<bool>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
}

impl std::fmt::Debug for BlobWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWorker").field("url", &self.url).field("failed", &self.failed.get()).finish()
    }
}

impl BlobWorker {
    /// Start a worker running `source`, passing what it posts to `on_message`; `on_failure`
    /// runs when its script cannot load (a CSP) or throws. An error when the page cannot
    /// construct one at all (no `Worker`).
    pub(crate) fn start(
        source: &str,
        mut on_message: impl FnMut(JsValue) + 'static,
        mut on_failure: impl FnMut() + 'static,
    ) -> Result<Self, JsValue> {
        let options = BlobPropertyBag::new();
        options.set_type("text/javascript");
        let parts: Array = [JsValue::from_str(source)].into_iter().collect();
        let blob = Blob::new_with_str_sequence_and_options(&parts, &options)?;
        let url = Url::create_object_url_with_blob(&blob)?;
        let worker = match Worker::new(&url) {
            Ok(worker) => worker,
            Err(e) => {
                let _ = Url::revoke_object_url(&url);
                return Err(e);
            }
        };
        let (answered, failed) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
        let heard = answered.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            heard.set(true);
            on_message(event.data());
        });
        let broke = failed.clone();
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
            broke.set(true);
            on_failure();
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self { worker, url, answered, failed, _on_message: on_message, _on_error: on_error })
    }

    /// It has answered a message: its script runs.
    pub(crate) fn answered(&self) -> bool {
        self.answered.get()
    }

    /// Its script could not load or threw.
    pub(crate) fn failed(&self) -> bool {
        self.failed.get()
    }
}

impl Drop for BlobWorker {
    fn drop(&mut self) {
        // The handlers are freed next: no event may reach them after this.
        self.worker.set_onmessage(None);
        self.worker.set_onerror(None);
        self.worker.terminate();
        let _ = Url::revoke_object_url(&self.url);
    }
}

/// A plain object with these fields: a message to a worker.
pub(crate) fn message(fields: &[(&str, JsValue)]) -> Object {
    let object = Object::new();
    for (key, value) in fields {
        let _ = Reflect::set(&object, &(*key).into(), value);
    }
    object
}
