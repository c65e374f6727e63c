//! Benchmark fixtures: editor documents with long histories, built natively with the editor
//! guest's own starting document, as peers typing one character per change would make them.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, ReadDoc, ROOT};

/// An editor document of `changes` one-character edits (about one in ten a deletion) by two
/// peers taking turns every hundred edits, saved whole.
pub fn editor_history(changes: usize) -> Result<Vec<u8>, String> {
    let mut doc = editor::initial_doc();
    let text = match doc.get(ROOT, "text") {
        Ok(Some((_, id))) => id,
        _ => return Err("the editor's initial document has no text".into()),
    };
    let actors = [ActorId::from(&[1u8; 16][..]), ActorId::from(&[2u8; 16][..])];
    let mut len = 0usize;
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..changes {
        if i % 100 == 0 {
            doc.set_actor(actors[(i / 100) % 2].clone());
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = if len == 0 { 0 } else { (seed as usize) % (len + 1) };
        let result = if len > 0 && seed.is_multiple_of(10) {
            len -= 1;
            doc.splice_text(&text, at.min(len), 1, "")
        } else {
            len += 1;
            doc.splice_text(&text, at, 0, &((b'a' + (seed % 26) as u8) as char).to_string())
        };
        result.map_err(|e| format!("edit {i}: {e}"))?;
        doc.commit_with(CommitOptions::default().with_time(i as i64));
    }
    Ok(doc.save())
}
