// The collaborative editor page. The editing logic is a guest module (automerge inside),
// loaded and hot-swapped through the loader's public API only. The page follows the
// server's signed registry: HotSwap.watch verifies every manifest with the key pinned in
// /api/config and swaps when a new release is made current. One module per concern:
// binding (textarea <-> guest), relay (guest <-> server), panel (view, deploys, timeline),
// events (what each loader event does), undo, diff, ui.
import init, { HotSwap } from '/pkg/wasm_hotswap.js';
import { $, toast } from './ui.js';
import { createHistory } from './undo.js';
import { createGuest } from './guest.js';
import { createBinding } from './binding.js';
import { createRelay } from './relay.js';
import { createPanel } from './panel.js';
import { createEvents } from './events.js';

/** Everything the page's modules share about this editing session. */
const session = {
  slot: null,
  socket: null,
  synced: false,
  shown: '',           // the text the guest holds, and the textarea shows
  unacked: [],         // local changes the server has not made durable yet (resent on reconnect)
  history: createHistory(),
  deployed: null,      // the release the last verified manifest names as current
  swap: null,          // the timeline entry being recorded
  chain: Promise.resolve(), // server messages are handled one at a time, in arrival order
  retryDelay: 250,
  recovery: null,      // a rollback under way after a trap (see binding.recover)
  journal: [],         // every change made or received since the last swap (see guest.catchUp)
  adopting: false,     // a newly deployed release is being checked and swapped to
};
// Test hooks: the end-to-end tests read the session, and check that no reload happened.
window.__demo = session;
window.__loadMarker = crypto.randomUUID();

const guest = createGuest(session);
const panel = createPanel(session, guest);
let binding;
const relay = createRelay(session, guest, {
  applyRemote: (text) => binding.applyRemote(text),
  scheduleView: panel.scheduleView,
  onSynced: () => binding.enable(),
});
binding = createBinding(session, guest, { send: relay.send, scheduleView: panel.scheduleView });
const events = createEvents(session, { guest, panel, relay });

/** Load the editor logic from the signed registry (or the bundled fallback). */
async function loadLogic() {
  const config = await (await fetch('/api/config')).json();
  session.slot = await HotSwap.watch(config.manifest, {
    guest: config.guest,
    keys: config.keys,
    push: config.push,
    fallback: config.fallback ?? undefined,
    onEvent: events.onEvent,
  });
  panel.finishTimeline({ type: 'load', version: session.slot.current.version });
  events.afterVersionChange();
}

async function main() {
  await init();
  await loadLogic();
  $('name').value = localStorage.getItem('hotswap-name') || `Guest ${Math.floor(Math.random() * 900 + 100)}`;
  $('name').addEventListener('change', () => {
    localStorage.setItem('hotswap-name', $('name').value);
    events.announceName();
  });
  relay.connect();
}

main().catch((error) => toast(`${error.code ?? 'Error'}: ${error.message}`, 'error'));
