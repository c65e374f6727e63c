//! The collaboration relay: one WebSocket per page.
//!
//! Server → page, text frames (JSON): `hello` (peer id and the limits below), `synced`
//! (after the document), `peers`, and for every binary frame the page sent, in order,
//! either `ack` (stored durably, or a duplicate the server already had) or `refused`
//! (`code`, `message`, and `retryMs` for `RATE_LIMITED`). Binary frames: first the whole
//! checked document (one automerge save), then every change other pages send.
//! (Deployments do not go through here: pages follow the signed registry.)
//!
//! Page → server, binary frames: its own changes, one automerge change each. Each is
//! checked against the server's copy of the document ([`crate::document`]), appended to the
//! log and fsynced, then acknowledged to the sender and relayed to the others. Refused
//! changes are neither stored nor relayed. A connection over its rate ([`crate::limits`])
//! gets one `RATE_LIMITED` refusal and is closed (code 1013, "try again later"); the page
//! reconnects after `retryMs` and resends what was not acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, Mutex};

use crate::document::{Checked, Document, Refusal, MAX_CHANGE_BYTES, MAX_DOCUMENT_BYTES};
use crate::limits::{RefusalLog, TokenBucket, BURST, PER_SECOND};
use crate::store::UpdateLog;

/// Pages connected at once.
pub const MAX_PEERS: usize = 64;

/// WebSocket close code 1013: try again later.
const TRY_AGAIN_LATER: u16 = 1013;

/// What goes to every page.
#[derive(Clone, Debug)]
pub enum Broadcast {
    /// A document change from page `from`.
    Update { from: u64, bytes: Arc<Vec<u8>> },
    /// A JSON message for every page.
    Json(String),
}

/// The durable log and the document it makes, changed together under one lock.
struct Shared {
    log: UpdateLog,
    doc: Document,
}

/// What became of a change a page sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Stored as the log's record `seq`, and relayed.
    Stored(u64),
    /// The server had it already.
    Duplicate,
}

/// State shared by all connections.
pub struct Hub {
    shared: Mutex<Shared>,
    /// Fan-out to every connection.
    pub tx: broadcast::Sender<Broadcast>,
    /// Ids of the pages online.
    pub peers: Mutex<Vec<u64>>,
    next_peer: AtomicU64,
    /// Closes every connection on shutdown.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Hub {
    /// A hub over an opened log, whose records it checks again: a change an older server
    /// stored without checking (one that broke the document) is dropped from the log.
    pub fn new(mut log: UpdateLog, shutdown: tokio::sync::watch::Receiver<bool>) -> std::io::Result<Self> {
        let (doc, refused) = Document::from_changes(log.records().iter().map(Vec::as_slice));
        if !refused.is_empty() {
            for (i, why) in &refused {
                eprintln!("demo-app: dropping stored update {} of {}: {why}", i + 1, log.path().display());
            }
            let drop: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
            log.retain(|i| !drop.contains(&i))?;
        }
        let (tx, _) = broadcast::channel(4096);
        Ok(Self {
            shared: Mutex::new(Shared { log, doc }),
            tx,
            peers: Mutex::new(Vec::new()),
            next_peer: AtomicU64::new(1),
            shutdown,
        })
    }

    /// Check, store and relay one change from page `peer`.
    pub async fn receive(&self, peer: u64, bytes: &[u8]) -> Result<Received, Refusal> {
        let mut shared = self.shared.lock().await;
        let Shared { log, doc } = &mut *shared;
        let change = match doc.check(bytes)? {
            Checked::Duplicate => return Ok(Received::Duplicate),
            Checked::New(change) => change,
        };
        if let Err(refusal) = doc.apply(*change) {
            // The document may hold the change: rebuild it from the log, which does not.
            *doc = Document::from_changes(log.records().iter().map(Vec::as_slice)).0;
            return Err(refusal);
        }
        match log.append(bytes) {
            Ok(seq) => {
                let _ = self.tx.send(Broadcast::Update { from: peer, bytes: Arc::new(bytes.to_vec()) });
                Ok(Received::Stored(seq))
            }
            Err(e) => {
                eprintln!("demo-app: storing an update from peer {peer}: {e}");
                *doc = Document::from_changes(log.records().iter().map(Vec::as_slice)).0;
                Err(Refusal::Storage)
            }
        }
    }

    /// The checked document, for a page that joins, and a receiver of what comes after it.
    async fn join(&self) -> (broadcast::Receiver<Broadcast>, Vec<u8>, usize) {
        let mut shared = self.shared.lock().await;
        // Subscribed under the lock: nothing stored after the save is missed.
        (self.tx.subscribe(), shared.doc.save(), shared.doc.stored_bytes())
    }

    /// The document's text.
    #[cfg(test)]
    pub async fn text(&self) -> String {
        self.shared.lock().await.doc.text()
    }

    /// How many updates the log holds.
    #[cfg(test)]
    pub async fn stored(&self) -> usize {
        self.shared.lock().await.log.records().len()
    }

    /// Is there room for another page?
    pub async fn has_room(&self) -> bool {
        self.peers.lock().await.len() < MAX_PEERS
    }

    async fn announce_peers(&self) {
        let peers = self.peers.lock().await.clone();
        let _ = self.tx.send(Broadcast::Json(json!({ "type": "peers", "peers": peers }).to_string()));
    }
}

fn refused(refusal: &Refusal) -> Message {
    let retry_ms = match refusal {
        Refusal::RateLimited { retry_ms, .. } => Some(*retry_ms),
        _ => None,
    };
    let message =
        json!({ "type": "refused", "code": refusal.code(), "message": refusal.to_string(), "retryMs": retry_ms });
    Message::Text(message.to_string().into())
}

/// Serve one page until it leaves or the server shuts down.
pub async fn serve(socket: WebSocket, hub: Arc<Hub>) {
    let peer = hub.next_peer.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (mut rx, document, stored) = hub.join().await;
    let limits = json!({
        "maxChangeBytes": MAX_CHANGE_BYTES,
        "maxDocumentBytes": MAX_DOCUMENT_BYTES,
        "burst": BURST,
        "perSecond": PER_SECOND,
    });
    let greeting = [
        Message::Text(json!({ "type": "hello", "peer": peer, "limits": limits }).to_string().into()),
        Message::Binary(document.into()),
        Message::Text(json!({ "type": "synced", "documentBytes": stored }).to_string().into()),
    ];
    for message in greeting {
        if sink.send(message).await.is_err() {
            return;
        }
    }
    hub.peers.lock().await.push(peer);
    hub.announce_peers().await;
    let mut shutdown = hub.shutdown.clone();
    let mut bucket = TokenBucket::new(BURST, PER_SECOND, Instant::now());
    let mut refusals = RefusalLog::default();
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let bytes = match incoming {
                    Some(Ok(Message::Binary(bytes))) => Ok(bytes),
                    Some(Ok(Message::Text(_))) => Err(Refusal::NotBinary),
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        // Over the frame size limit, or not WebSocket at all.
                        if let Some(line) = refusals.record(peer, "PROTOCOL", &e.to_string()) { eprintln!("{line}"); }
                        break;
                    }
                    Some(Ok(_)) => continue, // ping/pong
                };
                let result = match bytes {
                    Ok(bytes) => match bucket.take(Instant::now()) {
                        Ok(()) => hub.receive(peer, &bytes).await,
                        Err(retry_ms) => Err(Refusal::RateLimited { burst: BURST, per_second: PER_SECOND, retry_ms }),
                    },
                    Err(refusal) => Err(refusal),
                };
                let reply = match &result {
                    Ok(Received::Stored(seq)) => Message::Text(json!({ "type": "ack", "seq": seq }).to_string().into()),
                    Ok(Received::Duplicate) => Message::Text(json!({ "type": "ack", "duplicate": true }).to_string().into()),
                    Err(refusal) => {
                        if let Some(line) = refusals.record(peer, refusal.code(), &refusal.to_string()) { eprintln!("{line}"); }
                        refused(refusal)
                    }
                };
                if sink.send(reply).await.is_err() { break; }
                if let Err(Refusal::RateLimited { .. }) = result {
                    let close = CloseFrame { code: TRY_AGAIN_LATER, reason: "rate limited".into() };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    drain_until_closed(&mut stream).await;
                    break;
                }
            },
            outgoing = rx.recv() => {
                let message = match outgoing {
                    Ok(Broadcast::Update { from, .. }) if from == peer => continue,
                    Ok(Broadcast::Update { bytes, .. }) => Message::Binary(bytes.to_vec().into()),
                    Ok(Broadcast::Json(text)) => Message::Text(text.into()),
                    // Too slow to keep up: it reconnects and gets the whole document again.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if sink.send(message).await.is_err() { break; }
            }
            _ = shutdown.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    }
    if let Some(line) = refusals.summary(peer) {
        eprintln!("{line}");
    }
    hub.peers.lock().await.retain(|p| *p != peer);
    hub.announce_peers().await;
}

/// After our close frame: read (and drop) what the client still sends until it answers the
/// close, for at most two seconds. Dropping the socket under data in flight makes the
/// client's kernel see a reset, and the client a close code of 1006 instead of ours.
async fn drain_until_closed<S>(stream: &mut S)
where
    S: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let answered = async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), answered).await;
}
