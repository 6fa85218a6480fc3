/**
 * GET /img/<signature>/<url>: a newsletter's remote image, fetched by feedmail (see
 * web/image-proxy.ts for the URLs and net/image-fetch.ts for the fetch) so the reader's
 * browser or feed reader never contacts the sender. A URL not signed with this server's
 * key is a 404 before anything is fetched. Images are fetched once and kept in cache.db;
 * a failure is remembered for a while, so a dead image costs no fetch per view.
 */
import { createHash } from 'node:crypto';
import { ImageUnavailableError, NotFoundError, TemporaryFailureError } from '../../errors.js';
import { fetchImage, ImageFetchError } from '../../net/image-fetch.js';
import type { Route, WebDeps } from '../context.js';

/** What fetching and caching an image needs: a request's deps, or a job's (jobs/tasks/prefetch-images.ts). */
export type ImageDeps = Pick<WebDeps, 'config' | 'stores' | 'log'>;

/** How long a refused or failed fetch is answered from the cache before it is tried again. */
export const IMAGE_FAILURE_TTL_MS = 10 * 60_000;

/**
 * Fetches this process runs at once: each may hold up to FEEDMAIL_IMAGE_PROXY_MAX_BYTES in
 * memory, so a newsletter of a thousand large images cannot take more than this many times
 * that. Further fetches wait their turn; past MAX_WAITING the request is answered 503.
 */
export const MAX_CONCURRENT_FETCHES = 8;
const MAX_WAITING = 256;
/**
 * Of those, at most this many go to one remote host (by host name), so a host that never
 * answers (or answers slowly on purpose) holds only its own share and other hosts' images
 * are still fetched. A host's further fetches wait in that host's own queue, which holds at
 * most MAX_WAITING_PER_HOST; past it the request is answered 503.
 */
export const MAX_FETCHES_PER_HOST = 2;
export const MAX_WAITING_PER_HOST = 16;
let fetching = 0;
const waiting: (() => void)[] = [];
const hosts = new Map<string, { fetching: number; waiting: (() => void)[] }>();

function hostOf(target: string): string {
  try {
    return new URL(target).hostname.toLowerCase();
  } catch {
    return '';
  }
}

async function inFetchSlot<T>(target: string, work: () => Promise<T>): Promise<T> {
  const name = hostOf(target);
  let host = hosts.get(name);
  if (!host) hosts.set(name, host = { fetching: 0, waiting: [] });
  if (host.fetching >= MAX_FETCHES_PER_HOST) {
    if (host.waiting.length >= MAX_WAITING_PER_HOST) throw new TemporaryFailureError('Busy fetching images, try again shortly');
    await new Promise<void>((resolve) => host.waiting.push(resolve));
  }
  host.fetching++;
  try {
    if (fetching >= MAX_CONCURRENT_FETCHES) {
      if (waiting.length >= MAX_WAITING) throw new TemporaryFailureError('Busy fetching images, try again shortly');
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
    fetching++;
    try {
      return await work();
    } finally {
      fetching--;
      waiting.shift()?.();
    }
  } finally {
    host.fetching--;
    const next = host.waiting.shift();
    if (next) next();
    else if (host.fetching === 0) hosts.delete(name);
  }
}

/**
 * A client that stops reading an image's response is disconnected once no byte of it was
 * sent for this long (Node's socket timeout, checked each period: so after one to two
 * periods), so it cannot keep the image's bytes in this process's memory. A slow reader
 * that keeps reading is not cut off.
 */
export const IMAGE_WRITE_IDLE_MS = 10_000;

/** Fetches in flight, by store and image, so concurrent first requests fetch an image once. */
const inFlight = new WeakMap<object, Map<string, Promise<{ type: string; body: Buffer } | { failed: string }>>>();

function fetchOnce(deps: ImageDeps, key: string, target: string): Promise<{ type: string; body: Buffer } | { failed: string }> {
  let pending = inFlight.get(deps.stores.cache);
  if (!pending) inFlight.set(deps.stores.cache, pending = new Map());
  const running = pending.get(key);
  if (running) return running;
  const { config, stores, log } = deps;
  const started = (async () => {
    try {
      const image = await inFetchSlot(target, () => fetchImage(target, { maxBytes: config.imageProxyMaxBytes, timeoutMs: config.imageProxyTimeoutMs, allowPrivate: config.imageProxyAllowPrivate }));
      // The cache is an optimisation: a full disk must not fail the request.
      await stores.cache.storeImage(key, image.type, image.body, config.imageProxyCacheBytes)
        .catch((err: unknown) => log.warn({ err }, 'image proxy: cache write failed'));
      return image;
    } catch (err) {
      // Too busy to try is no failure of the image: nothing is remembered.
      if (err instanceof TemporaryFailureError) throw err;
      // Never the URL: a sender's image URLs can name the recipient.
      log.debug({ err }, 'image proxy: image not served');
      await stores.cache.storeImageFailure(key, IMAGE_FAILURE_TTL_MS, config.imageProxyCacheBytes)
        .catch((e: unknown) => log.warn({ err: e }, 'image proxy: cache write failed'));
      return { failed: err instanceof ImageFetchError ? err.message : 'the image could not be fetched' };
    }
  })().finally(() => pending.delete(key));
  pending.set(key, started);
  return started;
}

/** The image at `target`: from cache.db when it is there (a remembered failure too), else fetched once and cached. */
export async function proxiedImage(deps: ImageDeps, target: string): Promise<{ image: { type: string; body: Buffer } | { failed: string }; cached: boolean }> {
  const key = createHash('sha256').update(target).digest('hex');
  const cached = await deps.stores.cache.cachedImage(key).catch((err: unknown) => {
    deps.log.warn({ err }, 'image proxy: cache read failed; fetching');
    return undefined;
  });
  if (cached) {
    return {
      image: cached.body && cached.content_type ? { type: cached.content_type, body: cached.body } : { failed: 'it could not be fetched a short while ago' },
      cached: true,
    };
  }
  return { image: await fetchOnce(deps, key, target), cached: false };
}

export const imageProxyRoute: Route = {
  method: 'GET',
  path: /^\/img\/([A-Za-z0-9_-]{43})\/([A-Za-z0-9_-]{1,8192})$/,
  handler: async ({ res, params, deps }) => {
    const counters = deps.counters.imageProxy;
    const target = deps.urls.images?.verify(params[0]!, params[1]!);
    if (target === undefined) {
      counters.refused++;
      throw new NotFoundError();
    }
    const { image, cached } = await proxiedImage(deps, target);
    if (cached) counters.hits++;
    else counters.misses++;
    if ('failed' in image) {
      counters.refused++;
      throw new ImageUnavailableError(image.failed);
    }
    // An image and nothing else: no script, no sniffing, loadable by feed readers and the sandboxed body.
    res.setHeader('Content-Security-Policy', "default-src 'none'; sandbox");
    res.writeHead(200, {
      'Content-Type': image.type,
      'Content-Length': String(image.body.length),
      // The URL names one image for good (its bytes are fetched once): readers and CDNs may keep it.
      'Cache-Control': 'public, max-age=31536000, immutable',
      'X-Content-Type-Options': 'nosniff',
      'Cross-Origin-Resource-Policy': 'cross-origin',
    });
    // Replaced by the keep-alive timeout once the response is written out.
    res.setTimeout(IMAGE_WRITE_IDLE_MS, () => res.destroy());
    res.end(image.body);
  },
};
