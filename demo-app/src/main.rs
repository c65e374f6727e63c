//! `demo-app`: the collaborative editor demo's server.
//!
//! ```text
//! demo-app [--port 8080] [--host 127.0.0.1] [--data <root>/.data] [--root <cwd>]
//! ```
//! `PORT` and `HOTSWAP_DATA` set the port and data directory too. Serves `www/` (the
//! editor), `/pkg` (the loader's npm package), `/modules/<sha256>.wasm` (guest modules,
//! content-addressed, immutable), `/api/versions`, `POST /api/deploy` and the `/ws` relay.

mod catalog;
mod relay;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State, WebSocketUpgrade};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tower_http::services::ServeDir;

use crate::catalog::Catalog;
use crate::relay::{Hub, GUEST};
use crate::store::UpdateLog;

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
    let catalog = Catalog::open(&args.root.join("target/guests"), GUEST, &args.data)
        .map_err(|e| format!("reading the built guests (run `npm run build` first): {e}"))?;
    eprintln!("demo-app: {} stored updates in {}", log.records().len(), log.path().display());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let hub = Arc::new(Hub::new(log, catalog, shutdown));
    let app = router(&args, hub);
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

fn router(args: &Args, hub: Arc<Hub>) -> Router {
    // Pages and the loader revalidate; modules set their own (immutable) caching.
    let no_cache = tower_http::set_header::SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Router::new()
        .route("/ws", get(websocket))
        .route("/api/versions", get(versions))
        .route("/api/deploy", post(deploy))
        .route("/modules/{file}", get(module))
        .nest_service("/pkg", ServeDir::new(args.root.join("loader/pkg")))
        .fallback_service(ServeDir::new(args.root.join("www")))
        .layer(no_cache)
        .with_state(hub)
}

async fn websocket(upgrade: WebSocketUpgrade, State(hub): State<Arc<Hub>>) -> Response {
    upgrade.on_upgrade(move |socket| relay::serve(socket, hub))
}

async fn versions(State(hub): State<Arc<Hub>>) -> Response {
    let catalog = hub.catalog.lock().await;
    Json(serde_json::json!({ "deployed": catalog.deployed(GUEST), "versions": catalog.versions() })).into_response()
}

#[derive(Deserialize)]
struct DeployRequest {
    version: String,
}

async fn deploy(State(hub): State<Arc<Hub>>, Json(request): Json<DeployRequest>) -> Response {
    match hub.deploy(&request.version).await {
        Ok(deployed) => Json(serde_json::json!({ "deployed": deployed })).into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `/modules/<sha256>.wasm`: content-addressed, so immutable and cached for a year.
async fn module(UrlPath(file): UrlPath<String>, State(hub): State<Arc<Hub>>) -> Response {
    let path = match file.strip_suffix(".wasm") {
        Some(sha256) => hub.catalog.lock().await.module_path(sha256),
        None => None,
    };
    let Some(path) = path else { return StatusCode::NOT_FOUND.into_response() };
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, "application/wasm"), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
