// The hotswap dev overlay, served by `hotswap dev` (and the demo's dev mode) at
// /dev/overlay.js. It follows the dev loop's events (Server-Sent Events, /dev/events):
// a compile error (or a build the loader would refuse) covers the page — the page keeps
// running the last good version underneath — and goes when a fixed build is published. A
// status line in a corner says what the loop does: building, published, live. Given the
// page's HotSwap, it also says when a new build trapped and was rolled back; the next save
// is tried again (each build is a new dev version, so none is refused as "failed here").
//
//   import { connect } from '/dev/overlay.js';
//   connect({ slot: hotswap });   // hotswap: what HotSwap.load / HotSwap.watch returned
//
// No inline style (pages with a strict Content-Security-Policy): the look is overlay.css.

const here = import.meta.url;

/** Follow the dev loop at `events`; `slot` (optional): the page's HotSwap. */
export function connect({ events = new URL('./events', here).href, slot = null } = {}) {
  const ui = createUi();
  let published = null; // the dev version last published, until it runs here
  let trap = null;      // the last trap's message, for the rollback notice
  const source = new EventSource(events);
  source.onmessage = (message) => {
    let event;
    try { event = JSON.parse(message.data); } catch { return; }
    if (event.type === 'building') ui.status(`building${changedText(event.changed)}…`, 'busy');
    if (event.type === 'build-failed') ui.error('Build failed', event.message);
    if (event.type === 'publish-failed') ui.error('Built, but not published', event.message);
    if (event.type === 'unchanged') { ui.clear(); ui.status(`no change: still ${event.version}`, 'ok'); }
    if (event.type === 'published') {
      ui.clear();
      published = event.version;
      ui.status(`${event.guest} ${event.version} published (build ${seconds(event.buildMs)}), swapping…`, 'busy');
    }
  };
  const listener = slot?.on((event) => {
    if (event.type === 'error' && event.code === 'GUEST_TRAP') trap = event.message;
    if (event.type === 'commit' && event.version === published) ui.status(`${event.version} live`, 'ok');
    if (event.type === 'rollback' && event.reason === 'trap') {
      ui.status(`${event.fromVersion} trapped${trap ? ` (${trap})` : ''} and was rolled back to ${event.version}; save a fix to try again`, 'error');
    }
  });
  return {
    close() {
      source.close();
      if (listener !== undefined) slot.off(listener);
      ui.remove();
    },
  };
}

const changedText = (changed) => (changed?.length ? ` (${changed.join(', ')})` : '');
const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;

function createUi() {
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = new URL('./overlay.css', here).href;
  document.head.append(link);

  const overlay = element('div', 'hotswap-dev-overlay');
  overlay.id = 'hotswap-dev-overlay';
  overlay.setAttribute('role', 'alertdialog');
  overlay.hidden = true;
  const panel = element('div', 'hotswap-dev-panel');
  const title = element('h2', 'hotswap-dev-title');
  const close = element('button', 'hotswap-dev-close');
  close.textContent = '×';
  close.title = 'Hide (Esc); it comes back with the next error';
  const message = element('pre', 'hotswap-dev-message');
  const hint = element('p', 'hotswap-dev-hint');
  hint.textContent = 'The page keeps running the last good version. Fix the source and save: this goes away when the new version is published.';
  panel.append(close, title, message, hint);
  overlay.append(panel);

  const status = element('div', 'hotswap-dev-status');
  status.id = 'hotswap-dev-status';
  status.setAttribute('role', 'status');
  status.hidden = true;

  const hide = () => { overlay.hidden = true; };
  close.onclick = hide;
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') hide(); });
  document.body.append(overlay, status);

  return {
    error(heading, text) {
      title.textContent = heading;
      message.textContent = text;
      overlay.setAttribute('aria-label', heading);
      overlay.hidden = false;
      status.hidden = true;
    },
    clear: hide,
    status(text, kind) {
      status.textContent = `hotswap dev: ${text}`;
      status.dataset.kind = kind;
      status.hidden = false;
    },
    remove() { overlay.remove(); status.remove(); link.remove(); },
  };
}

function element(tag, className) {
  const node = document.createElement(tag);
  node.className = className;
  return node;
}
