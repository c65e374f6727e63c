// The page: a counter guest (Rust) and a greeter guest (WebAssembly text, examples/wat-guest),
// each loaded, swapped and rolled back with wasm-hotswap, and every failure shown as the typed
// HotSwapError it is. main.ts and url-init.ts differ only in how they start the loader.
import { HotSwap, HotSwapError, type ModuleSource } from 'wasm-hotswap';
import './style.css';

/** The guests' exports, as the app sees them (`i64` is `bigint` in JS). */
interface Counter {
  increment(): bigint;
  count(): bigint;
}
interface Greeter {
  count(): bigint;
}

/** public/guests/guests.json, written when the guests are built (scripts/guests.mjs). */
type Guests = Record<'counter-v1' | 'counter-v2' | 'greeter-1.0.0' | 'greeter-2.0.0', ModuleSource>;

const MARKUP = `
  <p>Loader: <output id="status">starting…</output></p>
  <pre id="error" hidden></pre>
  <section>
    <h2>Counter <small>(a Rust guest)</small></h2>
    <p>Version <output id="counter-version"></output>, sha256 <output id="counter-sha256"></output></p>
    <p>Count <output id="counter-count"></output>; the guest says <output id="counter-state"></output></p>
    <button id="counter-increment" disabled>Increment</button>
    <button id="counter-swap" disabled>Swap to 2.0.0</button>
    <button id="counter-rollback" disabled>Roll back</button>
    <button id="counter-bad-hash" disabled>Swap with a wrong hash</button>
  </section>
  <section>
    <h2>Greeter <small>(a WebAssembly text guest)</small></h2>
    <p>Version <output id="greeter-version"></output>, sha256 <output id="greeter-sha256"></output></p>
    <p>Greetings so far <output id="greeter-count"></output></p>
    <input id="greeter-name" value="Ada" aria-label="name">
    <button id="greeter-greet" disabled>Greet</button>
    <button id="greeter-last" disabled>Last name greeted</button>
    <output id="greeter-output"></output>
    <p>
      <button id="greeter-swap" disabled>Swap to 2.0.0</button>
      <button id="greeter-rollback" disabled>Roll back</button>
    </p>
  </section>`;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element as T;
};

/** What a person (and the tests) read about a failure: its class, code, message and details. */
function describe(error: unknown): string {
  if (error instanceof HotSwapError) {
    // Checking `code` narrows `details` to that code's fields.
    const facts = error.code === 'HASH_MISMATCH'
      ? `expected ${error.details.expected}\nactual ${error.details.actual}`
      : JSON.stringify(error.details);
    return `HotSwapError ${error.code}: ${error.message}\n${facts}`;
  }
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function showError(error: unknown): void {
  const box = $('error');
  box.hidden = false;
  box.textContent = describe(error);
  box.dataset.code = error instanceof HotSwapError ? error.code : '';
}

/** A click handler that clears the last error, runs `action` and shows how it failed. */
function action(id: string, run: () => unknown, render: () => void): void {
  const button = $<HTMLButtonElement>(id);
  button.onclick = async () => {
    $('error').hidden = true;
    try {
      await run();
    } catch (error) {
      showError(error);
    }
    render();
  };
  button.disabled = false;
}

async function counterPanel(guests: Guests): Promise<void> {
  const counter = await HotSwap.load<Counter>(guests['counter-v1']);
  const api = counter.exports; // kept once: every swap and rollback rebinds what it calls
  const render = () => {
    $('counter-version').textContent = counter.current.version;
    $('counter-sha256').textContent = counter.current.sha256;
    $('counter-state').textContent = counter.callString('describe', '');
    $('counter-count').textContent = api.count().toString();
  };
  action('counter-increment', () => api.increment(), render);
  action('counter-swap', () => counter.swap(guests['counter-v2']), render);
  action('counter-rollback', () => counter.rollback(), render);
  // A module that is not the one the app asked for is refused before any of its code runs.
  action('counter-bad-hash', () => counter.swap({ ...guests['counter-v2'], sha256: '0'.repeat(64) }), render);
  render();
}

async function greeterPanel(guests: Guests): Promise<void> {
  const greeter = await HotSwap.load<Greeter>(guests['greeter-1.0.0']);
  const render = () => {
    $('greeter-version').textContent = greeter.current.version;
    $('greeter-sha256').textContent = greeter.current.sha256;
    $('greeter-count').textContent = greeter.exports.count().toString();
  };
  const name = $<HTMLInputElement>('greeter-name');
  action('greeter-greet', () => { $('greeter-output').textContent = greeter.callString('greet', name.value); }, render);
  // Only 2.0.0 has `last`: under 1.0.0 the call throws NOT_IN_VERSION.
  action('greeter-last', () => { $('greeter-output').textContent = greeter.callString('last', ''); }, render);
  action('greeter-swap', () => greeter.swap(guests['greeter-2.0.0']), render);
  action('greeter-rollback', () => greeter.rollback(), render);
  render();
}

/** Put the panels on the page, start the loader with `startLoader`, then the guests. */
export async function start(startLoader: () => Promise<unknown>): Promise<void> {
  document.body.insertAdjacentHTML('beforeend', MARKUP);
  try {
    await startLoader();
    const response = await fetch(`${import.meta.env.BASE_URL}guests/guests.json`);
    const guests = await response.json() as Guests;
    await Promise.all([counterPanel(guests), greeterPanel(guests)]);
    $('status').textContent = 'ready';
  } catch (error) {
    $('status').textContent = 'failed';
    showError(error);
  }
}
