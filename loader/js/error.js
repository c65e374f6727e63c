// The error every failed wasm-hotswap operation throws or rejects with. The loader (Rust,
// compiled to wasm) constructs it through wasm-bindgen; the package entry re-exports it.

export class HotSwapError extends Error {
  /**
   * @param {string} message what happened, for people
   * @param {string} code a stable code, for programs (see `HotSwapErrorCode`)
   * @param {object} details the facts that code carries (see `HotSwapErrorDetails`)
   */
  constructor(message, code, details) {
    super(message);
    this.name = 'HotSwapError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }

  // An app may hold two copies of the loader (the core and the watch entry each bring one):
  // an error from either is a HotSwapError.
  static [Symbol.hasInstance](value) {
    return value instanceof Error && value.name === 'HotSwapError' && typeof value.code === 'string';
  }
}
