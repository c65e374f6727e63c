// The longest task the renderer's main thread ran, from a Chromium trace: what the browser
// itself counts as blocking, free of the heartbeat's own load on the thread.
const categories = ['toplevel', 'blink.user_timing'];

/** Run `work` (in the page) under a trace; its result and the longest main-thread task in ms. */
export async function longestTaskDuring(browser, page, work) {
  await browser.startTracing(page, { categories });
  await page.evaluate(() => performance.mark('bench-start'));
  const result = await work();
  await page.evaluate(() => performance.mark('bench-end'));
  const events = JSON.parse((await browser.stopTracing()).toString()).traceEvents;
  const main = events.find((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain');
  const mark = (name) => events.find((e) => e.name === name && e.pid === main.pid)?.ts ?? -1;
  // The first `bench-end`: work that marks its own end (editor.js, before its text check)
  // is counted up to there; otherwise up to the mark placed here once it has returned.
  const [from, to] = [mark('bench-start'), mark('bench-end')];
  const tasks = events.filter((e) => e.pid === main.pid && e.tid === main.tid && e.ph === 'X'
    && e.name === 'ThreadControllerImpl::RunTask' && e.ts >= from && (to < 0 || e.ts <= to));
  return { result, longestTask: Math.max(0, ...tasks.map((e) => e.dur / 1000)), tasks: tasks.length };
}
