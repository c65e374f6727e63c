// The other documented setup, for a Vite config without optimizeDeps.exclude: import the
// loader's .wasm as a URL and hand it to init().
import init from 'wasm-hotswap';
import wasmUrl from 'wasm-hotswap/core/wasm_hotswap_bg.wasm?url';
import { start } from './app';

void start(() => init({ module_or_path: wasmUrl }));
