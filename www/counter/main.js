// The minimal page: load counter v1, show its version and state, swap on a click.
// Uses only the loader's public API (the npm package built into /pkg).
import init, { HotSwap } from '/pkg/index.js';

const $ = (id) => document.getElementById(id);
window.__loadMarker = Math.random(); // a reload would replace it: tests check it survives swaps

function showError(error) {
  $('error').hidden = false;
  $('error').textContent = `${error.code ?? 'ERROR'}: ${error.message}`;
}

function logEvent(event) {
  const item = document.createElement('li');
  const ms = event.durationMs === undefined ? '' : ` ${event.durationMs.toFixed(2)} ms`;
  const extra = event.code ? ` ${event.code}` : event.reason ? ` ${event.reason} (${event.stateSource})` : '';
  item.textContent = `${event.type}${event.version ? ` v${event.version}` : ''}${ms}${extra}`;
  $('events').prepend(item);
}

async function main() {
  await init();
  const index = await (await fetch('/guests/index.json')).json();
  const source = (name) => ({ url: `/guests/${index[name].file}`, sha256: index[name].sha256 });
  const counter = await HotSwap.load(source('counter-v1'), { onEvent: logEvent });
  const api = counter.exports; // held once: every swap rebinds what it calls

  const render = () => {
    $('version').textContent = `${counter.current.name} ${counter.current.version}`;
    $('state').textContent = counter.callString('describe', '');
    $('rollback').disabled = counter.previous === undefined;
  };
  const guard = (action) => async () => {
    $('error').hidden = true;
    try { await action(); } catch (error) { showError(error); }
    render();
  };

  $('increment').onclick = guard(() => api.increment());
  $('swap').onclick = guard(() => counter.swap(source(counter.current.version === '1.0.0' ? 'counter-v2' : 'counter-v1')));
  $('rollback').onclick = guard(() => counter.rollback());
  for (const id of ['increment', 'swap']) $(id).disabled = false;
  render();
}

main().catch(showError);
