// What the page does with each loader event: the swap timeline, the running version, the
// notice bar and toasts, and following the registry's current release.

import { $, toast, notice } from './ui.js';

export function createEvents(session, { guest, panel, relay }) {
  /** The running version changed (a commit or a rollback): refresh what depends on it. */
  function afterVersionChange() {
    $('running').textContent = `editor ${session.slot.current.version}`;
    panel.showVersions();
    announceName();
    panel.scheduleView();
  }

  function announceName() {
    if (!session.slot?.current.exports.includes('set_author')) return;
    try {
      relay.send(guest.call('set_author', guest.bytesOf($('name').value)));
    } catch (error) {
      toast(`set_author failed: ${error.message}`, 'error');
    }
  }

  /**
   * A verified manifest names a release as current. The loader's watcher is already checking
   * it (and swapping if the policy allows); our own check queues behind that one, so when it
   * settles the page has adopted the release or refused it.
   */
  function onManifest(event) {
    session.deployed = { version: event.version, manifestVersion: event.manifestVersion };
    if (!session.slot) return; // the first manifest, while HotSwap.watch loads
    panel.showVersions();
    session.adopting = true;
    session.slot.checkForUpdates()
      .catch(() => {}) // reported through the error event
      .finally(() => {
        session.adopting = false;
        panel.showVersions();
      });
  }

  /** A pipeline phase of the swap under way, for the timeline. */
  function phase(event) {
    if (session.swap && event.durationMs !== undefined) session.swap.phases.push(event);
  }

  function onError(event) {
    if (session.swap) panel.finishTimeline(event);
    if (event.code === 'GUEST_TRAP') return; // handled where the call was made
    const pending = session.deployed && session.deployed.version !== session.slot?.current.version;
    const what = event.code.startsWith('MANIFEST_') ? "the registry's manifest" : pending ? `editor ${session.deployed.version}` : 'an update';
    const running = `editor ${event.version ?? session.slot?.current.version}`;
    notice(session.slot?.registry?.usingFallback
      ? `Running the ${running} bundled with this page: refused ${what} (${event.code}: ${event.message}).`
      : `Refused ${what}: ${event.code}: ${event.message}. Still running ${running}.`);
    toast(`${event.code}: ${event.message}`, 'error');
  }

  const handlers = {
    manifest: onManifest,
    fallback(event) {
      notice(`The registry could not be used (${event.code}: ${event.message}). Running the editor bundled with this page.`);
      toast('Registry unavailable or untrusted: running the bundled editor.', 'error');
    },
    'update-skipped'(event) {
      const why = { 'failed-here': 'it failed on this page', major: 'major updates need a reload', 'no-migration': 'it cannot take over this document' }[event.reason];
      toast(`editor ${event.version} is deployed, but ${why}: staying on ${session.slot?.current.version}.`, 'error');
    },
    fetch(event) {
      session.swap = { from: session.slot?.current.version, phases: [] };
      phase(event);
    },
    compile: phase,
    verify: phase,
    validate: phase,
    instantiate: phase,
    commit(event) {
      phase(event);
      panel.finishTimeline(event);
      session.journal = []; // the new version holds everything so far
      notice(null);
      queueMicrotask(afterVersionChange); // not from inside the loader's call
    },
    rollback(event) {
      phase(event);
      panel.finishTimeline(event);
      queueMicrotask(afterVersionChange);
      if (event.reason === 'trap') {
        toast(`editor ${event.fromVersion} failed after the swap: rolled back to ${event.version}. No text was lost.`, 'error');
      }
    },
    error: onError,
  };

  return { onEvent: (event) => handlers[event.type]?.(event), afterVersionChange, announceName };
}
