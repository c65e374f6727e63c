// The side panel: what the running version's `view` export shows (preview, counts,
// attribution), the deploy buttons for the releases the verified manifest lists, and the
// swap timeline with each phase's duration.

import { $, toast, escapeHtml, plural } from './ui.js';

const TOKEN_KEY = 'hotswap-deploy-token';

export function createPanel(session, guest) {
  let viewPending = false;

  function scheduleView() {
    if (viewPending || !session.slot) return;
    viewPending = true;
    requestAnimationFrame(() => {
      viewPending = false;
      renderView();
    });
  }

  function renderView() {
    let view;
    try {
      view = JSON.parse(guest.text('view'));
    } catch (error) {
      return toast(`view failed: ${error.code ?? ''} ${error.message}`, 'error');
    }
    const parts = [`<p><strong>editor ${escapeHtml(view.version)}</strong></p>`];
    if (view.words !== undefined) parts.push(`<p class="counts" id="counts">${plural(view.words, 'word')} · ${plural(view.chars, 'character')}</p>`);
    if (view.authors) {
      const items = view.authors.map((a) => `<li>${escapeHtml(a.name)}: ${plural(a.chars, 'character')}</li>`).join('');
      parts.push(`<p class="counts">Who wrote what</p><ul class="authors" id="authors">${items}</ul>`);
    }
    // The guest renders Markdown from an allow-list: raw HTML escaped, only safe link and
    // image URLs (see guest-modules/editor); the Content-Security-Policy backs it up.
    if (view.html !== undefined) parts.push(`<div class="preview" id="preview">${view.html}</div>`);
    if (parts.length === 1) parts.push('<p class="muted">Plain text editing. Deploy 1.1.0 or later for more.</p>');
    $('view').innerHTML = parts.join('');
  }

  /**
   * The deploy buttons: the releases the last verified manifest lists. `deployed`: the one
   * it names as current; `running`: the one this page runs; `failed`: one that failed on
   * this page (deployed or not, the page does not run it).
   */
  function showVersions() {
    const registry = session.slot?.registry;
    if (!registry) return;
    const running = session.slot.current.version;
    $('registry').textContent = `signed manifest v${registry.manifestVersion ?? '–'}${registry.pushOpen ? ' · push' : ''}`;
    const locked = !localStorage.getItem(TOKEN_KEY);
    $('versions').replaceChildren(...registry.versions.map((v) => {
      const button = document.createElement('button');
      const failed = session.failedHere.has(v.version);
      button.textContent = v.version;
      button.dataset.version = v.version;
      button.disabled = locked;
      const states = [v.version === registry.current && 'deployed', v.version === running && 'running', failed && 'failed'].filter(Boolean);
      for (const state of ['deployed', 'running', 'failed']) button.classList.toggle(state, states.includes(state));
      button.title = `${states.length ? `${states.join(', ')} · ` : ''}sha256 ${v.sha256}`;
      button.onclick = () => deploy(v.version);
      return button;
    }));
  }

  /** Deploying needs the credential from the link the server printed. */
  function showDeployAccess() {
    $('deploy-lock').hidden = Boolean(localStorage.getItem(TOKEN_KEY));
    showVersions();
  }

  async function deploy(version) {
    const token = localStorage.getItem(TOKEN_KEY);
    const response = await fetch('/api/deploy', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ version }),
    });
    if (response.status === 401) {
      localStorage.removeItem(TOKEN_KEY);
      showDeployAccess();
    }
    if (!response.ok) toast(`Deploy of ${version} refused: ${await response.text()}`, 'error');
  }

  /** One timeline entry: a swap, a rollback or the first load, its phases as text and as bars. */
  function finishTimeline(last) {
    const swap = session.swap ?? { phases: [last] };
    session.swap = null;
    const overlapping = (p) => p.type === 'compile' || p.type === 'verify'; // they overlap the fetch
    const timed = swap.phases.filter((p) => p.durationMs !== undefined);
    const total = timed.reduce((sum, p) => sum + (overlapping(p) ? 0 : p.durationMs), 0);
    const item = document.createElement('li');
    const to = last.type === 'error' ? `failed: ${last.code}` : `editor ${last.version}`;
    const what = swap.rollback
      ? `rollback ${swap.from} → ${to} (${swap.rollback === 'trap' ? 'it trapped' : 'it failed'})`
      : `${swap.from ? `${swap.from} → ` : 'load '}${to}`;
    const label = (p) => (p.type === 'precopy' ? 'pre-copy (off the main thread)' : p.type);
    const phases = timed.map((p) => `${label(p)} ${p.durationMs.toFixed(p.type === 'commit' || p.type === 'rollback' ? 2 : 1)} ms`);
    if (timed.length) phases.push(`total ${total.toFixed(1)} ms`);
    item.innerHTML = `<div>${escapeHtml(what)}</div><div class="muted">${escapeHtml(phases.join(' · '))}</div>`;
    const bar = document.createElement('div');
    bar.className = 'phases';
    for (const p of timed.filter((p) => !overlapping(p))) {
      const span = document.createElement('span');
      span.className = `phase-${p.type}`;
      span.style.width = `${Math.max(1, (100 * p.durationMs) / Math.max(total, 0.001))}%`;
      span.title = `${p.type}: ${p.durationMs.toFixed(2)} ms`;
      bar.append(span);
    }
    item.append(bar);
    $('timeline').prepend(item);
  }

  return { scheduleView, showVersions, showDeployAccess, finishTimeline };
}
