// The page's own undo/redo history, kept outside the guest so it survives every swap:
// entries are local edits `{ pos, removed, inserted }`, moved by remote edits.

export function createHistory() {
  return { undo: [], redo: [] };
}

/** A local edit was made: it can be undone; what was undone can no longer be redone. */
export function record(history, entry) {
  history.undo.push(entry);
  history.redo = [];
}

/**
 * The newest entry of `from` and the edit that undoes it (`invert`) or redoes it; `null`
 * when there is none. The caller moves the entry to the other stack once the edit is made.
 */
export function take(from, invert) {
  const entry = from.pop();
  if (!entry) return null;
  const edit = invert
    ? { pos: entry.pos, del: entry.inserted.length, ins: entry.removed }
    : { pos: entry.pos, del: entry.removed.length, ins: entry.inserted };
  return { entry, edit };
}

/** A remote edit happened: entries after it move; ones it overlapped cannot be undone. */
export function transform(history, edit) {
  const delta = edit.ins.length - edit.del;
  for (const stack of [history.undo, history.redo]) {
    for (let i = stack.length - 1; i >= 0; i--) {
      const e = stack[i];
      if (e.pos >= edit.pos + edit.del) e.pos += delta;
      else if (e.pos + Math.max(e.inserted.length, e.removed.length) > edit.pos) stack.splice(i, 1);
    }
  }
}
