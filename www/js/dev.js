// Dev mode (`npm run dev`): the dev loop's error overlay and notices. The overlay is
// `hotswap dev`'s own (/dev/overlay.js, served by the demo server's dev loop): a compile
// error covers the page while it keeps running the last good version, and goes when a fixed
// build is published; a build that traps and is rolled back is said so in its status line.

/** Follow the dev loop, if the server runs one (`config.dev`). */
export async function startDev(session) {
  const dev = session.config?.dev;
  if (!dev) return null;
  const overlay = await import(dev.overlay);
  return overlay.connect({ events: dev.events, slot: session.slot });
}
