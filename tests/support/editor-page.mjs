// Opening the demo editor in a fresh browser context, and waiting for what a page does.
const debug = (...args) => { if (process.env.DEMO_DEBUG) console.error(...args); };

/**
 * A new context (its own storage) with the editor at `url` (`path` appended), ready to type
 * as `name`. `problems` collects console errors and page errors.
 */
export async function openEditor(browser, name, url, { path = '/', context: options = {}, ready = true } = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`${name} console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`${name} pageerror: ${e.message}`));
  page.on('console', (m) => debug(`[${name}] ${m.type()}: ${m.text()}`));
  await page.goto(`${url}${path}`);
  if (!ready) return { page, context, problems };
  await page.locator('#text:not([disabled])').waitFor({ timeout: 30000 });
  await page.fill('#name', name);
  await page.locator('#name').dispatchEvent('change');
  const marker = await page.evaluate(() => window.__loadMarker);
  return { page, context, problems, marker };
}

/** The page runs editor `version`. */
export const running = (p, version) => p.page.locator('#running').filter({ hasText: `editor ${version}` }).waitFor({ timeout: 20000 });

/** The page has finished switching to the deployed `version` (or rolling back from it). */
export const adopted = (p, version) => p.page.waitForFunction((v) => window.__demo.deployed?.version === v && !window.__demo.adopting, version, { timeout: 20000 });

/** Every change of the page is stored by the server. */
export const settled = (p) => p.page.waitForFunction(() => window.__demo.unacked.length === 0 && window.__demo.synced, null, { timeout: 20000 });

/** The text the page shows. */
export const textOf = (p) => p.page.inputValue('#text');
