//! `demo-app`: the collaborative editor demo's server.
//!
//! ```text
//! demo-app [--port 8080] [--host 127.0.0.1] [--data <root>/.data] [--root <cwd>]
//!          [--allowed-host NAME:PORT]... [--allowed-origin URL]...
//!          [--dev <guest crate> [--dev-features F] [--dev-rustflags R] [--dev-target-dir D]]
//! ```
//! `PORT`, `HOTSWAP_DATA`, `HOTSWAP_ALLOWED_HOSTS` and `HOTSWAP_ALLOWED_ORIGINS` (comma
//! separated) set them too. Serves `www/` (the editor), `/pkg` (the loader's npm package),
//! the signed registry (`/registry/manifest.json` with ETags,
//! `/registry/modules/<sha256>.wasm`, `/registry/events`: Server-Sent Events, one per new
//! manifest), `/api/config` (what the page pins), `/fallback/editor.wasm`,
//! `POST /api/deploy` (with the deploy credential) and the `/ws` relay. See
//! [`security`] for who may talk to it. With `--dev`, the registry is the dev registry,
//! fed by the dev loop (see [`dev`]).

mod dev;
mod document;
mod limits;
mod registry;
mod relay;
mod security;
mod store;
#[cfg(test)]
mod tests;

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

use hotswap_cli::dev::DevLoop;

use crate::dev::DevArgs;
use crate::registry::{deploy_refusal, DemoRegistry, ModuleRefusal, GUEST};
use crate::relay::Hub;
use crate::security::{DeployToken, Gate};
use crate::store::UpdateLog;

/// What the handlers share.
struct App {
    hub: Arc<Hub>,
    registry: Arc<DemoRegistry>,
    gate: Arc<Gate>,
    token: DeployToken,
    /// The registry's URL path: `/registry`, or `/dev/registry` in dev mode.
    registry_url: &'static str,
    /// The dev loop (`--dev`).
    dev: Option<Arc<DevLoop>>,
}

struct Args {
    host: String,
    port: u16,
    data: PathBuf,
    root: PathBuf,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    dev: Option<DevArgs>,
}

const USAGE: &str = "usage: demo-app [--port N] [--host H] [--data DIR] [--root DIR] [--allowed-host NAME:PORT]... [--allowed-origin URL]... [--dev CRATE_DIR [--dev-features F] [--dev-rustflags R] [--dev-target-dir D] [--dev-debounce-ms N]]";

fn parse_args() -> Result<Args, String> {
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let list = |var: &str| -> Vec<String> {
        std::env::var(var).map(|v| v.split(',').map(str::to_string).collect()).unwrap_or_default()
    };
    let mut args = Args {
        host: "127.0.0.1".into(),
        port: std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080),
        data: std::env::var_os("HOTSWAP_DATA").map(PathBuf::from).unwrap_or_else(|| root.join(".data")),
        root,
        allowed_hosts: list("HOTSWAP_ALLOWED_HOSTS"),
        allowed_origins: list("HOTSWAP_ALLOWED_ORIGINS"),
        dev: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--host" => args.host = value()?,
            "--port" => args.port = value()?.parse().map_err(|_| "--port takes a number".to_string())?,
            "--data" => args.data = value()?.into(),
            "--root" => args.root = value()?.into(),
            "--allowed-host" => args.allowed_hosts.push(value()?),
            "--allowed-origin" => args.allowed_origins.push(value()?),
            dev if DevArgs::FLAGS.contains(&dev) => args.dev.get_or_insert_with(DevArgs::default).set(dev, value()?)?,
            "--help" | "-h" => return Err(USAGE.into()),
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
    let addr: SocketAddr = format!("{}:{}", args.host, args.port).parse().map_err(|e| format!("address: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("binding {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let app = prepare(&args, bound.port(), shutdown)?;
    let token = &app.token;
    let url = format!("http://{bound}");
    if token.created {
        println!(
            "wasm-hotswap demo: deploy link (shown once; the credential is kept in {}): {url}/#deploy={}",
            token.path.display(),
            token.reveal()
        );
    }
    let url_file = args.data.join("server-url");
    if let Err(e) = std::fs::write(&url_file, format!("{url}\n")) {
        eprintln!("demo-app: writing {}: {e}", url_file.display());
    }
    let dev = app.dev.clone();
    let app = router(&args, app);
    println!("wasm-hotswap demo: open {url}/ in two windows (Ctrl-C stops)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop_signal().await;
            eprintln!("demo-app: shutting down");
            let _ = stop.send(true);
            if let Some(dev) = dev {
                // Stops the watcher and the build under way (cargo and rustc) before exiting.
                let _ = tokio::task::spawn_blocking(move || dev.stop()).await;
            }
        })
        .await
        .map_err(|e| e.to_string())
}

/// Everything the server needs, from its data directory, for a server on `port`.
fn prepare(args: &Args, port: u16, shutdown: tokio::sync::watch::Receiver<bool>) -> Result<Arc<App>, String> {
    let log = UpdateLog::open(&args.data.join("updates.log")).map_err(|e| format!("opening the update log: {e}"))?;
    let home = if args.dev.is_some() { dev::home(&args.data) } else { args.data.clone() };
    let registry = DemoRegistry::open(&args.root.join("target/guests"), &home, &args.data.join("keys"))
        .map_err(|e| format!("preparing the registry (run `npm run build` first): {e}"))?;
    let registry = Arc::new(registry);
    let dev = args.dev.as_ref().map(|d| dev::start(d, registry.clone())).transpose()?;
    let registry_url = if dev.is_some() { dev::REGISTRY_URL } else { "/registry" };
    let token = DeployToken::open(&args.data).map_err(|e| format!("preparing the deploy credential: {e}"))?;
    eprintln!("demo-app: {} stored updates in {}", log.records().len(), log.path().display());
    tokio::spawn(watch_registry(registry.clone(), shutdown.clone()));
    let hub = Hub::new(log, shutdown).map_err(|e| format!("rewriting the update log: {e}"))?;
    let gate = Arc::new(Gate::new(&args.host, port, &args.allowed_hosts, &args.allowed_origins));
    Ok(Arc::new(App { hub: Arc::new(hub), registry, gate, token, registry_url, dev }))
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
    let guard = axum::middleware::from_fn_with_state(app.gate.clone(), security::guard);
    let registry = app.registry_url;
    let mut router = Router::new()
        .route("/ws", get(websocket))
        .route("/api/config", get(config))
        .route("/api/deploy", post(deploy))
        .route(&format!("{registry}/manifest.json"), get(manifest))
        .route(&format!("{registry}/events"), get(events))
        .route(&format!("{registry}/modules/{{file}}"), get(module))
        .route("/fallback/editor.wasm", get(fallback))
        .with_state(app.clone());
    if let Some(dev) = &app.dev {
        router = router.nest("/dev", hotswap_cli::dev::router(dev.clone()));
    }
    router
        .nest_service("/pkg", ServeDir::new(args.root.join("loader/pkg")))
        .fallback_service(ServeDir::new(args.root.join("www")))
        .layer(no_cache)
        .layer(guard)
}

/// Notice changes of the manifest and module files, whoever made them.
async fn watch_registry(registry: Arc<DemoRegistry>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(registry::POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let registry = registry.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    registry.refresh();
                    registry.check_modules();
                }).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn websocket(upgrade: WebSocketUpgrade, headers: HeaderMap, State(app): State<Arc<App>>) -> Response {
    if let Err(why) = app.gate.origin_allowed(&headers) {
        eprintln!("demo-app: refused a WebSocket: {why}");
        return (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
    }
    if !app.hub.has_room().await {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many pages connected\n").into_response();
    }
    let hub = app.hub.clone();
    // Frames past twice the largest change are not even buffered: the connection ends.
    let limit = 2 * document::MAX_CHANGE_BYTES;
    upgrade.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| relay::serve(socket, hub))
}

/// What the page pins and where it looks: in a real app these are compiled into its bundle.
async fn config(State(app): State<Arc<App>>) -> Response {
    let fallback = app
        .registry
        .fallback
        .as_ref()
        .map(|(_, sha256)| serde_json::json!({ "url": "/fallback/editor.wasm", "sha256": sha256 }));
    // Dev mode: where the page finds the dev loop's events and its error overlay.
    let dev = app.dev.as_ref().map(|_| serde_json::json!({ "events": "/dev/events", "overlay": "/dev/overlay.js" }));
    Json(serde_json::json!({
        "guest": GUEST,
        "manifest": format!("{}/manifest.json", app.registry_url),
        "push": format!("{}/events", app.registry_url),
        "keys": [app.registry.public_hex],
        "fallback": fallback,
        "dev": dev,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployRequest {
    version: String,
}

/// `POST /api/deploy {"version": …}` with `Authorization: Bearer <deploy token>`.
async fn deploy(State(app): State<Arc<App>>, headers: HeaderMap, Json(request): Json<DeployRequest>) -> Response {
    if let Err(why) = app.gate.origin_allowed(&headers) {
        eprintln!("demo-app: refused a deploy: {why}");
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    if !app.token.accepts(&headers) {
        let challenge = [(header::WWW_AUTHENTICATE, "Bearer")];
        let why = "deploying needs the deploy credential (the link the server printed on its first start)";
        return (StatusCode::UNAUTHORIZED, challenge, why).into_response();
    }
    if request.version.len() > 64 {
        return (StatusCode::BAD_REQUEST, "a version is at most 64 characters").into_response();
    }
    let registry = app.registry.clone();
    let result = tokio::task::spawn_blocking(move || registry.deploy(&request.version)).await;
    match result {
        Ok(Ok(report)) => {
            eprintln!("demo-app: {report}");
            Json(serde_json::json!({ "report": report })).into_response()
        }
        Ok(Err(e)) => {
            eprintln!("demo-app: deploy failed: {e}");
            let (status, message) = deploy_refusal(&e);
            (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), message).into_response()
        }
        Err(e) => {
            eprintln!("demo-app: deploy task failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the deploy failed; see the server log").into_response()
        }
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

/// `/registry/modules/<sha256>.wasm`: content-addressed, so immutable and cached for a year
/// — which is why bytes that do not hash to their name are never served (the page checks
/// the digest too, but a browser cache would keep the wrong bytes for that year).
async fn module(UrlPath(file): UrlPath<String>, State(app): State<Arc<App>>) -> Response {
    let registry = app.registry.clone();
    match tokio::task::spawn_blocking(move || registry.module(&file)).await {
        Ok(Ok(bytes)) => wasm(bytes, "public, max-age=31536000, immutable"),
        Ok(Err(ModuleRefusal::Tampered)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CACHE_CONTROL, "no-store")],
            "this module's file on the server does not match its digest; it is not served until repaired",
        )
            .into_response(),
        Ok(Err(ModuleRefusal::NotFound)) | Err(_) => StatusCode::NOT_FOUND.into_response(),
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
