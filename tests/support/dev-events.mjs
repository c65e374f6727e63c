// The dev loop's events (`/dev/events`, Server-Sent Events of JSON), read from Node: what
// the page's overlay receives, for tests and the benchmark to wait on.

/** Follow `url`; `next(predicate)` resolves with the first event from now on that matches. */
export function followDevEvents(url) {
  const controller = new AbortController();
  const seen = [];
  const waiting = new Set();
  const deliver = (event) => {
    seen.push(event);
    for (const w of [...waiting]) {
      if (w.predicate(event)) {
        waiting.delete(w);
        w.resolve(event);
      }
    }
  };
  const ready = (async () => {
    const response = await fetch(url, { signal: controller.signal, headers: { accept: 'text/event-stream' } });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.body;
  })();
  const done = ready.then(async (body) => {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (data) deliver(JSON.parse(data));
      }
    }
  }).catch(() => {});
  return {
    ready,
    seen,
    /** The next event (after this call) matching `predicate`. */
    next(predicate = () => true, timeout = 120000) {
      return new Promise((resolve, reject) => {
        const entry = { predicate, resolve: (e) => { clearTimeout(timer); resolve(e); } };
        const timer = setTimeout(() => {
          waiting.delete(entry);
          reject(new Error(`no matching dev event within ${timeout} ms; seen: ${JSON.stringify(seen.map((e) => e.type))}`));
        }, timeout);
        timer.unref?.(); // a test that failed first must not be kept waiting for this one
        waiting.add(entry);
      });
    },
    close() {
      controller.abort();
      return done;
    },
  };
}
