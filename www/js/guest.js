// Calling the editor guest through the loader's public API. A call that traps on a version
// under probation makes the loader roll back; the restored guest then catches up on the
// journal and the call is made again on it.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function createGuest(session) {
  /** A bytes export. */
  function call(name, input = new Uint8Array()) {
    try {
      return session.slot.call(name, input);
    } catch (error) {
      if (error.code !== 'GUEST_TRAP' || !error.details.rolledBack) throw error;
      catchUp();
      return session.slot.call(name, input);
    }
  }

  /**
   * After a rollback the restored guest may hold the state from before the swap (the
   * snapshot). Every change made or received since is in the journal; merging it again
   * (CRDT changes are idempotent) brings back the exact document, and the actor's own
   * changes so its next edit continues their sequence.
   */
  function catchUp() {
    for (const change of session.journal) session.slot.call('merge', change);
  }

  const text = (name, value = '') => decoder.decode(call(name, encoder.encode(value)));
  const json = (name, value) => call(name, encoder.encode(JSON.stringify(value)));

  return { call, catchUp, text, json, bytesOf: (s) => encoder.encode(s), textOf: (b) => decoder.decode(b) };
}
