//! Who may talk to the server, and what the browser is told to allow.
//!
//! - **Host**: every request must name one of the configured hosts (default: the loopback
//!   names with the bound port). A page on another name that resolves to this server (DNS
//!   rebinding) is refused with 421 before any handler runs.
//! - **Origin**: the WebSocket relay and the deploy API refuse requests whose `Origin` is
//!   not an allowed one (default: `http://` + each allowed host). Browsers always send
//!   `Origin` on WebSocket upgrades and cross-origin POSTs; a request without one comes from
//!   a non-browser client, which the deploy credential still has to pass.
//! - **Deploy credential**: a random token created on first start in `<data>/deploy-token`
//!   (mode 0600), compared in constant time with the request's `Authorization: Bearer`.
//! - **Headers**: a Content-Security-Policy (no inline script, no foreign images, no
//!   framing), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

/// The policy every response carries. `wasm-unsafe-eval` lets the page compile WebAssembly
/// (the loader and the guests); nothing else is evaluated. `worker-src blob:` lets the loader
/// start its pre-copy worker (its own code, from a Blob URL): without it a large document's
/// state would be converted inside the swap's pause instead.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     worker-src 'self' blob:; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Where requests may come from.
#[derive(Clone, Debug)]
pub struct Gate {
    /// `Host` header values accepted (lower case, with the port).
    pub hosts: Vec<String>,
    /// `Origin` header values accepted.
    pub origins: Vec<String>,
}

impl Gate {
    /// The defaults for a server bound to `port` on `bind`: the loopback names (and `bind`
    /// itself, if it is a specific address), plus `extra_hosts`; origins are `http://` +
    /// each host, plus `extra_origins`.
    pub fn new(bind: &str, port: u16, extra_hosts: &[String], extra_origins: &[String]) -> Self {
        let mut hosts: Vec<String> =
            ["127.0.0.1", "localhost", "[::1]"].iter().map(|h| format!("{h}:{port}")).collect();
        let specific = !matches!(bind, "0.0.0.0" | "::" | "[::]");
        if specific {
            let bind = if bind.contains(':') && !bind.starts_with('[') { format!("[{bind}]") } else { bind.into() };
            hosts.push(format!("{bind}:{port}"));
        }
        hosts.extend(extra_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()));
        hosts.dedup();
        let mut origins: Vec<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
        origins
            .extend(extra_origins.iter().map(|o| o.trim().trim_end_matches('/').to_string()).filter(|o| !o.is_empty()));
        Self { hosts, origins }
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
        host.is_some_and(|h| self.hosts.contains(&h))
    }

    /// An `Origin` that is absent (not a browser) or allowed.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> Result<(), String> {
        match headers.get(header::ORIGIN) {
            None => Ok(()),
            Some(origin) => {
                let origin = origin.to_str().unwrap_or("(not text)");
                if self.origins.iter().any(|o| o == origin) {
                    Ok(())
                } else {
                    Err(format!("origin {origin} is not allowed"))
                }
            }
        }
    }
}

/// Refuse requests for other hosts; add the security headers to every response.
pub async fn guard(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    if !gate.host_allowed(request.headers()) {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("(none)").to_string();
        let mut response = (
            StatusCode::MISDIRECTED_REQUEST,
            format!("this server does not answer for host {host} (see --allowed-host)\n"),
        )
            .into_response();
        add_headers(response.headers_mut());
        return response;
    }
    let mut response = next.run(request).await;
    add_headers(response.headers_mut());
    response
}

fn add_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The deploy credential.
#[derive(Debug)]
pub struct DeployToken {
    token: String,
    /// The file it lives in.
    pub path: PathBuf,
    /// Whether this start created it (then the server prints the deploy link once).
    pub created: bool,
}

/// Why the credential could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read or written.
    #[error(transparent)]
    Cli(#[from] hotswap_cli::CliError),
    /// The file holds something else.
    #[error("{}: not a deploy token (64 hex digits); delete it to get a new one", .0.display())]
    Malformed(PathBuf),
}

impl DeployToken {
    /// Read `<data>/deploy-token`, or create it (32 random bytes, hex, mode 0600).
    pub fn open(data: &Path) -> Result<Self, TokenError> {
        let path = data.join("deploy-token");
        let created = !path.exists();
        if created {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)
                .map_err(|e| hotswap_cli::CliError::NoRandomness(e.to_string()))
                .map_err(TokenError::Cli)?;
            std::fs::create_dir_all(data).map_err(hotswap_cli::CliError::io(data))?;
            hotswap_cli::keys::write_secret(&path, &hex::encode(seed))?;
        }
        let token = std::fs::read_to_string(&path).map_err(hotswap_cli::CliError::io(&path))?.trim().to_string();
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Malformed(path));
        }
        Ok(Self { token, path, created })
    }

    /// The token, for the deploy link.
    pub fn reveal(&self) -> &str {
        &self.token
    }

    /// Does `headers` carry `Authorization: Bearer <token>`? Constant time in the token.
    pub fn accepts(&self, headers: &HeaderMap) -> bool {
        let offered = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .trim();
        offered.len() == self.token.len() && bool::from(offered.as_bytes().ct_eq(self.token.as_bytes()))
    }
}
