//! `demo-app`: the collaborative editor demo's server.
//!
//! ```text
//! demo-app [--port 8080] [--host 127.0.0.1] [--data <root>/.data] [--root <cwd>]
//! ```
//! `PORT` and `HOTSWAP_DATA` set the port and data directory too. Serves `www/` (the
//! editor), `/pkg` (the loader's npm package), the signed registry (`/registry/manifest.json`
//! with ETags, `/registry/modules/<sha256>.wasm`, `/registry/events`: Server-Sent Events, one
//! per new manifest), `/api/config` (what the page pins), `/fallback/editor.wasm`,
//! `POST /api/deploy` and the `/ws` relay.

mod registry;
mod relay;
mod store;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use tower_http::services::ServeDir;

use crate::registry::{deploy_status, DemoRegistry, GUEST};
use crate::relay::Hub;
use crate::store::UpdateLog;

/// What the handlers share.
struct App {
    hub: Arc<Hub>,
    registry: Arc<DemoRegistry>,
}

struct Args {
    host: String,
    port: u16,
    data: PathBuf,
    root: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let mut args = Args {
        host: "127.0.0.1".into(),
        port: std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080),
        data: std::env::var_os("HOTSWAP_DATA").map(PathBuf::from).unwrap_or_else(|| root.join(".data")),
        root,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--host" => args.host = value()?,
            "--port" => args.port = value()?.parse().map_err(|_| "--port takes a number".to_string())?,
            "--data" => args.data = value()?.into(),
            "--root" => args.root = value()?.into(),
            "--help" | "-h" => return Err("usage: demo-app [--port N] [--host H] [--data DIR] [--root DIR]".into()),
            other => return Err(format!("unknown argument {other} (see --help)")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("demo-app: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    let log = UpdateLog::open(&args.data.join("updates.log")).map_err(|e| format!("opening the update log: {e}"))?;
    let registry = DemoRegistry::open(&args.root.join("target/guests"), &args.data)
        .map_err(|e| format!("preparing the registry (run `npm run build` first): {e}"))?;
    let registry = Arc::new(registry);
    eprintln!("demo-app: {} stored updates in {}", log.records().len(), log.path().display());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(watch_manifest(registry.clone(), shutdown.clone()));
    let app = Arc::new(App { hub: Arc::new(Hub::new(log, shutdown)), registry });
    let app = router(&args, app);
    let addr: SocketAddr = format!("{}:{}", args.host, args.port).parse().map_err(|e| format!("address: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("binding {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    println!("wasm-hotswap demo: open http://{bound}/ in two windows (Ctrl-C stops)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop_signal().await;
            eprintln!("demo-app: shutting down");
            let _ = stop.send(true);
        })
        .await
        .map_err(|e| e.to_string())
}

/// Ctrl-C, or SIGTERM (what `kill` and service managers send).
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn router(args: &Args, app: Arc<App>) -> Router {
    // Pages and the loader revalidate; modules set their own (immutable) caching.
    let no_cache = tower_http::set_header::SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    Router::new()
        .route("/ws", get(websocket))
        .route("/api/config", get(config))
        .route("/api/deploy", post(deploy))
        .route("/registry/manifest.json", get(manifest))
        .route("/registry/events", get(events))
        .route("/registry/modules/{file}", get(module))
        .route("/fallback/editor.wasm", get(fallback))
        .nest_service("/pkg", ServeDir::new(args.root.join("loader/pkg")))
        .fallback_service(ServeDir::new(args.root.join("www")))
        .layer(no_cache)
        .with_state(app)
}

/// Notice changes of the manifest file, whoever made them.
async fn watch_manifest(registry: Arc<DemoRegistry>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(registry::POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => registry.refresh(),
            _ = shutdown.changed() => return,
        }
    }
}

async fn websocket(upgrade: WebSocketUpgrade, State(app): State<Arc<App>>) -> Response {
    let hub = app.hub.clone();
    upgrade.on_upgrade(move |socket| relay::serve(socket, hub))
}

/// What the page pins and where it looks: in a real app these are compiled into its bundle.
async fn config(State(app): State<Arc<App>>) -> Response {
    let fallback = app
        .registry
        .fallback
        .as_ref()
        .map(|(_, sha256)| serde_json::json!({ "url": "/fallback/editor.wasm", "sha256": sha256 }));
    Json(serde_json::json!({
        "guest": GUEST,
        "manifest": "/registry/manifest.json",
        "push": "/registry/events",
        "keys": [app.registry.public_hex],
        "fallback": fallback,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct DeployRequest {
    version: String,
}

async fn deploy(State(app): State<Arc<App>>, Json(request): Json<DeployRequest>) -> Response {
    let registry = app.registry.clone();
    let result = tokio::task::spawn_blocking(move || registry.deploy(&request.version)).await;
    match result {
        Ok(Ok(report)) => {
            eprintln!("demo-app: {report}");
            Json(serde_json::json!({ "report": report })).into_response()
        }
        Ok(Err(e)) => {
            let status = StatusCode::from_u16(deploy_status(&e)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The manifest as on disk, with an ETag; 304 when the page has it already.
async fn manifest(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(served) = app.registry.manifest() else { return (StatusCode::NOT_FOUND, "no manifest").into_response() };
    let etag = [(header::ETAG, served.etag.clone())];
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == served.etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, etag).into_response();
    }
    (etag, [(header::CONTENT_TYPE, "application/json")], served.bytes.to_vec()).into_response()
}

/// One message per new manifest (its ETag). The page's loader treats it as a hint and
/// fetches and verifies the manifest itself.
async fn events(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = app.registry.changes.subscribe();
    let shutdown = app.hub.shutdown.clone();
    let stream = futures_util::stream::unfold((changes, shutdown), |(mut changes, mut shutdown)| async move {
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(etag) => return Some((Ok(Event::default().data(etag)), (changes, shutdown))),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
                _ = shutdown.changed() => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `/registry/modules/<sha256>.wasm`: content-addressed, so immutable and cached for a year.
/// Served as stored: the page checks the digest, the server does not.
async fn module(UrlPath(file): UrlPath<String>, State(app): State<Arc<App>>) -> Response {
    let Some(path) = app.registry.module_path(&file) else { return StatusCode::NOT_FOUND.into_response() };
    match tokio::fs::read(&path).await {
        Ok(bytes) => wasm(bytes, "public, max-age=31536000, immutable"),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The fallback guest the page pins by digest (see `/api/config`).
async fn fallback(State(app): State<Arc<App>>) -> Response {
    match &app.registry.fallback {
        Some((bytes, _)) => wasm(bytes.clone(), "no-cache"),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn wasm(bytes: Vec<u8>, cache: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/wasm"), (header::CACHE_CONTROL, cache)], bytes).into_response()
}
