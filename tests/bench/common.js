// What every part of the benchmark page shares: the guests' index, sources, host imports
// for bare instantiation, and the median.
export const index = await (await fetch('/guests/index.json')).json();
export const source = (name) => ({ url: `/guests/${index[name].file}`, sha256: index[name].sha256 });
export const hostImports = { hotswap: { log() {}, random_fill() {}, now_ms: () => Date.now() } };
export const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
