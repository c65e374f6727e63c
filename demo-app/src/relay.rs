//! The collaboration relay: one WebSocket per page.
//!
//! Server → page, text frames (JSON): `hello` (peer id), `synced` (after the stored
//! history), `peers`, `ack` (an update of this page is durable). Binary frames: document
//! updates — first the whole stored history, then every update other pages send.
//! (Deployments do not go through here: pages follow the signed registry.)
//!
//! Page → server, binary frames: its own updates. Each is appended to the log and fsynced,
//! then acknowledged to the sender and relayed to the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, Mutex};

use crate::store::UpdateLog;

/// What goes to every page.
#[derive(Clone, Debug)]
pub enum Broadcast {
    /// A document update from page `from`.
    Update { from: u64, bytes: Arc<Vec<u8>> },
    /// A JSON message for every page.
    Json(String),
}

/// State shared by all connections.
pub struct Hub {
    /// The durable history.
    pub log: Mutex<UpdateLog>,
    /// Fan-out to every connection.
    pub tx: broadcast::Sender<Broadcast>,
    /// Ids of the pages online.
    pub peers: Mutex<Vec<u64>>,
    next_peer: AtomicU64,
    /// Closes every connection on shutdown.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Hub {
    /// A hub over an opened log.
    pub fn new(log: UpdateLog, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self { log: Mutex::new(log), tx, peers: Mutex::new(Vec::new()), next_peer: AtomicU64::new(1), shutdown }
    }

    async fn announce_peers(&self) {
        let peers = self.peers.lock().await.clone();
        let _ = self.tx.send(Broadcast::Json(json!({ "type": "peers", "peers": peers }).to_string()));
    }
}

/// Serve one page until it leaves or the server shuts down.
pub async fn serve(socket: WebSocket, hub: Arc<Hub>) {
    let peer = hub.next_peer.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    // Subscribe before copying the history: an update appended in between arrives twice,
    // which is harmless (CRDT changes are idempotent), rather than not at all.
    let (mut rx, history) = {
        let log = hub.log.lock().await;
        (hub.tx.subscribe(), log.records().to_vec())
    };
    let hello = json!({ "type": "hello", "peer": peer });
    let mut greeting = vec![Message::Text(hello.to_string().into())];
    greeting.extend(history.into_iter().map(|u| Message::Binary(u.into())));
    greeting.push(Message::Text(json!({ "type": "synced" }).to_string().into()));
    for message in greeting {
        if sink.send(message).await.is_err() {
            return;
        }
    }
    hub.peers.lock().await.push(peer);
    hub.announce_peers().await;
    let mut shutdown = hub.shutdown.clone();
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Binary(bytes))) => {
                    let appended = hub.log.lock().await.append(&bytes);
                    match appended {
                        Ok(seq) => {
                            let _ = hub.tx.send(Broadcast::Update { from: peer, bytes: Arc::new(bytes.to_vec()) });
                            let ack = json!({ "type": "ack", "seq": seq }).to_string();
                            if sink.send(Message::Text(ack.into())).await.is_err() { break; }
                        }
                        Err(e) => {
                            eprintln!("demo-app: refusing an update from peer {peer}: {e}");
                            let error = json!({ "type": "error", "message": e.to_string() }).to_string();
                            if sink.send(Message::Text(error.into())).await.is_err() { break; }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            outgoing = rx.recv() => {
                let message = match outgoing {
                    Ok(Broadcast::Update { from, .. }) if from == peer => continue,
                    Ok(Broadcast::Update { bytes, .. }) => Message::Binary(bytes.to_vec().into()),
                    Ok(Broadcast::Json(text)) => Message::Text(text.into()),
                    // Too slow to keep up: it reconnects and gets the whole history again.
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
    hub.peers.lock().await.retain(|p| *p != peer);
    hub.announce_peers().await;
}
