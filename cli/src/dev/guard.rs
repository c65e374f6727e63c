//! Who may talk to `hotswap dev`'s own server. Its events carry compile errors, with
//! source lines in them, so: only requests naming its loopback address (no page elsewhere
//! whose name was made to resolve here, DNS rebinding), and cross-origin reads only for the
//! origins named with `--allow-origin` (an app served by another dev server, e.g. Vite's),
//! never `*`, so a site the developer visits cannot read them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The accepted `Host` values and cross-origin `Origin`s.
#[derive(Clone, Debug)]
pub(crate) struct Guard {
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl Guard {
    /// The loopback names (and `bind`) with `port`; `origins` as given.
    pub(crate) fn new(bind: &str, port: u16, origins: &[String]) -> Self {
        let hosts = ["127.0.0.1", "localhost", "[::1]", bind].iter().map(|h| format!("{h}:{port}")).collect();
        Self { hosts, origins: origins.iter().map(|o| o.trim_end_matches('/').to_string()).collect() }
    }
}

/// The middleware: 421 for another `Host`; CORS headers (and preflight answers) for allowed
/// origins only.
pub(crate) async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
    if !host.is_some_and(|h| guard.hosts.contains(&h)) {
        return (StatusCode::MISDIRECTED_REQUEST, "hotswap dev answers only to its loopback address\n").into_response();
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .filter(|o| guard.origins.iter().any(|a| a.as_bytes() == o.as_bytes()))
        .cloned();
    let Some(origin) = origin else { return next.run(request).await };
    let mut response = if request.method() == Method::OPTIONS {
        let asked = request.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
        let mut preflight = StatusCode::NO_CONTENT.into_response();
        let headers = preflight.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET"));
        if let Some(asked) = asked {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        }
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        preflight
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("etag"));
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    response
}
