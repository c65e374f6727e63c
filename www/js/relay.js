// The collaboration relay: one WebSocket to the server. Local changes are journaled, sent,
// and kept until the server acknowledges them (resent after a reconnect); remote changes
// are merged into the guest one at a time, in arrival order. The server answers every
// change this page sends, in order, with `ack` or `refused`; a page over its rate is told
// when to come back, and the connection is closed until then.

import { $, toast, notice, setLink } from './ui.js';

/** WebSocket close code 1013: try again later (the server's rate limit). */
const TRY_AGAIN_LATER = 1013;

export function createRelay(session, guest, { applyRemote, scheduleView, onSynced, onReconnected }) {
  let reconnects = 0;

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
    socket.onclose = ({ code }) => {
      if (session.socket === socket) session.socket = null;
      session.synced = false;
      setLink(false);
      if (code !== TRY_AGAIN_LATER) notice('relay', 'Connection to the server lost: reconnecting…');
      setTimeout(connect, session.retryDelay);
      session.retryDelay = Math.min(session.retryDelay * 2, 4000);
    };
  }

  const messages = {
    hello({ limits }) {
      session.limits = limits ?? null;
    },
    synced({ documentBytes }) {
      session.synced = true;
      session.documentBytes = documentBytes ?? 0;
      notice('relay', null);
      onSynced();
      for (const change of session.unacked) transmit(change);
      if (reconnects++ > 0) onReconnected();
    },
    ack() {
      session.unacked.shift();
      notice('refused', null); // this page's changes go through again
    },
    refused({ code, message, retryMs }) {
      if (code === 'RATE_LIMITED') {
        // The server closes this connection; everything unacknowledged is resent after the wait.
        session.retryDelay = Math.max(retryMs ?? 1000, 250);
        notice('relay', `The server paused this page for sending too fast (${message}). Resending in ${Math.ceil(session.retryDelay / 1000)} s.`);
        return;
      }
      // Answers come in the order the changes were sent: this one is the oldest unanswered.
      session.unacked.shift();
      notice('refused', `The server refused a change from this page (${code}: ${message}). Others do not see it.`);
      toast(`Server refused a change: ${code}`, 'error');
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
      if (session.synced) session.documentBytes += change.length;
      session.journal.push(change);
      applyRemote(guest.textOf(guest.call('merge', change)));
      scheduleView();
      return;
    }
    const message = JSON.parse(data);
    if (Object.hasOwn(messages, message.type)) messages[message.type](message);
  }

  return { send, connect };
}
