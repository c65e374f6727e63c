//! The dev loop over HTTP. [`router`]: what every page in dev mode uses — `events` (the
//! loop's [`DevEvent`]s as Server-Sent Events, the current state first), `overlay.js` and
//! `overlay.css` (the error overlay and dev notices). [`serve`]: `hotswap dev`'s own
//! server, which adds the registry (`/registry/manifest.json` with ETags,
//! `/registry/modules/<sha256>.wasm`, `/registry/events`: one push per published build),
//! `/dev/config.json` (what a page pins) and the app's static files, behind `guard`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use hotswap_registry::{MANIFEST_FILE, MODULES_DIR};
use tokio::sync::broadcast::error::RecvError;
use tower_http::services::ServeDir;

use super::guard::Guard;
use super::{DevError, DevEvent, DevLoop};
use crate::registry::sha256_hex;

const OVERLAY_JS: &str = include_str!("overlay.js");
const OVERLAY_CSS: &str = include_str!("overlay.css");

/// The routes every dev page uses, to nest where it finds them (`/dev`): `events`,
/// `overlay.js`, `overlay.css`.
pub fn router(dev: Arc<DevLoop>) -> Router {
    Router::new()
        .route("/events", get(dev_events))
        .route("/overlay.js", get(|| async { text("text/javascript; charset=utf-8", OVERLAY_JS) }))
        .route("/overlay.css", get(|| async { text("text/css; charset=utf-8", OVERLAY_CSS) }))
        .with_state(dev)
}

/// Where `hotswap dev` listens, and what else it serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Interface (default 127.0.0.1).
    pub host: String,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// The app's page and scripts, served at `/`.
    pub static_dir: Option<PathBuf>,
    /// Origins of pages served elsewhere (another dev server) that may read the registry
    /// and the events; none by default.
    pub allowed_origins: Vec<String>,
}

/// Serve `dev`'s registry, push and pages until Ctrl-C (or SIGTERM); then stop the loop
/// and any build under way. Listens once the first build has finished, so a page opened
/// then finds a release (or the compile error) at once.
pub async fn serve(dev: Arc<DevLoop>, options: ServeOptions) -> Result<(), DevError> {
    let addr = format!("{}:{}", options.host, options.port);
    let serve_error = |source| DevError::Serve { addr: addr.clone(), source };
    let socket: SocketAddr =
        addr.parse().map_err(|e| serve_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    dev.first_build().await;
    let listener = tokio::net::TcpListener::bind(socket).await.map_err(serve_error)?;
    let bound = listener.local_addr().map_err(serve_error)?;
    let app = standalone(dev.clone(), &options, bound.port());
    println!("hotswap dev: serving http://{bound}/ (registry /registry/manifest.json, push /registry/events, status /dev/events; Ctrl-C stops)");
    let stopping = dev.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop_signal().await;
            println!("hotswap dev: stopping");
            let _ = tokio::task::spawn_blocking(move || stopping.stop()).await;
        })
        .await
        .map_err(serve_error)
}

fn standalone(dev: Arc<DevLoop>, options: &ServeOptions, port: u16) -> Router {
    let registry = Router::new()
        .route("/manifest.json", get(manifest))
        .route("/modules/{file}", get(module))
        .route("/events", get(registry_events))
        .with_state(dev.clone());
    let config = Json(serde_json::json!({
        "manifest": "/registry/manifest.json",
        "push": "/registry/events",
        "keys": dev.public_keys(),
        "events": "/dev/events",
        "overlay": "/dev/overlay.js",
    }));
    let dev_routes = router(dev).route("/config.json", get(move || async move { config }));
    let mut app = Router::new().nest("/registry", registry).nest("/dev", dev_routes);
    if let Some(dir) = &options.static_dir {
        app = app.fallback_service(ServeDir::new(dir));
    }
    let guard = Arc::new(Guard::new(&options.host, port, &options.allowed_origins));
    app.layer(axum::middleware::from_fn_with_state(guard, super::guard::guard))
}

/// Ctrl-C, or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn text(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// The loop's events as JSON, the last one first (a page opened while the build is broken
/// shows the error at once).
async fn dev_events(State(dev): State<Arc<DevLoop>>) -> Response {
    let first = dev.last_event();
    sse(&dev, first, |event| serde_json::to_string(event).ok()).into_response()
}

/// One message per published build: "check the manifest now".
async fn registry_events(State(dev): State<Arc<DevLoop>>) -> Response {
    sse(&dev, None, |event| match event {
        DevEvent::Published { version, .. } => Some(version.clone()),
        _ => None,
    })
    .into_response()
}

/// Server-Sent Events: `first`, then each event `data` maps to a message, until the loop stops.
fn sse(
    dev: &DevLoop,
    first: Option<DevEvent>,
    data: fn(&DevEvent) -> Option<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = first.and_then(|e| data(&e));
    let state = (first, dev.subscribe(), dev.stopped());
    let stream = futures_util::stream::unfold(state, move |(first, mut events, mut stopped)| async move {
        if let Some(message) = first {
            return Some((Ok(Event::default().data(message)), (None, events, stopped)));
        }
        loop {
            if *stopped.borrow() {
                return None;
            }
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => if let Some(message) = data(&event) {
                        return Some((Ok(Event::default().data(message)), (None, events, stopped)));
                    },
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                },
                _ = stopped.changed() => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The manifest as on disk, with an ETag; 304 when the page has it already.
async fn manifest(State(dev): State<Arc<DevLoop>>, headers: HeaderMap) -> Response {
    let Ok(bytes) = tokio::fs::read(dev.registry().join(MANIFEST_FILE)).await else {
        return (StatusCode::NOT_FOUND, "no release yet: the first build has not succeeded").into_response();
    };
    let etag = format!("\"{}\"", &sha256_hex(&bytes)[..16]);
    let cache = [(header::ETAG, etag.clone()), (header::CACHE_CONTROL, "no-cache".to_string())];
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (cache, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// `modules/<sha256>.wasm`, only if the file's bytes hash to that name.
async fn module(State(dev): State<Arc<DevLoop>>, UrlPath(file): UrlPath<String>) -> Response {
    let digest = file
        .strip_suffix(".wasm")
        .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let Some(digest) = digest else { return StatusCode::NOT_FOUND.into_response() };
    let path = dev.registry().join(MODULES_DIR).join(&file);
    match tokio::fs::read(path).await {
        Ok(bytes) if sha256_hex(&bytes) == digest => (
            [
                (header::CONTENT_TYPE, "application/wasm"),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            bytes,
        )
            .into_response(),
        Ok(_) => (StatusCode::INTERNAL_SERVER_ERROR, "module file does not match its digest").into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
