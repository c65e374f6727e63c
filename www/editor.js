// The collaborative editor page. The editing logic is a guest module (automerge inside),
// loaded and hot-swapped through the loader's public API only; this file is the glue:
// textarea <-> guest, guest <-> server relay, and the deploy/timeline/toast UI. The logic
// follows the server's signed registry: HotSwap.watch verifies every manifest with the key
// pinned in /api/config and swaps when a new release is made current.
import init, { HotSwap } from '/pkg/wasm_hotswap.js';

const $ = (id) => document.getElementById(id);
const text = $('text');
const encoder = new TextEncoder();
const decoder = new TextDecoder();
window.__loadMarker = crypto.randomUUID(); // a reload would replace it; tests check it survives

const page = {
  slot: null,
  socket: null,
  synced: false,
  shown: '',           // the text the guest holds, and the textarea shows
  unacked: [],         // local changes the server has not made durable yet (resent on reconnect)
  undo: [],            // local edits as { pos, removed, inserted }
  redo: [],
  deployed: null,      // the release the last verified manifest names as current
  swap: null,          // the timeline entry being recorded
  chain: Promise.resolve(), // server messages are handled one at a time, in arrival order
  retryDelay: 250,
  recovery: null,      // a rollback under way after a trap (see recover)
  journal: [],         // every change made or received since the last swap (see catchUp)
  adopting: false,     // a newly deployed release is being checked and swapped to
};
window.__demo = page;

// ---------- UI helpers

function toast(message, kind = 'info') {
  console.info(`toast (${kind}): ${message}`);
  const item = document.createElement('div');
  item.className = `toast ${kind}`;
  item.textContent = message;
  $('toasts').append(item);
  setTimeout(() => item.remove(), 7000);
}

/** A lasting line under the header: why the page does not run what is deployed. */
function notice(message) {
  $('notice').textContent = message ?? '';
  $('notice').hidden = !message;
  if (message) console.info(`notice: ${message}`);
}

function setLink(online) {
  $('link').textContent = online ? 'online' : 'offline';
  $('link').className = `link ${online ? 'online' : 'offline'}`;
}

// ---------- calling the guest

/**
 * A bytes export. If the call trapped and the loader rolled the failing version back, the
 * restored guest catches up on the journal, then the call is made again on it.
 */
function guestCall(name, input = new Uint8Array()) {
  try {
    return page.slot.call(name, input);
  } catch (error) {
    if (error.code !== 'GUEST_TRAP' || !error.rolledBack) throw error;
    catchUp();
    return page.slot.call(name, input);
  }
}

/**
 * After a rollback, the restored guest may hold the state from before the swap (the
 * snapshot). Every change made or received since is in the journal; merging it again
 * (CRDT changes are idempotent) brings back the exact document, and the actor's own
 * changes so its next edit continues their sequence.
 */
function catchUp() {
  for (const change of page.journal) page.slot.call('merge', change);
}

const guestText = (name, value = '') => decoder.decode(guestCall(name, encoder.encode(value)));

// ---------- text diffs (UTF-16 code units, never splitting a surrogate pair)

const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

function splice(before, after) {
  const max = Math.min(before.length, after.length);
  let p = 0;
  while (p < max && before.charCodeAt(p) === after.charCodeAt(p)) p++;
  if (p > 0 && isHigh(before.charCodeAt(p - 1))) p--;
  let s = 0;
  while (s < max - p && before.charCodeAt(before.length - 1 - s) === after.charCodeAt(after.length - 1 - s)) s++;
  if (s > 0 && isLow(before.charCodeAt(before.length - s))) s--;
  return { pos: p, del: before.length - p - s, ins: after.slice(p, after.length - s) };
}

const applySplice = (s, { pos, del, ins }) => s.slice(0, pos) + ins + s.slice(pos + del);

// ---------- local edits

function send(change) {
  if (change.length === 0) return;
  page.journal.push(change);
  page.unacked.push(change);
  if (page.synced) transmit(change);
}

/** Send now if the socket is open; otherwise the change waits in `unacked` for the next one. */
function transmit(change) {
  if (page.socket?.readyState === WebSocket.OPEN) page.socket.send(change);
}

function localEdit(edit) {
  const change = guestCall('edit', encoder.encode(JSON.stringify(edit)));
  page.shown = applySplice(page.shown, edit);
  send(change);
}

/** Give the guest whatever the user typed that it does not have yet. */
function syncLocal() {
  if (page.recovery) return; // applied once a working version runs again
  const edit = splice(page.shown, text.value);
  if (edit.del === 0 && edit.ins === '') return;
  const removed = page.shown.slice(edit.pos, edit.pos + edit.del);
  try {
    localEdit(edit);
    page.undo.push({ pos: edit.pos, removed, inserted: edit.ins });
    page.redo = [];
  } catch (error) {
    if (error.code === 'GUEST_TRAP') return recover(error);
    toast(`Edit refused: ${error.code ?? ''} ${error.message}`, 'error');
    const caret = text.selectionStart - edit.ins.length + edit.del;
    text.value = page.shown;
    text.setSelectionRange(caret, caret);
  }
  scheduleView();
}

text.addEventListener('input', syncLocal);

/**
 * The running version trapped after its probation (so the loader did not roll it back):
 * roll back explicitly, keeping what the user typed in the textarea, and apply it then.
 * Server messages wait meanwhile, so nothing overwrites the unsent text.
 */
function recover(error) {
  const broken = page.slot.current;
  toast(`editor ${broken.version} failed (${error.message}); going back to the previous version. Your text is kept.`, 'error');
  page.recovery = page.slot
    .rollback({ allowSnapshot: true })
    .then(() => {
      catchUp();
      page.recovery = null;
      syncLocal();
    })
    .catch((e) => {
      // Nothing to go back to: show the guest's text again rather than loop on the trap.
      page.recovery = null;
      toast(`Rollback failed: ${e.code ?? ''} ${e.message}. Unsent typing was discarded.`, 'error');
      text.value = page.shown;
    });
}

function undoOrRedo(from, to, invert) {
  const entry = from.pop();
  if (!entry) return;
  const edit = invert ? { pos: entry.pos, del: entry.inserted.length, ins: entry.removed } : { pos: entry.pos, del: entry.removed.length, ins: entry.inserted };
  localEdit(edit);
  text.value = page.shown;
  const caret = entry.pos + edit.ins.length;
  text.setSelectionRange(caret, caret);
  to.push(entry);
  scheduleView();
}

text.addEventListener('keydown', (event) => {
  if (!(event.ctrlKey || event.metaKey)) return;
  const key = event.key.toLowerCase();
  if (key === 'z' && !event.shiftKey) undoOrRedo(page.undo, page.redo, true);
  else if ((key === 'z' && event.shiftKey) || key === 'y') undoOrRedo(page.redo, page.undo, false);
  else return;
  event.preventDefault();
});

// ---------- remote edits

function applyRemote(newText) {
  const edit = splice(page.shown, newText);
  if (edit.del === 0 && edit.ins === '') return;
  const delta = edit.ins.length - edit.del;
  const shift = (i) => (i <= edit.pos ? i : i >= edit.pos + edit.del ? i + delta : edit.pos + edit.ins.length);
  const { selectionStart, selectionEnd, selectionDirection } = text;
  text.value = newText;
  page.shown = newText;
  text.setSelectionRange(shift(selectionStart), shift(selectionEnd), selectionDirection);
  // Undo entries after the remote change move with it; ones it overlapped cannot be undone.
  for (const stack of [page.undo, page.redo]) {
    for (let i = stack.length - 1; i >= 0; i--) {
      const e = stack[i];
      if (e.pos >= edit.pos + edit.del) e.pos += delta;
      else if (e.pos + Math.max(e.inserted.length, e.removed.length) > edit.pos) stack.splice(i, 1);
    }
  }
}

// ---------- the side panel (what the running version's `view` export returns)

let viewPending = false;
function scheduleView() {
  if (viewPending || !page.slot) return;
  viewPending = true;
  requestAnimationFrame(() => {
    viewPending = false;
    renderView();
  });
}

function renderView() {
  let view;
  try {
    view = JSON.parse(guestText('view'));
  } catch (error) {
    return toast(`view failed: ${error.code ?? ''} ${error.message}`, 'error');
  }
  const parts = [`<p><strong>editor ${view.version}</strong></p>`];
  if (view.words !== undefined) parts.push(`<p class="counts" id="counts">${view.words} words · ${view.chars} characters</p>`);
  if (view.authors) {
    const items = view.authors.map((a) => `<li>${escapeHtml(a.name)}: ${a.chars} characters</li>`).join('');
    parts.push(`<p class="counts">Who wrote what</p><ul class="authors" id="authors">${items}</ul>`);
  }
  // The guest renders Markdown with raw HTML escaped (see guest-modules/editor).
  if (view.html !== undefined) parts.push(`<div class="preview" id="preview">${view.html}</div>`);
  if (parts.length === 1) parts.push('<p class="muted">Plain text editing. Deploy 1.1.0 or later for more.</p>');
  $('view').innerHTML = parts.join('');
}

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// ---------- versions, deploys and the swap timeline

/** The deploy buttons: the releases the last verified manifest lists, its current one marked. */
function showVersions() {
  const registry = page.slot?.registry;
  if (!registry) return;
  $('registry').textContent = `signed manifest v${registry.manifestVersion ?? '–'}${registry.pushOpen ? ' · push' : ''}`;
  $('versions').replaceChildren(...registry.versions.map((v) => {
    const button = document.createElement('button');
    button.textContent = v.version;
    button.dataset.version = v.version;
    button.title = `sha256 ${v.sha256}`;
    button.classList.toggle('deployed', v.version === registry.current);
    button.onclick = () => deploy(v.version);
    return button;
  }));
}

async function deploy(version) {
  const response = await fetch('/api/deploy', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version }) });
  if (!response.ok) toast(`Deploy failed: ${await response.text()}`, 'error');
}

/**
 * A verified manifest names a release as current. The loader's watcher is already checking
 * it (and swapping if the policy allows); our own check queues behind that one, so when it
 * settles the page has adopted the release or refused it.
 */
function onManifest(event) {
  page.deployed = { version: event.version, manifestVersion: event.manifestVersion };
  if (!page.slot) return; // the first manifest, while HotSwap.watch loads
  showVersions();
  page.adopting = true;
  page.slot.checkForUpdates()
    .catch(() => {}) // reported through the error event
    .finally(() => {
      page.adopting = false;
      showVersions();
    });
}

function onEvent(event) {
  if (event.type === 'log') return;
  if (event.type === 'manifest') return onManifest(event);
  if (event.type === 'fallback') {
    notice(`The registry could not be used (${event.code}: ${event.message}). Running the editor bundled with this page.`);
    return toast('Registry unavailable or untrusted: running the bundled editor.', 'error');
  }
  if (event.type === 'update-skipped') {
    const why = { 'failed-here': 'it failed on this page', major: 'major updates need a reload', 'no-migration': 'it cannot take over this document' }[event.reason];
    return toast(`editor ${event.version} is deployed, but ${why}: staying on ${page.slot?.current.version}.`, 'error');
  }
  if (event.type === 'fetch') page.swap = { from: page.slot?.current.version, phases: [] };
  if (page.swap && event.durationMs !== undefined) page.swap.phases.push(event);
  if (event.type === 'commit' || event.type === 'rollback' || (event.type === 'error' && page.swap)) finishTimeline(event);
  if (event.type === 'commit') {
    page.journal = []; // the new version holds everything so far
    notice(null);
    queueMicrotask(afterVersionChange); // not from inside the loader's call
  }
  if (event.type === 'rollback') queueMicrotask(afterVersionChange);
  if (event.type === 'rollback' && event.reason === 'trap') {
    toast(`editor ${event.fromVersion} failed after the swap: rolled back to ${event.version}. No text was lost.`, 'error');
  }
  if (event.type === 'error' && event.code !== 'GUEST_TRAP') {
    const pending = page.deployed && page.deployed.version !== page.slot?.current.version;
    const what = event.code.startsWith('MANIFEST_') ? "the registry's manifest" : pending ? `editor ${page.deployed.version}` : 'an update';
    const running = `editor ${event.version ?? page.slot?.current.version}`;
    notice(page.slot?.registry?.usingFallback
      ? `Running the ${running} bundled with this page: refused ${what} (${event.code}: ${event.message}).`
      : `Refused ${what}: ${event.code}: ${event.message}. Still running ${running}.`);
    toast(`${event.code}: ${event.message}`, 'error');
  }
}

function finishTimeline(last) {
  const swap = page.swap ?? { phases: [last] };
  page.swap = null;
  const total = swap.phases.reduce((sum, p) => sum + (p.type === 'compile' || p.type === 'verify' ? 0 : p.durationMs), 0);
  const item = document.createElement('li');
  const to = last.type === 'error' ? `failed: ${last.code}` : `editor ${last.version}`;
  const phases = swap.phases.map((p) => `${p.type} ${p.durationMs.toFixed(p.type === 'commit' ? 2 : 1)} ms`).join(' · ');
  item.innerHTML = `<div>${swap.from ? `${escapeHtml(swap.from)} → ` : 'load '}${escapeHtml(to)}</div><div class="muted">${escapeHtml(phases)}</div>`;
  const bar = document.createElement('div');
  bar.className = 'phases';
  for (const p of swap.phases) {
    if (p.type === 'compile' || p.type === 'verify') continue; // they overlap the fetch
    const span = document.createElement('span');
    span.className = `phase-${p.type}`;
    span.style.width = `${Math.max(1, (100 * p.durationMs) / Math.max(total, 0.001))}%`;
    span.title = `${p.type}: ${p.durationMs.toFixed(2)} ms`;
    bar.append(span);
  }
  item.append(bar);
  $('timeline').prepend(item);
}

function afterVersionChange() {
  $('running').textContent = `editor ${page.slot.current.version}`;
  showVersions();
  announceName();
  scheduleView();
}

function announceName() {
  if (!page.slot?.current.exports.includes('set_author')) return;
  try {
    send(guestCall('set_author', encoder.encode($('name').value)));
  } catch (error) {
    toast(`set_author failed: ${error.message}`, 'error');
  }
}

// ---------- the relay

function connect() {
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  socket.binaryType = 'arraybuffer';
  page.socket = socket;
  socket.onopen = () => { setLink(true); page.retryDelay = 250; };
  socket.onmessage = ({ data }) => {
    page.chain = page.chain
      .then(() => page.recovery)
      .then(() => handle(data))
      .catch((error) => toast(`${error.code ?? 'Error'}: ${error.message}`, 'error'));
  };
  socket.onclose = () => {
    if (page.socket === socket) page.socket = null;
    page.synced = false;
    setLink(false);
    setTimeout(connect, page.retryDelay);
    page.retryDelay = Math.min(page.retryDelay * 2, 4000);
  };
}

async function handle(data) {
  if (typeof data !== 'string') {
    const change = new Uint8Array(data);
    page.journal.push(change);
    applyRemote(decoder.decode(guestCall('merge', change)));
    scheduleView();
    return;
  }
  const message = JSON.parse(data);
  switch (message.type) {
    case 'hello':
      break;
    case 'synced':
      page.synced = true;
      text.disabled = false;
      text.placeholder = 'Type here…';
      for (const change of page.unacked) transmit(change);
      break;
    case 'ack':
      page.unacked.shift();
      break;
    case 'peers':
      $('peers').textContent = `${message.peers.length} ${message.peers.length === 1 ? 'peer' : 'peers'}`;
      break;
    case 'error':
      toast(`Server: ${message.message}`, 'error');
      break;
  }
}

/** Load the editor logic from the signed registry (or the bundled fallback). */
async function loadLogic() {
  const config = await (await fetch('/api/config')).json();
  page.slot = await HotSwap.watch(config.manifest, {
    guest: config.guest,
    keys: config.keys,
    push: config.push,
    fallback: config.fallback ?? undefined,
    onEvent,
  });
  finishTimeline({ type: 'load', version: page.slot.current.version });
  afterVersionChange();
}

async function main() {
  await init();
  await loadLogic();
  $('name').value = localStorage.getItem('hotswap-name') || `Guest ${Math.floor(Math.random() * 900 + 100)}`;
  $('name').addEventListener('change', () => {
    localStorage.setItem('hotswap-name', $('name').value);
    announceName();
  });
  connect();
}

main().catch((error) => toast(`${error.code ?? 'Error'}: ${error.message}`, 'error'));
