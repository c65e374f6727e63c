//! Workers the loader starts from its own code, through a `blob:` URL: the pre-copy converter
//! and the hasher. Nothing else runs in them.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::JsValue;
use web_sys::{Blob, BlobPropertyBag, Url, Worker};

/// A worker running `source`; terminated, and its URL revoked, when dropped.
#[derive(Debug)]
pub(crate) struct BlobWorker {
    /// The worker.
    pub worker: Worker,
    url: String,
}

impl BlobWorker {
    /// Start a worker running `source`: an error when the page cannot run one (no `Worker`,
    /// or a Content-Security-Policy that forbids `blob:` workers and says so at once).
    pub(crate) fn start(source: &str) -> Result<Self, JsValue> {
        let options = BlobPropertyBag::new();
        options.set_type("text/javascript");
        let parts: Array = [JsValue::from_str(source)].into_iter().collect();
        let blob = Blob::new_with_str_sequence_and_options(&parts, &options)?;
        let url = Url::create_object_url_with_blob(&blob)?;
        match Worker::new(&url) {
            Ok(worker) => Ok(Self { worker, url }),
            Err(e) => {
                let _ = Url::revoke_object_url(&url);
                Err(e)
            }
        }
    }
}

impl Drop for BlobWorker {
    fn drop(&mut self) {
        // Its owner's handlers are freed next: no event may reach them after this.
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
