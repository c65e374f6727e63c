// Types only (no defineConfig): the tests run this same config under Vite 6 and 7 as well,
// which must not load this example's Vite 8.
import type { UserConfig } from 'vite';

// Vite's dev server pre-bundles dependencies into a folder without the loader's .wasm;
// excluded, the package is served as it is, its .wasm next to its JS.
export default {
  optimizeDeps: { exclude: ['wasm-hotswap'] },
} satisfies UserConfig;
