//! The demo editor's logic: one automerge text document per page.
//!
//! Every peer starts from the same initial change (fixed actor, fixed time), so all peers
//! share one `text` object instead of creating rival ones. After that each guest edits with
//! its own random actor. Updates are automerge changes, relayed by the server as bytes.
//!
//! A peer keeps its actor across swaps (it is part of the state): its earlier edits stay its
//! own, which 2.0.0's attribution relies on.
//!
//! State schema 1: the actor (u8 length + bytes), the document (`AutoCommit::save`).
//! State schema 2 (2.0.0+): `b"ED2"`, the actor, the author name (u16 LE length + UTF-8),
//! the document.
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, ChangeHash, LoadOptions, ObjId as ExId, ObjType, ReadDoc, TextEncoding, VerificationMode, ROOT,
};
use hotswap_guest::{export, guest, now_ms, GuestState, Precopy, StateError};
use serde::{Deserialize, Serialize};

#[cfg_attr(not(feature = "v1_1"), guest(name = "editor", version = "1.0.0", schema = 1, precopy))]
#[cfg_attr(all(feature = "v1_1", not(feature = "v2")), guest(name = "editor", version = "1.1.0", schema = 1, precopy))]
#[cfg_attr(
    all(feature = "v2", not(feature = "fault-traps-on-edit")),
    guest(name = "editor", version = "2.0.0", schema = 2, migrates_from = [1], migrates_to = [1], precopy)
)]
#[cfg_attr(
    feature = "fault-traps-on-edit",
    guest(name = "editor", version = "2.1.0", schema = 2, migrates_from = [1], migrates_to = [1], precopy)
)]
pub struct Editor {
    doc: AutoCommit,
    /// The local author's display name (schema 2).
    #[cfg(feature = "v2")]
    author: String,
    /// Pre-copy: the document's heads (and the author name) at the last mark.
    marked: (Vec<ChangeHash>, String),
}

/// Text positions are UTF-16 code units, as in a browser's `selectionStart`.
const ENCODING: TextEncoding = TextEncoding::Utf16CodeUnit;

impl Default for Editor {
    fn default() -> Self {
        Self::with_doc(initial_doc())
    }
}

/// The document every peer starts from: byte-identical everywhere, so it merges as one. (Also
/// what `xtask` builds benchmark histories on.)
pub fn initial_doc() -> AutoCommit {
    let mut doc = AutoCommit::new_with_encoding(ENCODING).with_actor(ActorId::from(&[0u8; 16][..]));
    // `authors` is unused before 2.0.0, but every version creates it so all share one map.
    let created =
        doc.put_object(ROOT, "text", ObjType::Text).and_then(|_| doc.put_object(ROOT, "authors", ObjType::Map));
    if created.is_err() {
        hotswap_guest::__rt::fatal("cannot create the initial document");
    }
    doc.commit_with(CommitOptions::default().with_time(0));
    doc.set_actor(ActorId::random());
    doc
}

impl Editor {
    fn with_doc(doc: AutoCommit) -> Self {
        Self {
            doc,
            #[cfg(feature = "v2")]
            author: String::new(),
            marked: Default::default(),
        }
    }

    /// The author name (schema 2); none before 2.0.0.
    fn author(&self) -> &str {
        #[cfg(feature = "v2")]
        return &self.author;
        #[cfg(not(feature = "v2"))]
        ""
    }

    fn object(&self, key: &str) -> Result<ExId, String> {
        match self.doc.get(ROOT, key) {
            Ok(Some((_, id))) => Ok(id),
            _ => Err(format!("the document has no `{key}`")),
        }
    }

    fn text(&self) -> Result<String, String> {
        self.doc.text(self.object("text")?).map_err(|e| e.to_string())
    }

    /// The change just made, to send to the other peers.
    fn commit_local(&mut self) -> Vec<u8> {
        self.doc.commit_with(CommitOptions::default().with_time((now_ms() / 1000.0) as i64));
        self.doc.get_last_local_change().map(|c| c.raw_bytes().to_vec()).unwrap_or_default()
    }
}

/// The document saved in `bytes`, continuing as `actor`.
///
/// The bytes are a state the running version just saved on this page (state_load is only
/// ever given that), so recomputing every change hash to check the document's heads buys
/// nothing: it is skipped (`DontCheck`, 15-35% of a load; the bytes are still fully parsed
/// and a malformed document is still refused). Changes from peers go through
/// `load_incremental`, which checks everything.
fn load_doc(actor: &[u8], bytes: &[u8]) -> Result<AutoCommit, StateError> {
    let options = LoadOptions::new().text_encoding(ENCODING).verification_mode(VerificationMode::DontCheck);
    let doc = AutoCommit::load_with_options(bytes, options).map_err(|e| StateError::malformed(e.to_string()))?;
    Ok(doc.with_actor(ActorId::from(actor)))
}

/// Split `len`-prefixed field off the front (`width`: 1 or 2 little-endian length bytes).
fn field(bytes: &[u8], width: usize) -> Result<(&[u8], &[u8]), StateError> {
    let short = || StateError::malformed("state truncated");
    let len = bytes.get(..width).ok_or_else(short)?.iter().rev().fold(0usize, |n, b| n << 8 | usize::from(*b));
    let value = bytes.get(width..width + len).ok_or_else(short)?;
    Ok((value, &bytes[width + len..]))
}

impl GuestState for Editor {
    fn save(&self, schema: u32) -> Result<Vec<u8>, StateError> {
        let actor = self.doc.get_actor().to_bytes().to_vec();
        // `save` needs `&mut` (it caches); saving a clone keeps `save` free of side effects.
        let doc = self.doc.clone().save();
        let mut out = Vec::with_capacity(doc.len() + 64);
        match schema {
            1 => {}
            #[cfg(feature = "v2")]
            2 => out.extend_from_slice(b"ED2"),
            other => return Err(StateError::UnsupportedSchema(other)),
        }
        out.push(actor.len() as u8);
        out.extend_from_slice(&actor);
        #[cfg(feature = "v2")]
        if schema == 2 {
            out.extend_from_slice(&(self.author.len() as u16).to_le_bytes());
            out.extend_from_slice(self.author.as_bytes());
        }
        out.extend_from_slice(&doc);
        Ok(out)
    }

    fn load(bytes: &[u8], schema: u32) -> Result<Self, StateError> {
        match schema {
            // From 1.x: 2.0.0 starts with no author name.
            1 => {
                let (actor, doc) = field(bytes, 1)?;
                Ok(Self::with_doc(load_doc(actor, doc)?))
            }
            #[cfg(feature = "v2")]
            2 => {
                let rest = bytes.strip_prefix(b"ED2").ok_or_else(|| StateError::malformed("missing ED2 tag"))?;
                let (actor, rest) = field(rest, 1)?;
                let (name, doc) = field(rest, 2)?;
                let author =
                    String::from_utf8(name.to_vec()).map_err(|_| StateError::malformed("author is not UTF-8"))?;
                Ok(Self { author, ..Self::with_doc(load_doc(actor, doc)?) })
            }
            other => Err(StateError::UnsupportedSchema(other)),
        }
    }
}

/// Pre-copy (ABI 1.1). Loading a long document takes automerge far longer than a frame, and
/// cannot be split; the loader does it off the main thread, on a copy of this guest's memory,
/// and in the pause asks only for the changes made since the copy: automerge's changes after
/// the heads at the mark — usually none — plus, in schema 2, the author name.
impl Precopy for Editor {
    fn mark(&mut self) {
        self.marked = (self.doc.get_heads(), self.author().to_string());
    }

    fn delta(&mut self, schema: u32) -> Result<Vec<u8>, StateError> {
        let changes = self.doc.save_after(&self.marked.0);
        if changes.is_empty() && self.marked.1 == self.author() {
            return Ok(Vec::new());
        }
        self.mark();
        let mut out = Vec::with_capacity(changes.len() + 64);
        match schema {
            1 => {}
            #[cfg(feature = "v2")]
            2 => {
                out.extend_from_slice(b"ED2");
                out.extend_from_slice(&(self.author.len() as u16).to_le_bytes());
                out.extend_from_slice(self.author.as_bytes());
            }
            other => return Err(StateError::UnsupportedSchema(other)),
        }
        out.extend_from_slice(&changes);
        Ok(out)
    }

    fn apply(&mut self, delta: &[u8], schema: u32) -> Result<(), StateError> {
        if delta.is_empty() {
            return Ok(());
        }
        let changes = match schema {
            1 => delta,
            #[cfg(feature = "v2")]
            2 => {
                let rest = delta.strip_prefix(b"ED2").ok_or_else(|| StateError::malformed("missing ED2 tag"))?;
                let (name, changes) = field(rest, 2)?;
                self.author =
                    String::from_utf8(name.to_vec()).map_err(|_| StateError::malformed("author is not UTF-8"))?;
                changes
            }
            other => return Err(StateError::UnsupportedSchema(other)),
        };
        self.doc.load_incremental(changes).map_err(|e| StateError::malformed(e.to_string()))?;
        Ok(())
    }

    fn warm() {
        // The code the pause and the page's next calls take, on a scratch document: an edit
        // committed, the view rendered, a change saved after some heads and applied elsewhere.
        let mut scratch = Editor::default();
        let mut other = Editor::with_doc(scratch.doc.fork());
        let heads = scratch.doc.get_heads();
        if let Ok(text) = scratch.object("text") {
            let _ = scratch.doc.splice_text(&text, 0, 0, "warm *up*");
        }
        let _ = scratch.commit_local();
        let _ = view(&scratch);
        let _ = other.doc.load_incremental(&scratch.doc.save_after(&heads));
    }
}

/// A local edit, in UTF-16 code units: delete `del` at `pos`, then insert `ins` there.
#[derive(Deserialize)]
struct Edit {
    pos: usize,
    del: usize,
    ins: String,
}

/// Apply a local edit; returns the change to send to the other peers.
#[export]
pub fn edit(editor: &mut Editor, request: &str) -> Result<Vec<u8>, String> {
    #[cfg(feature = "fault-traps-on-edit")]
    {
        let _ = (editor, request);
        panic!("editor 2.1.0: edit is broken in this release");
    }
    #[allow(unreachable_code)]
    let e: Edit = serde_json::from_str(request).map_err(|err| format!("bad edit {request:?}: {err}"))?;
    let text = editor.object("text")?;
    editor.doc.splice_text(&text, e.pos, e.del as isize, &e.ins).map_err(|err| err.to_string())?;
    Ok(editor.commit_local())
}

/// Apply changes from other peers (or the server's history); returns the whole new text.
#[export]
pub fn merge(editor: &mut Editor, changes: &[u8]) -> Result<String, String> {
    editor.doc.load_incremental(changes).map_err(|e| format!("bad update: {e}"))?;
    editor.text()
}

/// The current text.
#[export]
pub fn text(editor: &Editor) -> Result<String, String> {
    editor.text()
}

/// What the page shows next to the text, as JSON.
#[derive(Serialize)]
struct View {
    /// The version answering, so the page can show whose logic it sees.
    version: &'static str,
    /// Rendered Markdown (1.1.0+).
    #[serde(skip_serializing_if = "Option::is_none")]
    html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    words: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chars: Option<usize>,
    /// Who wrote how many characters (2.0.0+).
    #[serde(skip_serializing_if = "Option::is_none")]
    authors: Option<Vec<Authored>>,
}

#[derive(Serialize)]
struct Authored {
    name: String,
    chars: usize,
}

/// The side panel: nothing in 1.0.0; preview and counts in 1.1.0; attribution in 2.0.0.
#[export]
pub fn view(editor: &Editor) -> Result<String, String> {
    #[cfg_attr(not(feature = "v1_1"), allow(unused_mut))]
    let mut view = View { version: VERSION, html: None, words: None, chars: None, authors: None };
    #[cfg(feature = "v1_1")]
    {
        let text = editor.text()?;
        view.html = Some(preview::render(&text));
        view.words = Some(text.split_whitespace().count());
        view.chars = Some(text.chars().count());
    }
    #[cfg(feature = "v2")]
    {
        view.authors = Some(attribution(editor)?);
    }
    #[cfg(not(feature = "v1_1"))]
    let _ = editor;
    serde_json::to_string(&view).map_err(|e| e.to_string())
}

const VERSION: &str = if cfg!(feature = "fault-traps-on-edit") {
    "2.1.0"
} else if cfg!(feature = "v2") {
    "2.0.0"
} else if cfg!(feature = "v1_1") {
    "1.1.0"
} else {
    "1.0.0"
};

/// Set this peer's display name; returns the change to send to the other peers.
#[cfg(feature = "v2")]
#[export]
pub fn set_author(editor: &mut Editor, name: &str) -> Result<Vec<u8>, String> {
    editor.author = name.to_string();
    let authors = editor.object("authors")?;
    let actor = editor.doc.get_actor().to_hex_string();
    editor.doc.put(&authors, actor, name).map_err(|e| e.to_string())?;
    Ok(editor.commit_local())
}

/// Characters per author: the actor that inserted each character, named by `authors`.
#[cfg(feature = "v2")]
fn attribution(editor: &Editor) -> Result<Vec<Authored>, String> {
    use std::collections::BTreeMap;
    let text = editor.object("text")?;
    let authors = editor.object("authors")?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for item in editor.doc.list_range(&text, ..) {
        if let ExId::Id(_, actor, _) = item.id() {
            let name = match editor.doc.get(&authors, actor.to_hex_string()) {
                Ok(Some((value, _))) => value.as_str().map(str::to_string),
                _ => None,
            };
            *counts.entry(name.unwrap_or_else(|| format!("anonymous {}", &actor.to_hex_string()[..6]))).or_default() +=
                1;
        }
    }
    Ok(counts.into_iter().map(|(name, chars)| Authored { name, chars }).collect())
}

/// The Markdown preview. The text comes from every peer, so its HTML is built from an
/// allow-list: raw HTML is shown as text; links keep their target only for `http`, `https`,
/// `mailto` and relative URLs (anything else — `javascript:`, `data:`, `vbscript:`, however
/// spelled or entity-encoded — leaves the link text alone); images load only from this
/// origin (relative paths) or inline `data:image/…`, others show their alt text. Everything
/// else pulldown-cmark emits (paragraphs, emphasis, lists, code, headings, quotes) has no
/// attributes and escapes its text. The page's Content-Security-Policy is a second wall.
#[cfg(feature = "v1_1")]
mod preview {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};

    /// `text` as safe HTML.
    pub fn render(text: &str) -> String {
        let mut dropped: Vec<bool> = Vec::new();
        let events = Parser::new(text).filter_map(|event| match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
            Event::Start(Tag::Link { ref dest_url, .. }) => {
                let keep = safe_link(dest_url);
                dropped.push(!keep);
                keep.then_some(event)
            }
            Event::Start(Tag::Image { ref dest_url, .. }) => {
                let keep = safe_image(dest_url);
                dropped.push(!keep);
                keep.then_some(event)
            }
            Event::End(TagEnd::Link | TagEnd::Image) => (!dropped.pop().unwrap_or(false)).then_some(event),
            other => Some(other),
        });
        let mut html = String::new();
        pulldown_cmark::html::push_html(&mut html, events);
        html
    }

    /// The scheme a browser would read in `url` (lower case), if it has one: browsers
    /// ignore ASCII tabs and newlines anywhere and leading control characters and spaces.
    fn scheme(url: &str) -> Option<String> {
        let cleaned: String =
            url.trim_start_matches(|c: char| c <= ' ').chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
        let end = cleaned.find([':', '/', '?', '#', '\\'])?;
        (cleaned[end..].starts_with(':')).then(|| cleaned[..end].to_ascii_lowercase())
    }

    fn safe_link(url: &str) -> bool {
        match scheme(url) {
            Some(scheme) => matches!(scheme.as_str(), "http" | "https" | "mailto"),
            None => true,
        }
    }

    fn safe_image(url: &str) -> bool {
        let trimmed = url.trim_start_matches(|c: char| c <= ' ');
        match scheme(url) {
            Some(scheme) => scheme == "data" && trimmed[5..].trim_start().to_ascii_lowercase().starts_with("image/"),
            // Relative to this origin, but not `//host/…` (or `\\host`, which browsers read alike).
            None => {
                let head: String = trimmed.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).take(2).collect();
                !(head.starts_with("//") || head.starts_with("\\\\") || head == "/\\" || head == "\\/")
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::render;

        #[test]
        fn script_urls_lose_their_link_however_they_are_spelled() {
            for payload in [
                "[x](javascript:alert(1))",
                "[x](JaVaScRiPt:alert(1))",
                "[x]( javascript:alert(1))",
                "[x](&#106;avascript:alert(1))",
                "[x](java&#9;script:alert(1))",
                "[x](vbscript:msgbox(1))",
                "[x](data:text/html,<script>alert(1)</script>)",
                "<javascript:alert(1)>",
                "[x][r]\n\n[r]: javascript:alert(1)",
            ] {
                let html = render(payload);
                assert!(!html.contains("<a"), "{payload} -> {html}");
                assert!(!html.to_ascii_lowercase().contains("href"), "{payload} -> {html}");
            }
        }

        #[test]
        fn ordinary_links_stay() {
            assert_eq!(
                render("[w](https://example.org/a?b=1)"),
                "<p><a href=\"https://example.org/a?b=1\">w</a></p>\n"
            );
            assert!(render("[m](mailto:a@b.c)").contains("href=\"mailto:a@b.c\""));
            assert!(render("[r](/docs#x)").contains("href=\"/docs#x\""));
            assert!(render("<https://example.org>").contains("href=\"https://example.org\""));
        }

        #[test]
        fn remote_images_show_their_alt_text_and_local_ones_load() {
            for remote in [
                "![cat](https://evil.example/t.png)",
                "![cat](//evil.example/t.png)",
                r"![cat](\\\\evil.example/t.png)",
                "![cat](javascript:alert(1))",
            ] {
                let html = render(remote);
                assert!(!html.contains("<img"), "{remote} -> {html}");
                assert!(html.contains("cat"), "{remote} -> {html}");
            }
            assert!(render("![i](/logo.png)").contains("<img src=\"/logo.png\""));
            assert!(render("![i](data:image/png;base64,AAAA)").contains("<img src=\"data:image/png;base64,AAAA\""));
        }

        #[test]
        fn raw_html_and_attribute_breakouts_are_text() {
            let html = render(
                "<img src=x onerror=alert(1)> <script>alert(1)</script>\n\n[t](/ \"a\\\" onmouseover=alert(1)\")",
            );
            assert!(!html.contains("<img") && !html.contains("<script"), "{html}");
            assert!(!html.contains("\" onmouseover"), "{html}");
        }
    }
}
