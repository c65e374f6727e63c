// What the page does with each loader event: the swap timeline, the running version, the
// notice bar and toasts, and following the registry's current release. Each notice has a
// cause and goes when the cause does: `update` (a refused update: cleared by a swap, or a
// check that succeeds), `failed` (a release that failed on this page:
// cleared when another one is deployed), `registry` (the registry unusable: cleared by the
// next verified manifest).

import { $, toast, notice, hasNotice } from './ui.js';

/** Codes of failures that are the network's or the server's, not the release's. */
const TRANSIENT = new Set(['FETCH_FAILED', 'HTTP_STATUS', 'BODY_INCOMPLETE']);

export function createEvents(session, { guest, panel, relay }) {
  /** The running version changed (a commit or a rollback): refresh what depends on it. */
  function afterVersionChange() {
    if (!session.slot) return; // still inside HotSwap.watch: done once it resolves
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

  /** Is `sha256` the editor bundled with this page (the pinned fallback)? */
  const isBundled = (sha256) => sha256 === session.config?.fallback?.sha256;

  /** What runs now, for notices: `editor 2.0.0 (the last release that ran fine here)`. */
  function runningNow(event) {
    const current = session.slot?.current;
    const version = event?.version ?? current?.version;
    if (!current || current.version !== version) return `editor ${version}`;
    return `editor ${version}${isBundled(current.sha256) ? ', the editor bundled with this page' : ''}`;
  }

  /** Check the registry now; a check that succeeds ends an `update` notice. */
  function check() {
    if (!session.slot) return Promise.resolve();
    session.adopting = true;
    return session.slot.checkForUpdates()
      // The registry answered: a refusal for want of it (the network, the server) is over;
      // one for the release itself comes back as a `failed` notice.
      .then(() => notice('update', null))
      .catch(() => {}) // reported through the error event
      .finally(() => {
        session.adopting = false;
        panel.showVersions();
      });
  }

  /**
   * A verified manifest names a release as current. The loader's watcher is already checking
   * it (and swapping if the policy allows); our own check queues behind that one, so when it
   * settles the page has adopted the release or refused it.
   */
  function onManifest(event) {
    const changed = session.deployed?.version !== event.version;
    session.deployed = { version: event.version, manifestVersion: event.manifestVersion };
    notice('registry', null);
    if (changed) notice('failed', null);
    if (!session.slot) return; // the first manifest, while HotSwap.watch loads
    panel.showVersions();
    check();
  }

  /** A pipeline phase of the swap under way, for the timeline. */
  function phase(event) {
    if (session.swap && event.durationMs !== undefined) session.swap.phases.push(event);
  }

  function onError(event) {
    if (session.swap) panel.finishTimeline(event);
    if (event.code === 'GUEST_TRAP') return; // handled where the call was made
    const pending = session.deployed && session.deployed.version !== session.slot?.current.version;
    const registry = event.code.startsWith('MANIFEST_');
    const what = registry ? "the registry's manifest" : pending ? `editor ${session.deployed.version}` : 'an update';
    const running = runningNow(event);
    const retry = TRANSIENT.has(event.code) ? ' Will try again.' : '';
    notice(registry ? 'registry' : 'update', session.slot?.registry?.usingFallback
      ? `Running the ${running}: refused ${what} (${event.code}: ${event.message}).${retry}`
      : `Refused ${what}: ${event.code}: ${event.message}. Still running ${running}.${retry}`);
    toast(`${event.code} (${what})`, 'error');
  }

  /** A release failed on this page and another runs instead: say which, and why. */
  function failedHere(version, why) {
    session.failedHere.add(version);
    queueMicrotask(() => {
      notice('failed', `editor ${version} ${why}; running ${runningNow()} instead. No text was lost.`);
      panel.showVersions();
    });
  }

  const handlers = {
    manifest: onManifest,
    fallback(event) {
      notice('registry', `The registry could not be used (${event.code}: ${event.message}). Running the editor bundled with this page.`);
      toast('Registry unavailable or untrusted: running the bundled editor.', 'error');
    },
    'update-skipped'(event) {
      if (event.reason === 'failed-here') {
        // The rollback already said why; a later poll must not reword that notice.
        if (session.failedHere.has(event.version) && hasNotice('failed')) return;
        return failedHere(event.version, 'failed on this page earlier (it is still deployed)');
      }
      const why = { major: 'major updates need a reload', 'no-migration': 'it cannot take over this document' }[event.reason];
      notice('update', `editor ${event.version} is deployed, but ${why}: staying on ${session.slot?.current.version}.`);
    },
    fetch(event) {
      session.swap = { from: session.slot?.current.version, phases: [] };
      phase(event);
    },
    compile: phase,
    verify: phase,
    validate: phase,
    instantiate: phase,
    precopy: phase,
    commit(event) {
      phase(event);
      session.lastCommit = event;
      if (session.swap && !session.swap.from) session.swap.from = event.fromVersion;
      panel.finishTimeline(event);
      session.journal = []; // the new version holds everything so far
      notice('update', null);
      queueMicrotask(afterVersionChange); // not from inside the loader's call
    },
    rollback(event) {
      session.swap = { from: event.fromVersion, phases: [event], rollback: event.reason };
      panel.finishTimeline(event);
      queueMicrotask(afterVersionChange);
      failedHere(event.fromVersion, event.reason === 'trap' ? 'failed on this page (it trapped)' : 'failed on this page');
    },
    error: onError,
  };

  return {
    onEvent: (event) => handlers[event.type]?.(event),
    afterVersionChange,
    announceName,
    check,
  };
}
