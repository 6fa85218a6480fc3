/**
 * GET /feeds/<feed-secret>/events: the feed's new entries as server-sent events (issue 11,
 * see web/live.ts). Each event tells only what the feed page already shows: subject, sender,
 * time and the entry page's link.
 */
import { clientNetwork } from '../../client-network.js';
import { NotFoundError } from '../../errors.js';
import { SECRET_IN_PATH } from '../../secrets.js';
import type { Route } from '../context.js';
import { foundOr404 } from '../http.js';
import type { LiveSink } from '../live.js';

/** How long a browser waits before reconnecting a broken stream. */
const RETRY_MS = 3000;

export const feedEventsRoute: Route = {
  method: 'GET',
  path: new RegExp(String.raw`^/feeds/${SECRET_IN_PATH}/events$`, 'i'),
  handler: async ({ req, res, url, params, client, deps }) => {
    const feed = foundOr404(await deps.stores.app.feedByFeedToken(params[0]!));
    const live = deps.live;
    if (!live?.enabled) throw new NotFoundError();
    const sink: LiveSink = {
      entry: (id, e) => {
        const data = JSON.stringify({
          subject: e.subject || '(no subject)', from: e.from_name || e.from_address, received_at: e.received_at, url: deps.urls.entry(e.share_token),
        });
        res.write(`id: ${id}\nevent: entry\ndata: ${data}\n\n`);
      },
      comment: (text) => void res.write(`: ${text}\n\n`),
      unsent: () => res.writableLength,
      close: () => void res.end(),
    };
    // Refused at a cap before anything is written: the client gets 503 with Retry-After.
    const stream = live.open(feed.id, feed.feed_token, clientNetwork(client), sink);
    res.on('close', () => stream.release());
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
      'X-Robots-Tag': 'noindex, nofollow',
      // The stream is the connection's last response: when it ends, so does the connection.
      Connection: 'close',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.write(`retry: ${RETRY_MS}\n\n`);
    try {
      await stream.start(lastEventId(req.headers['last-event-id']), since(url, deps.stores.app.clock.now()));
    } catch (err) {
      deps.log.warn({ err }, 'live: unable to start a stream');
      res.end();
    }
  },
};

/** How far back `?since=` may reach: it covers a page's load, not history. */
const SINCE_MAX_MS = 5 * 60_000;

/**
 * `?since=<ms>`: the feed page's render time, so an entry stored while the page loaded is
 * sent too (the page skips entries it already lists). Clamped to the last few minutes.
 */
function since(url: URL, now: number): number | undefined {
  const v = url.searchParams.get('since');
  if (v === null || !/^\d{1,15}$/.test(v)) return undefined;
  return Math.max(Number(v), now - SINCE_MAX_MS);
}

/** The id a reconnecting EventSource sends; anything but a plain number is ignored. */
function lastEventId(header: string | string[] | undefined): number | undefined {
  const v = Array.isArray(header) ? header[0] : header;
  if (v === undefined || !/^\d{1,15}$/.test(v.trim())) return undefined;
  return Number(v.trim());
}
