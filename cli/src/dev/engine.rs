//! The loop: file changes → (a short quiet time, so files saved together build once) →
//! cargo → publish → report. A change while a build runs stops that build and starts
//! another with every change since the last finished one. A build that fails, or a module
//! that cannot be published, leaves the last good version current.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{broadcast, watch as signal};

use super::build::{self, plain, Outcome, Running};
use super::package::{self, Package};
use super::{publish, DevConfig, DevError, DevEvent};
use crate::keys;

/// Compiler output shown in a page is cut after this many bytes.
const MAX_MESSAGE: usize = 64 * 1024;

enum Msg {
    Changed(Vec<String>),
    Built(u64, Outcome),
    Stop,
}

/// What the loop shares with its handle and the HTTP server.
struct Shared {
    events: broadcast::Sender<DevEvent>,
    last: Mutex<Option<DevEvent>>,
    /// Builds finished (failed or not), so a server can wait for the first.
    finished: signal::Sender<u64>,
    stopped: signal::Sender<bool>,
}

/// A running dev loop. Dropping it (or [`DevLoop::stop`]) stops the watcher and any build.
pub struct DevLoop {
    shared: Arc<Shared>,
    send: Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    config: DevConfig,
    public_keys: Vec<String>,
}

impl std::fmt::Debug for DevLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevLoop").field("crate_dir", &self.config.crate_dir).finish_non_exhaustive()
    }
}

impl DevLoop {
    /// Watch and build `config.crate_dir`; the first build starts at once. Missing signing
    /// keys are created.
    pub fn start(config: DevConfig) -> Result<Self, DevError> {
        let package = package::resolve(&config.crate_dir)?;
        let public_keys = ensure_keys(&config.keys)?;
        let (send, receive) = mpsc::channel();
        let changes = send.clone();
        let watcher = super::watch::watch(&package.watch_dirs, move |names| {
            let _ = changes.send(Msg::Changed(names));
        })?;
        let shared = Arc::new(Shared {
            events: broadcast::channel(64).0,
            last: Mutex::new(None),
            finished: signal::channel(0).0,
            stopped: signal::channel(false).0,
        });
        println!(
            "hotswap dev: watching {} ({}), publishing to {}",
            package.name,
            package.watch_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
            config.registry.display()
        );
        let engine = Engine::new(config.clone(), package, shared.clone(), send.clone());
        let _ = send.send(Msg::Changed(Vec::new()));
        let thread = std::thread::Builder::new()
            .name("hotswap-dev".into())
            .spawn(move || engine.run(receive))
            .map_err(DevError::Thread)?;
        Ok(Self {
            shared,
            send,
            thread: Mutex::new(Some(thread)),
            watcher: Mutex::new(Some(watcher)),
            config,
            public_keys,
        })
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DevEvent> {
        self.shared.events.subscribe()
    }

    /// The last event (what a page that opens now should show).
    pub fn last_event(&self) -> Option<DevEvent> {
        self.shared.last.lock().ok().and_then(|l| l.clone())
    }

    /// The public keys (64 hex digits) that verify the registry's manifest: what pages pin.
    pub fn public_keys(&self) -> &[String] {
        &self.public_keys
    }

    /// The registry directory.
    pub fn registry(&self) -> &Path {
        &self.config.registry
    }

    /// Resolves once the first build has finished (published, or failed and reported).
    pub async fn first_build(&self) {
        let mut finished = self.shared.finished.subscribe();
        let _ = finished.wait_for(|n| *n > 0).await;
    }

    /// Resolves once the loop is stopped (streams to pages end then).
    pub fn stopped(&self) -> signal::Receiver<bool> {
        self.shared.stopped.subscribe()
    }

    /// Stop watching, stop the build under way (cargo and rustc), and wait for the loop.
    pub fn stop(&self) {
        if let Ok(mut watcher) = self.watcher.lock() {
            watcher.take();
        }
        let _ = self.send.send(Msg::Stop);
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
        self.shared.stopped.send_replace(true);
    }
}

impl Drop for DevLoop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The public half of each key, creating missing keys (`hotswap keygen`'s code).
fn ensure_keys(paths: &[PathBuf]) -> Result<Vec<String>, DevError> {
    paths
        .iter()
        .map(|path| {
            if !path.exists() {
                let out = path.parent().unwrap_or(Path::new("."));
                let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dev".into());
                println!("hotswap dev: {}", keys::keygen(out, &name)?);
            }
            Ok(hex::encode(keys::signing_key(path)?.verifying_key().to_bytes()))
        })
        .collect()
}

/// The loop's own state, on its thread.
struct Engine {
    config: DevConfig,
    package: Package,
    shared: Arc<Shared>,
    send: Sender<Msg>,
    generation: u64,
    running: Option<Running>,
    /// Changed since the last build that finished.
    changed: BTreeSet<String>,
    /// The last published build as cargo wrote it (before stamping), and its dev version.
    last: Option<(Vec<u8>, String)>,
    /// A guest whose old dev builds to unlist once the new one is announced.
    prune: Option<String>,
}

impl Engine {
    fn new(config: DevConfig, package: Package, shared: Arc<Shared>, send: Sender<Msg>) -> Self {
        Self {
            config,
            package,
            shared,
            send,
            generation: 0,
            running: None,
            changed: BTreeSet::new(),
            last: None,
            prune: None,
        }
    }

    fn run(mut self, receive: Receiver<Msg>) {
        while let Ok(msg) = receive.recv() {
            match msg {
                Msg::Stop => break,
                Msg::Changed(names) => {
                    self.changed.extend(names);
                    if !self.settle(&receive) {
                        break;
                    }
                    self.start_build();
                }
                Msg::Built(generation, outcome) if generation == self.generation => {
                    self.running = None;
                    self.finish(outcome);
                }
                Msg::Built(..) => {} // a superseded build ended
            }
        }
        if let Some(build) = self.running.take() {
            build.stop(std::time::Duration::from_secs(10));
        }
    }

    /// Wait until no change came for the debounce time; false when told to stop.
    fn settle(&mut self, receive: &Receiver<Msg>) -> bool {
        loop {
            match receive.recv_timeout(self.config.debounce) {
                Ok(Msg::Changed(names)) => self.changed.extend(names),
                // The build this change supersedes ended meanwhile: it is built again anyway.
                Ok(Msg::Built(..)) => {}
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return false,
                Err(RecvTimeoutError::Timeout) => return true,
            }
        }
    }

    fn start_build(&mut self) {
        if let Some(old) = self.running.take() {
            old.cancel();
            println!("hotswap dev: a newer change supersedes the build under way");
        }
        self.generation += 1;
        let (generation, send) = (self.generation, self.send.clone());
        self.running = Some(build::start(&self.config, &self.package, move |outcome| {
            let _ = send.send(Msg::Built(generation, outcome));
        }));
        self.emit(DevEvent::Building { changed: self.changed.iter().cloned().collect() });
    }

    fn finish(&mut self, outcome: Outcome) {
        let changed: Vec<String> = std::mem::take(&mut self.changed).into_iter().collect();
        let event = match outcome {
            Outcome::Cancelled => return,
            Outcome::Failed { message, ms } => {
                eprint!("{message}");
                DevEvent::BuildFailed { changed, build_ms: ms, message: capped(plain(&message)) }
            }
            Outcome::Built { wasm, ms } => self.publish(&wasm, changed, ms),
        };
        self.emit(event);
        self.shared.finished.send_modify(|n| *n += 1);
        if let Some(guest) = self.prune.take() {
            if let Err(e) = publish::prune(&self.config, &guest) {
                eprintln!("hotswap dev: could not take old dev builds off the manifest: {e}");
            }
        }
    }

    fn publish(&mut self, wasm: &Path, changed: Vec<String>, build_ms: f64) -> DevEvent {
        let started = Instant::now();
        let module = match std::fs::read(wasm) {
            Ok(module) => module,
            Err(e) => return DevEvent::PublishFailed { changed, message: format!("{}: {e}", wasm.display()) },
        };
        if let Some((_, version)) = self.last.as_ref().filter(|(last, _)| *last == module) {
            return DevEvent::Unchanged { changed, build_ms, version: version.clone() };
        }
        match publish::publish(&self.config, &module, wasm) {
            Ok(p) => {
                self.last = Some((module, p.version.clone()));
                if publish::needs_pruning(&self.config, p.listed) {
                    self.prune = Some(p.guest.clone());
                }
                let publish_ms = started.elapsed().as_secs_f64() * 1000.0;
                DevEvent::Published {
                    guest: p.guest,
                    version: p.version,
                    sha256: p.sha256,
                    changed,
                    build_ms,
                    publish_ms,
                }
            }
            Err(message) => DevEvent::PublishFailed { changed, message },
        }
    }

    fn emit(&self, event: DevEvent) {
        // One terminal line per rebuild: its end, not its start.
        if !matches!(event, DevEvent::Building { .. }) {
            println!("hotswap dev: {}", event.line());
        }
        if let Ok(mut last) = self.shared.last.lock() {
            *last = Some(event.clone());
        }
        let _ = self.shared.events.send(event);
    }
}

fn capped(mut text: String) -> String {
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n… (cut; the terminal has the rest)");
    }
    text
}
