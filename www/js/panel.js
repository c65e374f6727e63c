// The side panel: what the running version's `view` export shows (preview, counts,
// attribution), the deploy buttons for the releases the verified manifest lists, and the
// swap timeline with each phase's duration.

import { $, toast, escapeHtml } from './ui.js';

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

  /** The deploy buttons: the releases the last verified manifest lists, its current one marked. */
  function showVersions() {
    const registry = session.slot?.registry;
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

  /** One timeline entry: a swap (or the first load), its phases as text and as bars. */
  function finishTimeline(last) {
    const swap = session.swap ?? { phases: [last] };
    session.swap = null;
    const overlapping = (p) => p.type === 'compile' || p.type === 'verify'; // they overlap the fetch
    const total = swap.phases.reduce((sum, p) => sum + (overlapping(p) ? 0 : p.durationMs), 0);
    const item = document.createElement('li');
    const to = last.type === 'error' ? `failed: ${last.code}` : `editor ${last.version}`;
    const phases = swap.phases.map((p) => `${p.type} ${p.durationMs.toFixed(p.type === 'commit' ? 2 : 1)} ms`).join(' · ');
    item.innerHTML = `<div>${swap.from ? `${escapeHtml(swap.from)} → ` : 'load '}${escapeHtml(to)}</div><div class="muted">${escapeHtml(phases)}</div>`;
    const bar = document.createElement('div');
    bar.className = 'phases';
    for (const p of swap.phases.filter((p) => !overlapping(p))) {
      const span = document.createElement('span');
      span.className = `phase-${p.type}`;
      span.style.width = `${Math.max(1, (100 * p.durationMs) / Math.max(total, 0.001))}%`;
      span.title = `${p.type}: ${p.durationMs.toFixed(2)} ms`;
      bar.append(span);
    }
    item.append(bar);
    $('timeline').prepend(item);
  }

  return { scheduleView, showVersions, finishTimeline };
}
