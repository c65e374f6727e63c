// The documented setup: init() with no argument fetches the loader's .wasm from next to its
// JS. Under the Vite dev server that needs optimizeDeps.exclude (vite.config.ts).
import init from 'wasm-hotswap';
import { start } from './app';

void start(() => init());
