// Renderer memory as the operating system sees it (/proc/<pid>/status), for a page that
// runs one way of swapping a guest (see memory.js), each in its own renderer process.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

const MiB = 2 ** 20;

async function renderers(browser) {
  const cdp = await browser.newBrowserCDPSession();
  const { processInfo } = await cdp.send('SystemInfo.getProcessInfo');
  await cdp.detach();
  return new Set(processInfo.filter((p) => p.type === 'renderer').map((p) => p.id));
}

/** VmRSS (now) and VmHWM (peak) of `pid`, in MiB. */
async function status(pid) {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field) => Number(text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))[1]);
  return { rss: (kib('VmRSS') * 1024) / MiB, peak: (kib('VmHWM') * 1024) / MiB };
}

/**
 * `way` in a fresh renderer: RSS once the first version holds its state (after a forced GC:
 * the baseline), then after `swaps` replacements, 10 s idle and a forced GC; peak throughout.
 */
export async function memoryRun(browser, url, way, swaps) {
  const before = await renderers(browser);
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${url}/bench/`);
    await page.waitForFunction(() => window.__bench !== undefined, null, { timeout: 60_000 });
    const pid = [...(await renderers(browser))].find((id) => !before.has(id));
    const cdp = await context.newCDPSession(page);
    const settled = async (ms) => {
      await sleep(ms);
      await cdp.send('HeapProfiler.collectGarbage');
      await sleep(200);
      return (await status(pid)).rss;
    };
    const started = await page.evaluate((w) => window.__bench.memory.start(w), way);
    const baseline = await settled(2000);
    const t = performance.now();
    const ended = await page.evaluate((n) => window.__bench.memory.swap(n), swaps);
    const seconds = (performance.now() - t) / 1000;
    const { peak } = await status(pid);
    const after = await settled(10_000);
    return { ...ended, way, baseline, after, peak, seconds, loaderMemoryMiB: [started.loaderMemoryMiB, ended.loaderMemoryMiB] };
  } finally {
    await context.close();
  }
}
