//! The server against hostile clients: the relay's checks with changes made by the real
//! editor guest (compiled natively) and by automerge directly, and the HTTP surface (Host,
//! Origin, deploy credential, headers, module digests, deploys) over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ReadDoc, ROOT};
use editor::Editor;
use hotswap_guest::GuestState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::document::{Document, Refusal};
use crate::relay::Received;

// ---------- the relay's checks

/// A hub over a fresh log in `dir`.
fn hub(dir: &std::path::Path) -> Hub {
    let log = UpdateLog::open(&dir.join("updates.log")).unwrap();
    Hub::new(log, tokio::sync::watch::channel(false).1).unwrap()
}

/// A page's editor: the real guest code.
fn page() -> Editor {
    Editor::default()
}

fn type_into(editor: &mut Editor, pos: usize, text: &str) -> Vec<u8> {
    editor::edit(editor, &serde_json::json!({ "pos": pos, "del": 0, "ins": text }).to_string()).unwrap()
}

/// A change made with automerge directly on top of the editor's initial document — what
/// a hostile client can send.
fn hostile(act: impl FnOnce(&mut AutoCommit)) -> Vec<u8> {
    let state = page().save(1).unwrap();
    let actor_len = usize::from(state[0]);
    let mut doc = AutoCommit::load(&state[1 + actor_len..]).unwrap().with_actor(ActorId::random());
    act(&mut doc);
    doc.commit();
    doc.get_last_local_change().unwrap().raw_bytes().to_vec()
}

fn text_id(doc: &AutoCommit) -> automerge::ObjId {
    doc.get(ROOT, "text").unwrap().unwrap().1
}

#[tokio::test]
async fn changes_from_the_real_editor_are_stored_once_and_make_the_servers_document() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path());
    let mut ada = page();
    let first = type_into(&mut ada, 0, "hello");
    assert_eq!(hub.receive(1, &first).await, Ok(Received::Stored(1)));
    assert_eq!(hub.receive(1, &first).await, Ok(Received::Duplicate), "a resent change is acknowledged, not stored");
    let named = editor::set_author(&mut ada, "Ada").unwrap();
    assert_eq!(hub.receive(1, &named).await, Ok(Received::Stored(2)));
    assert_eq!(hub.text().await, "hello");
    assert_eq!(hub.stored().await, 2);
}

#[tokio::test]
async fn a_change_deleting_the_text_is_refused_never_stored_and_everyone_keeps_typing_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path());
    let mut ada = page();
    assert!(hub.receive(1, &type_into(&mut ada, 0, "keep me")).await.is_ok());
    let delete_text = hostile(|doc| doc.delete(ROOT, "text").unwrap());
    assert!(delete_text.len() < 200, "the attack is one small change ({} bytes)", delete_text.len());
    let refused = hub.receive(2, &delete_text).await.unwrap_err();
    assert_eq!(refused.code(), "SCHEMA_VIOLATION", "{refused}");
    assert_eq!(hub.stored().await, 1, "the refused change was not stored");
    assert!(hub.receive(1, &type_into(&mut ada, 7, "!")).await.is_ok(), "the document still takes edits");
    drop(hub);
    let restarted = self::hub(dir.path());
    assert_eq!(restarted.text().await, "keep me!");
    // A page joining now loads the server's checked document and types on.
    let mut cy = page();
    let log = UpdateLog::open(&dir.path().join("updates.log")).unwrap();
    let mut joined = Document::from_changes(log.records().iter().map(Vec::as_slice)).0;
    assert_eq!(editor::merge(&mut cy, &joined.save()).unwrap(), "keep me!");
    assert!(restarted.receive(3, &type_into(&mut cy, 0, ">")).await.is_ok());
}

#[tokio::test]
async fn a_log_poisoned_by_an_unchecking_server_is_cleaned_when_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("updates.log");
    let mut ada = page();
    let mut log = UpdateLog::open(&path).unwrap();
    log.append(&type_into(&mut ada, 0, "text")).unwrap();
    log.append(&hostile(|doc| doc.delete(ROOT, "text").unwrap())).unwrap();
    log.append(&type_into(&mut ada, 4, "!")).unwrap();
    drop(log);
    let hub = self::hub(dir.path());
    assert_eq!((hub.text().await, hub.stored().await), ("text!".to_string(), 2));
    assert_eq!(UpdateLog::open(&path).unwrap().records().len(), 2, "the log was rewritten without it");
}

#[tokio::test]
async fn every_kind_of_bad_change_is_refused_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(dir.path());
    let code = |r: Result<Received, Refusal>| r.map_err(|e| e.code()).unwrap_err();
    assert_eq!(code(hub.receive(1, b"junk").await), "MALFORMED_CHANGE");
    assert_eq!(code(hub.receive(1, &vec![0; document::MAX_CHANGE_BYTES + 1]).await), "TOO_LARGE");
    let mut trailing = type_into(&mut page(), 0, "a");
    trailing.push(0);
    assert_eq!(code(hub.receive(1, &trailing).await), "MALFORMED_CHANGE");
    // An edit whose earlier edit never reached the server.
    let mut ada = page();
    type_into(&mut ada, 0, "a");
    assert_eq!(code(hub.receive(1, &type_into(&mut ada, 1, "b")).await), "MISSING_DEPENDENCIES");
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        ("a new root key", hostile(|d| d.put(ROOT, "evil", 1).unwrap())),
        ("the text replaced", hostile(|d| drop(d.put_object(ROOT, "text", ObjType::Text).unwrap()))),
        ("the text made a string", hostile(|d| d.put(ROOT, "text", "plain").unwrap())),
        ("the authors deleted", hostile(|d| d.delete(ROOT, "authors").unwrap())),
        ("a map inside the text", hostile(|d| drop(d.insert_object(text_id(d), 0, ObjType::Map).unwrap()))),
        ("a number inside the text", hostile(|d| d.insert(text_id(d), 0, 42).unwrap())),
        ("a number as an author", {
            hostile(|d| {
                let authors = d.get(ROOT, "authors").unwrap().unwrap().1;
                d.put(&authors, "x", 1).unwrap()
            })
        }),
    ];
    for (what, change) in attacks {
        assert_eq!(code(hub.receive(2, &change).await), "SCHEMA_VIOLATION", "{what}");
    }
    assert_eq!(hub.stored().await, 0, "nothing was stored");
    assert_eq!(hub.text().await, "");
}

#[test]
fn the_document_refuses_changes_once_full() {
    let mut doc = Document::with_limit(1000);
    let mut ada = page();
    let mut stored = 0;
    let refused = loop {
        let change = type_into(&mut ada, stored, &"x".repeat(100));
        match doc.check(&change) {
            Ok(document::Checked::New(c)) => doc.apply(*c).unwrap(),
            other => break other.unwrap_err(),
        }
        stored += 100;
    };
    assert_eq!(refused.code(), "DOCUMENT_FULL");
    assert!(doc.stored_bytes() <= 1000 && stored > 0, "{} bytes stored", doc.stored_bytes());
}

// ---------- the HTTP surface, over real sockets

struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    data: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn serve() -> Server {
    let data = tempfile::tempdir().unwrap();
    let args = Args {
        host: "127.0.0.1".into(),
        port: 0,
        data: data.path().to_path_buf(),
        root: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
        allowed_hosts: vec![],
        allowed_origins: vec![],
        dev: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let app = prepare(&args, addr.port(), shutdown).expect("the guests are built (scripts/build.sh)");
    let router = router(&args, app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Server { addr, app, data, _stop: stop }
}

/// One raw HTTP/1.1 request; the status and the response head (and body, if it ends).
async fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn upgrade(addr: SocketAddr, host: &str, origin: Option<&str>) -> String {
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\n{origin}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .replace("{addr}", &addr.to_string())
}

fn post_deploy(host: &str, origin: Option<&str>, token: Option<&str>, version: &str) -> String {
    let body = format!(r#"{{"version":"{version}"}}"#);
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    format!(
        "POST /api/deploy HTTP/1.1\r\nHost: {host}\r\n{origin}{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn get(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn websocket_upgrades_from_other_origins_are_refused() {
    let s = serve().await;
    let host = s.addr.to_string();
    let own = format!("http://{host}");
    assert_eq!(http(s.addr, &upgrade(s.addr, &host, Some(&own))).await.0, 101);
    assert_eq!(
        http(s.addr, &upgrade(s.addr, &host, Some(&format!("http://localhost:{}", s.addr.port())))).await.0,
        101
    );
    for evil in ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1"] {
        let (status, text) = http(s.addr, &upgrade(s.addr, &host, Some(evil))).await;
        assert_eq!(status, 403, "origin {evil}: {text}");
    }
}

#[tokio::test]
async fn requests_naming_another_host_are_refused_as_in_dns_rebinding() {
    let s = serve().await;
    let port = s.addr.port();
    assert_eq!(http(s.addr, &get(&s.addr.to_string(), "/api/config")).await.0, 200);
    assert_eq!(http(s.addr, &get(&format!("localhost:{port}"), "/")).await.0, 200);
    let rebound = format!("rebind.example:{port}");
    for path in ["/", "/api/config", "/registry/manifest.json"] {
        let (status, text) = http(s.addr, &get(&rebound, path)).await;
        assert_eq!(status, 421, "{path}: {text}");
    }
    let own = format!("http://{rebound}");
    assert_eq!(http(s.addr, &upgrade(s.addr, &rebound, Some(&own))).await.0, 421);
    let token = s.app.token.reveal().to_string();
    assert_eq!(http(s.addr, &post_deploy(&rebound, Some(&own), Some(&token), "1.1.0")).await.0, 421);
}

#[tokio::test]
async fn deploying_needs_the_credential_from_an_allowed_origin() {
    let s = serve().await;
    let host = s.addr.to_string();
    let own = format!("http://{host}");
    let token = s.app.token.reveal().to_string();
    let wrong = "0".repeat(64);
    assert_eq!(http(s.addr, &post_deploy(&host, Some(&own), None, "1.1.0")).await.0, 401);
    assert_eq!(http(s.addr, &post_deploy(&host, Some(&own), Some(&wrong), "1.1.0")).await.0, 401);
    assert_eq!(http(s.addr, &post_deploy(&host, None, Some(&token[..63]), "1.1.0")).await.0, 401);
    let (status, _) = http(s.addr, &post_deploy(&host, Some("http://evil.example"), Some(&token), "1.1.0")).await;
    assert_eq!(status, 403, "a foreign origin is refused even with the credential");
    let (status, text) = http(s.addr, &post_deploy(&host, Some(&own), Some(&token), "1.1.0")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("current 1.0.0 -> 1.1.0"), "{text}");
    // The credential file is the owner's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data.path().join("deploy-token")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn every_response_carries_the_content_security_policy_and_its_companions() {
    let s = serve().await;
    for path in ["/", "/js/main.js", "/api/config", "/no-such-file"] {
        let (_, head) = http(s.addr, &get(&s.addr.to_string(), path)).await;
        let head = head.to_ascii_lowercase();
        for expected in [
            "content-security-policy: default-src 'self'; script-src 'self' 'wasm-unsafe-eval'",
            "img-src 'self' data:",
            "worker-src 'self' blob:",
            "frame-ancestors 'none'",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
        ] {
            assert!(head.contains(expected), "{path} lacks {expected}:\n{head}");
        }
    }
}

#[tokio::test]
async fn a_module_whose_bytes_do_not_match_its_digest_is_never_served_and_is_served_again_once_repaired() {
    let s = serve().await;
    let manifest = s.app.registry.manifest_verified().unwrap();
    let url = manifest.guests["editor"].versions["1.1.0"].url.clone();
    let path = s.data.path().join("registry").join(&url);
    let good = std::fs::read(&path).unwrap();
    let (status, head) = http(s.addr, &get(&s.addr.to_string(), &format!("/registry/{url}"))).await;
    assert_eq!(status, 200);
    assert!(head.contains("immutable"));
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let (status, head) = http(s.addr, &get(&s.addr.to_string(), &format!("/registry/{url}"))).await;
    assert_eq!(status, 500, "tampered bytes are not served");
    assert!(!head.contains("immutable") && head.contains("no-store"), "{head}");
    // Repaired: the server says so on the push channel, and serves it again.
    let mut pushed = s.app.registry.changes.subscribe();
    std::fs::write(&path, &good).unwrap();
    s.app.registry.check_modules();
    assert!(pushed.try_recv().is_ok(), "a repaired module is announced so pages retry it");
    assert_eq!(http(s.addr, &get(&s.addr.to_string(), &format!("/registry/{url}"))).await.0, 200);
}

#[tokio::test]
async fn twelve_simultaneous_deploys_all_succeed_with_consecutive_manifest_versions() {
    let s = serve().await;
    let start = s.app.registry.manifest_verified().unwrap().version;
    let deploys: Vec<_> = (0..12)
        .map(|i| {
            let registry = s.app.registry.clone();
            let version = ["1.0.0", "1.1.0", "2.0.0"][i % 3];
            std::thread::spawn(move || registry.deploy(version))
        })
        .collect();
    for deploy in deploys {
        let report = deploy.join().unwrap();
        assert!(report.is_ok(), "{report:?}");
    }
    assert_eq!(s.app.registry.manifest_verified().unwrap().version, start + 12);
}

#[tokio::test]
async fn a_deploy_on_top_of_a_replayed_manifest_publishes_above_every_version_seen() {
    let s = serve().await;
    let manifest_path = s.data.path().join("registry/manifest.json");
    let older = std::fs::read(&manifest_path).unwrap();
    for version in ["1.1.0", "2.0.0", "1.1.0"] {
        s.app.registry.deploy(version).unwrap();
    }
    let newest = s.app.registry.manifest_verified().unwrap().version;
    std::fs::write(&manifest_path, &older).unwrap();
    s.app.registry.refresh();
    let report = s.app.registry.deploy("2.0.0").unwrap();
    assert_eq!(s.app.registry.manifest_verified().unwrap().version, newest + 1, "{report}");
}

#[tokio::test]
async fn deploy_errors_do_not_reveal_the_servers_file_paths() {
    let s = serve().await;
    let host = s.addr.to_string();
    let token = s.app.token.reveal().to_string();
    let (status, text) = http(s.addr, &post_deploy(&host, None, Some(&token), "9.9.9")).await;
    assert_eq!(status, 404);
    assert!(text.contains("editor 9.9.9 is not listed in the signed manifest"), "{text}");
    std::fs::write(s.data.path().join("registry/manifest.json"), b"{}").unwrap();
    let (status, text) = http(s.addr, &post_deploy(&host, None, Some(&token), "1.1.0")).await;
    assert_eq!(status, 500);
    let data = s.data.path().to_string_lossy().to_string();
    assert!(!text.contains(&data) && !text.contains("manifest.json"), "a path leaked: {text}");
    assert!(text.contains("see the server log"), "{text}");
}

/// The change the end-to-end test sends as an attacker (`tests/support/delete-text-change.hex`):
/// it deletes the text, from a fixed actor at time 0. Checked here so the fixture cannot
/// silently stop being that attack.
#[tokio::test]
async fn the_end_to_end_fixture_is_the_delete_the_text_attack_and_is_refused() {
    let state = page().save(1).unwrap();
    let actor_len = usize::from(state[0]);
    let mut doc = AutoCommit::load(&state[1 + actor_len..]).unwrap().with_actor(ActorId::from(&[0xee; 16][..]));
    doc.delete(ROOT, "text").unwrap();
    doc.commit_with(automerge::transaction::CommitOptions::default().with_time(0));
    let attack = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/delete-text-change.hex");
    if std::env::var_os("HOTSWAP_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, format!("{}\n", hex::encode(&attack))).unwrap();
    }
    let fixture = hex::decode(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    assert_eq!(fixture, attack, "regenerate with HOTSWAP_WRITE_FIXTURES=1 cargo test -p demo-app");
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(hub(dir.path()).receive(1, &fixture).await.unwrap_err().code(), "SCHEMA_VIOLATION");
}

// ---------- property tests: hostile bytes at the relay and in the editor's state

mod fuzz {
    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::*;
    use crate::document::Checked;

    fn cases(short: u32) -> u32 {
        if std::env::var_os("HOTSWAP_FUZZ_LONG").is_some() {
            short * 100
        } else {
            short
        }
    }

    /// Check, and apply what passes: never a panic; a refusal always has a code; the
    /// document keeps its schema (its text stays readable).
    fn offer(doc: &mut Document, bytes: &[u8]) -> Result<(), TestCaseError> {
        match doc.check(bytes) {
            Ok(Checked::New(change)) => {
                if let Err(e) = doc.apply(*change) {
                    prop_assert!(!e.code().is_empty());
                    *doc = Document::new();
                }
            }
            Ok(Checked::Duplicate) => {}
            Err(e) => prop_assert!(!e.code().is_empty() && !e.to_string().is_empty()),
        }
        let _ = doc.save();
        Ok(())
    }

    fn damage(mut bytes: Vec<u8>, flips: &[(Index, u8)], cut: Option<Index>) -> Vec<u8> {
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(300)))]

        #[test]
        fn arbitrary_messages_get_a_typed_refusal(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            offer(&mut Document::new(), &bytes)?;
        }

        #[test]
        fn damaged_real_changes_are_refused_or_keep_the_schema(
            text in "\\PC{1,12}",
            flips in proptest::collection::vec((any::<Index>(), any::<u8>()), 1..6),
            cut in proptest::option::of(any::<Index>()),
        ) {
            let mut ada = page();
            let mut doc = Document::new();
            let change = type_into(&mut ada, 0, &text);
            let named = editor::set_author(&mut ada, &text).unwrap();
            offer(&mut doc, &damage(change.clone(), &flips, cut))?;
            offer(&mut doc, &change)?;
            offer(&mut doc, &damage(named, &flips, cut))?;
        }

        #[test]
        fn the_editor_state_decoder_refuses_damaged_states_without_panicking(
            schema in 0u32..4,
            flips in proptest::collection::vec((any::<Index>(), any::<u8>()), 0..6),
            cut in proptest::option::of(any::<Index>()),
            junk in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut ada = page();
            type_into(&mut ada, 0, "state");
            editor::set_author(&mut ada, "Ada").unwrap();
            let saved = ada.save(schema.clamp(1, 2)).unwrap();
            for bytes in [damage(saved, &flips, cut), junk.clone()] {
                if let Ok(loaded) = Editor::load(&bytes, schema) {
                    // A state that loads is a working editor.
                    let _ = editor::text(&loaded);
                }
            }
        }
    }
}
