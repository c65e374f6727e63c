// Small DOM helpers shared by the page's modules: element lookup, toasts, the notice bar,
// the connection badge.

export const $ = (id) => document.getElementById(id);

/** Toasts on screen at most; older ones make room. */
const MAX_TOASTS = 3;
const TOAST_MS = 7000;

/**
 * A passing message. The same message again while it is on screen is not repeated: its
 * toast counts (×2, ×3…) and stays longer.
 */
export function toast(message, kind = 'info') {
  console.info(`toast (${kind}): ${message}`);
  const box = $('toasts');
  const same = [...box.children].find((t) => t.dataset.message === message);
  const item = same ?? document.createElement('div');
  if (same) {
    same.dataset.count = String(Number(same.dataset.count) + 1);
    same.querySelector('.count').textContent = ` ×${same.dataset.count}`;
    clearTimeout(Number(same.dataset.timer));
  } else {
    item.className = `toast ${kind}`;
    item.dataset.message = message;
    item.dataset.count = '1';
    const text = document.createElement('span');
    text.textContent = message;
    const count = document.createElement('span');
    count.className = 'count';
    item.append(text, count);
    box.append(item);
    while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  }
  item.dataset.timer = String(setTimeout(() => item.remove(), TOAST_MS));
}

/** The lasting lines under the header, one per cause, until that cause is gone. */
const notices = new Map();

/** Show (or replace) the notice for `cause`; `null` clears it. */
export function notice(cause, message) {
  if (message) {
    if (notices.get(cause) !== message) console.info(`notice (${cause}): ${message}`);
    notices.set(cause, message);
  } else {
    notices.delete(cause);
  }
  const bar = $('notice');
  bar.replaceChildren(...[...notices].map(([key, text]) => {
    const line = document.createElement('span');
    line.dataset.cause = key;
    line.textContent = text;
    return line;
  }));
  bar.hidden = notices.size === 0;
}

export const hasNotice = (cause) => notices.has(cause);

export function setLink(online) {
  $('link').textContent = online ? 'online' : 'offline';
  $('link').className = `link ${online ? 'online' : 'offline'}`;
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** `1 word`, `2 words`. */
export const plural = (n, word) => `${n} ${n === 1 ? word : `${word}s`}`;
