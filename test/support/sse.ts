/** A raw event-stream (SSE) client for the live-update tests (web/live.ts). */
import http from 'node:http';

export interface SseEvent { id?: string; event?: string; data?: string }

/** A raw event-stream client: collects parsed events until closed. */
export function openStream(url: string, headers: Record<string, string> = {}) {
  const events: SseEvent[] = [];
  let status = 0;
  let responseHeaders: http.IncomingHttpHeaders = {};
  let buffered = '';
  let ended = false;
  const req = http.get(url, { headers: { Accept: 'text/event-stream', ...headers } });
  const ready = new Promise<void>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      responseHeaders = res.headers;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let cut: number;
        while ((cut = buffered.indexOf('\n\n')) >= 0) {
          const block = buffered.slice(0, cut);
          buffered = buffered.slice(cut + 2);
          const ev: SseEvent = {};
          for (const line of block.split('\n')) {
            const m = /^(id|event|data): ?(.*)$/.exec(line);
            if (m) ev[m[1] as keyof SseEvent] = m[2];
          }
          if (ev.event) events.push(ev);
        }
      });
      res.on('end', () => { ended = true; });
      res.on('error', () => { ended = true; });
      resolve();
    });
  });
  return {
    events, ready,
    get status() { return status; },
    get headers() { return responseHeaders; },
    get ended() { return ended; },
    close: () => req.destroy(),
  };
}
