// Small DOM helpers shared by the page's modules: element lookup, toasts, the notice bar,
// the connection badge.

export const $ = (id) => document.getElementById(id);

export function toast(message, kind = 'info') {
  console.info(`toast (${kind}): ${message}`);
  const item = document.createElement('div');
  item.className = `toast ${kind}`;
  item.textContent = message;
  $('toasts').append(item);
  setTimeout(() => item.remove(), 7000);
}

/** A lasting line under the header: why the page does not run what is deployed. */
export function notice(message) {
  $('notice').textContent = message ?? '';
  $('notice').hidden = !message;
  if (message) console.info(`notice: ${message}`);
}

export function setLink(online) {
  $('link').textContent = online ? 'online' : 'offline';
  $('link').className = `link ${online ? 'online' : 'offline'}`;
}

export function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
