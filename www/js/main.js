// The collaborative editor page. The editing logic is a guest module (automerge inside),
// loaded and hot-swapped through the loader's public API only. The page follows the
// server's signed registry: HotSwap.watch verifies every manifest with the key pinned in
// /api/config and swaps when a new release is made current. One module per concern:
// binding (textarea <-> guest), relay (guest <-> server), panel (view, deploys, timeline),
// events (what each loader event does), undo, diff, ui.
import init, { HotSwap } from '/pkg/watch.js';
import { $, notice } from './ui.js';
import { createHistory } from './undo.js';
import { createGuest } from './guest.js';
import { createBinding } from './binding.js';
import { createRelay } from './relay.js';
import { createPanel } from './panel.js';
import { createEvents } from './events.js';
import { startDev } from './dev.js';

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
  lastCommit: null,    // the last commit event (how its state was transferred, for tests)
  chain: Promise.resolve(), // server messages are handled one at a time, in arrival order
  retryDelay: 250,
  recovery: null,      // a rollback under way after a trap (see binding.recover)
  journal: [],         // every change made or received since the last swap (see guest.catchUp)
  adopting: false,     // a newly deployed release is being checked and swapped to
  config: null,        // /api/config: what the page pins
  limits: null,        // the relay's limits, from its hello
  failedHere: new Set(), // versions that failed on this page (their deploy buttons say so)
  startAttempts: 0,    // start-up attempts so far (see start)
};
// Test hooks: the end-to-end tests read the session, and check that no reload happened.
window.__demo = session;
// Not crypto.randomUUID(): it exists only in secure contexts, and a phone on the LAN opens
// the demo over plain http.
window.__loadMarker = crypto.getRandomValues(new Uint32Array(2)).join("-");

const guest = createGuest(session);
const panel = createPanel(session, guest);
let binding;
const relay = createRelay(session, guest, {
  applyRemote: (text) => binding.applyRemote(text),
  scheduleView: panel.scheduleView,
  onSynced: () => binding.enable(),
  onReconnected: () => events.check(), // the server is back: anything refused meanwhile is retried
});
binding = createBinding(session, guest, { send: relay.send, scheduleView: panel.scheduleView });
const events = createEvents(session, { guest, panel, relay });

/** Load the editor logic from the signed registry (or the bundled fallback). */
async function loadLogic() {
  const response = await fetch('/api/config');
  if (!response.ok) throw new Error(`the server answered ${response.status} for its configuration`);
  const config = await response.json();
  session.config = config;
  session.slot = await HotSwap.watch(config.manifest, {
    guest: config.guest,
    keys: config.keys,
    push: config.push,
    fallback: config.fallback ?? undefined,
    // Without push, check every 10 s; after errors the wait doubles, up to a minute.
    pollIntervalMs: 10000,
    maxBackoffMs: 60000,
    onEvent: events.onEvent,
  });
  // A start that swapped from the last good release has its entry already.
  if (!$('timeline').children.length) panel.finishTimeline({ type: 'load', version: session.slot.current.version });
  events.afterVersionChange();
}

/** The deploy link's credential (`#deploy=…`), kept for this origin and taken off the URL. */
function takeDeployToken() {
  const found = /(?:^#|&)deploy=([0-9a-f]{64})(?:&|$)/.exec(location.hash);
  if (found) {
    localStorage.setItem('hotswap-deploy-token', found[1]);
    history.replaceState(null, '', location.pathname + location.search);
  }
}

/**
 * Start: the loader, then the editor logic. If the server cannot be reached (or answers
 * badly) meanwhile, try again with a growing wait — 1 s, 2 s, 4 s … up to 30 s — and say
 * so on screen, counting down.
 */
async function start() {
  for (;;) {
    try {
      await init();
      await loadLogic();
      notice('start', null);
      return;
    } catch (error) {
      session.startAttempts += 1;
      if (session.slot) return; // loaded after all; nothing to retry
      const wait = Math.min(1000 * 2 ** (session.startAttempts - 1), 30000);
      const why = `${error.code ?? error.name ?? 'Error'}: ${error.message}`;
      for (let left = Math.ceil(wait / 1000); left > 0; left--) {
        notice('start', `Cannot load the editor logic (${why}). Retrying in ${left} s (attempt ${session.startAttempts + 1})…`);
        $('text').placeholder = 'Waiting for the server…';
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      notice('start', `Cannot load the editor logic (${why}). Retrying now…`);
    }
  }
}

async function main() {
  takeDeployToken();
  panel.showDeployAccess();
  await start();
  startDev(session).catch((error) => notice('dev', `The dev overlay failed to start: ${error.message}`));
  $('name').value = localStorage.getItem('hotswap-name') || `Guest ${Math.floor(Math.random() * 900 + 100)}`;
  $('name').addEventListener('change', () => {
    localStorage.setItem('hotswap-name', $('name').value);
    events.announceName();
  });
  relay.connect();
}

main().catch((error) => notice('start', `The page failed to start: ${error.code ?? error.name}: ${error.message}`));
