// The collaboration relay: one WebSocket to the server. Local changes are journaled, sent,
// and kept until the server acknowledges them (resent after a reconnect); remote changes
// are merged into the guest one at a time, in arrival order.

import { $, toast, setLink } from './ui.js';

export function createRelay(session, guest, { applyRemote, scheduleView, onSynced }) {
  function send(change) {
    if (change.length === 0) return;
    session.journal.push(change);
    session.unacked.push(change);
    if (session.synced) transmit(change);
  }

  /** Send now if the socket is open; otherwise the change waits in `unacked` for the next one. */
  function transmit(change) {
    if (session.socket?.readyState === WebSocket.OPEN) session.socket.send(change);
  }

  function connect() {
    const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
    socket.binaryType = 'arraybuffer';
    session.socket = socket;
    socket.onopen = () => {
      setLink(true);
      session.retryDelay = 250;
    };
    socket.onmessage = ({ data }) => {
      session.chain = session.chain
        .then(() => session.recovery)
        .then(() => handle(data))
        .catch((error) => toast(`${error.code ?? 'Error'}: ${error.message}`, 'error'));
    };
    socket.onclose = () => {
      if (session.socket === socket) session.socket = null;
      session.synced = false;
      setLink(false);
      setTimeout(connect, session.retryDelay);
      session.retryDelay = Math.min(session.retryDelay * 2, 4000);
    };
  }

  const messages = {
    hello() {},
    synced() {
      session.synced = true;
      onSynced();
      for (const change of session.unacked) transmit(change);
    },
    ack() {
      session.unacked.shift();
    },
    peers({ peers }) {
      $('peers').textContent = `${peers.length} ${peers.length === 1 ? 'peer' : 'peers'}`;
    },
    error({ message }) {
      toast(`Server: ${message}`, 'error');
    },
  };

  async function handle(data) {
    if (typeof data !== 'string') {
      const change = new Uint8Array(data);
      session.journal.push(change);
      applyRemote(guest.textOf(guest.call('merge', change)));
      scheduleView();
      return;
    }
    const message = JSON.parse(data);
    messages[message.type]?.(message);
  }

  return { send, connect };
}
