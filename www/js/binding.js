// The textarea bound to the guest: local edits (derived from the textarea's text, so they
// can be deferred), remote edits (with the caret and selection moved along), undo/redo, and
// recovery when the running version traps after its probation.

import { $, toast, notice } from './ui.js';
import { splice, applySplice, isEmpty } from './diff.js';
import { record, take, transform } from './undo.js';

export function createBinding(session, guest, { send, scheduleView }) {
  const text = $('text');

  function localEdit(edit) {
    const change = guest.json('edit', edit);
    session.shown = applySplice(session.shown, edit);
    session.documentBytes = (session.documentBytes ?? 0) + change.length;
    notice('edit', null);
    send(change);
  }

  /** Give the guest whatever the user typed that it does not have yet. */
  function syncLocal() {
    if (session.recovery) return; // applied once a working version runs again
    const edit = splice(session.shown, text.value);
    if (isEmpty(edit)) return;
    const removed = session.shown.slice(edit.pos, edit.pos + edit.del);
    const tooLarge = oversize(edit);
    if (tooLarge) return refuse(edit, tooLarge);
    try {
      localEdit(edit);
      record(session.history, { pos: edit.pos, removed, inserted: edit.ins });
    } catch (error) {
      if (error.code === 'GUEST_TRAP') return recover(error);
      refuse(edit, `${error.code ?? ''} ${error.message}`);
    }
    scheduleView();
  }

  /** Why the server would refuse this edit's change, before the guest makes it. */
  function oversize(edit) {
    const limit = session.limits?.maxChangeBytes;
    if (!limit) return null;
    const bytes = new TextEncoder().encode(edit.ins).length;
    // A change carries the text plus ~100 bytes of metadata and operations.
    if (bytes + 1024 > limit) return `this paste is ${Math.ceil(bytes / 1024)} KiB; the server takes changes up to ${Math.floor(limit / 1024)} KiB`;
    if (session.documentBytes + bytes + 1024 > session.limits.maxDocumentBytes) return `the document is full (the server keeps at most ${Math.floor(session.limits.maxDocumentBytes / 1048576)} MiB)`;
    return null;
  }

  /** Put the text back as the guest has it, caret where the edit was. */
  function refuse(edit, why) {
    toast(`Edit refused: ${why}`, 'error');
    notice('edit', `Your last edit was not applied: ${why}.`);
    const caret = Math.max(0, text.selectionStart - edit.ins.length + edit.del);
    text.value = session.shown;
    text.setSelectionRange(caret, caret);
  }

  /**
   * The running version trapped after its probation (so the loader did not roll it back):
   * roll back explicitly, keeping what the user typed in the textarea, and apply it then.
   * Server messages wait meanwhile, so nothing overwrites the unsent text.
   */
  function recover(error) {
    const broken = session.slot.current;
    toast(`editor ${broken.version} failed (${error.message}); going back to the previous version. Your text is kept.`, 'error');
    session.recovery = session.slot
      .rollback({ allowSnapshot: true })
      .then(() => {
        guest.catchUp();
        session.recovery = null;
        syncLocal();
      })
      .catch((e) => {
        // Nothing to go back to: show the guest's text again rather than loop on the trap.
        session.recovery = null;
        toast(`Rollback failed: ${e.code ?? ''} ${e.message}. Unsent typing was discarded.`, 'error');
        text.value = session.shown;
      });
  }

  function undoOrRedo(from, to, invert) {
    const taken = take(from, invert);
    if (!taken) return;
    localEdit(taken.edit);
    text.value = session.shown;
    const caret = taken.entry.pos + taken.edit.ins.length;
    text.setSelectionRange(caret, caret);
    to.push(taken.entry);
    scheduleView();
  }

  function onKey(event) {
    if (!(event.ctrlKey || event.metaKey)) return;
    const key = event.key.toLowerCase();
    const { undo, redo } = session.history;
    if (key === 'z' && !event.shiftKey) undoOrRedo(undo, redo, true);
    else if ((key === 'z' && event.shiftKey) || key === 'y') undoOrRedo(redo, undo, false);
    else return;
    event.preventDefault();
  }

  /** The document changed remotely: show `newText`, keeping caret, selection and history. */
  function applyRemote(newText) {
    const edit = splice(session.shown, newText);
    if (isEmpty(edit)) return;
    const delta = edit.ins.length - edit.del;
    const shift = (i) => (i <= edit.pos ? i : i >= edit.pos + edit.del ? i + delta : edit.pos + edit.ins.length);
    const { selectionStart, selectionEnd, selectionDirection } = text;
    text.value = newText;
    session.shown = newText;
    text.setSelectionRange(shift(selectionStart), shift(selectionEnd), selectionDirection);
    transform(session.history, edit);
  }

  function enable() {
    text.disabled = false;
    text.placeholder = 'Type here…';
  }

  text.addEventListener('input', syncLocal);
  text.addEventListener('keydown', onKey);
  return { syncLocal, applyRemote, enable };
}
