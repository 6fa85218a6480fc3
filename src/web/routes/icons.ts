/**
 * Icons feed documents point at, all served by feedmail itself, so a reader never
 * fetches anything from a sender's site:
 *   GET /feeds/<feed-secret>/icon   the feed's icon: the one its owner uploaded on the
 *                                   manage page, else a monogram of its title;
 *   GET /icons/<domain>.png         a monogram of a sender domain (per-sender feeds).
 * Domain icons are public: they are made from the domain name alone and say nothing else.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { NotFoundError } from '../../errors.js';
import { domainName, monogramLetter, monogramPng } from '../../feeds/monogram.js';
import { isDomain } from '../../feeds/senders.js';
import { SECRET_IN_PATH } from '../../secrets.js';
import type { Feed } from '../../store/feeds.js';
import type { FeedIconTag } from '../../store/icons.js';
import { foundOr404 } from '../http.js';
import type { Route } from '../context.js';
import type { Urls } from '../urls.js';

/** Bumped when generated icons change, so their URLs (and so readers' copies) change too. */
const MONOGRAM_GENERATION = 1;

export interface IconRef {
  url: string;
  type: string;
}

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

function titleOf(feed: Pick<Feed, 'title'>): string {
  return feed.title || 'feedmail inbox';
}

/** The feed's icon as its documents link it: the uploaded one (`tag`), else the title's monogram. */
export function feedIconRef(feed: Pick<Feed, 'title' | 'feed_token'>, tag: FeedIconTag | undefined, urls: Urls): IconRef {
  if (tag) return { url: urls.feedIcon(feed.feed_token, tag.hash.slice(0, 16)), type: tag.content_type };
  return { url: urls.feedIcon(feed.feed_token, `g${MONOGRAM_GENERATION}-${shortHash(titleOf(feed))}`), type: 'image/png' };
}

/** A sender domain's icon; undefined when the address had no usable domain. */
export function domainIconRef(domain: string, urls: Urls): IconRef | undefined {
  return domain ? { url: urls.domainIcon(domain), type: 'image/png' } : undefined;
}

/** Generated icons, a few hundred at most, so a burst of readers renders each once. */
const generated = new Map<string, Buffer>();
const GENERATED_MAX = 512;

function monogram(seed: string, text: string): Buffer {
  const letter = monogramLetter(text);
  const key = `${letter}\0${seed}`;
  let png = generated.get(key);
  if (png) {
    // Most recently used last: Map keeps insertion order.
    generated.delete(key);
  } else {
    png = monogramPng(seed, letter);
    if (generated.size >= GENERATED_MAX) generated.delete(generated.keys().next().value!);
  }
  generated.set(key, png);
  return png;
}

function sendImage(req: IncomingMessage, res: ServerResponse, type: string, body: Buffer, etag: string, maxAgeSeconds: number): void {
  const headers = {
    ETag: etag,
    'Cache-Control': `public, max-age=${maxAgeSeconds}`,
    // An image is never a document of ours: nothing in it may run, even when opened on its own.
    'Content-Security-Policy': "default-src 'none'; sandbox",
    // Web-based readers show it on their own pages.
    'Cross-Origin-Resource-Policy': 'cross-origin',
  };
  const inm = req.headers['if-none-match'];
  if (inm !== undefined && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': String(body.length) });
  res.end(body);
}

export const feedIconRoute: Route = {
  method: 'GET',
  path: new RegExp(String.raw`^/feeds/${SECRET_IN_PATH}/icon$`, 'i'),
  handler: async ({ req, res, params, deps }) => {
    const feed = foundOr404(await deps.stores.app.feedByFeedToken(params[0]!));
    const icon = await deps.stores.app.feedIcon(feed.id);
    if (icon) return sendImage(req, res, icon.content_type, icon.data, `"${icon.hash.slice(0, 32)}"`, 86_400);
    const png = monogram(`title:${titleOf(feed)}`, titleOf(feed));
    sendImage(req, res, 'image/png', png, `"g${MONOGRAM_GENERATION}-${shortHash(titleOf(feed))}"`, 86_400);
  },
};

export const domainIconRoute: Route = {
  method: 'GET',
  path: /^\/icons\/([a-z0-9.-]{1,253})\.png$/,
  handler: async ({ req, res, params }) => {
    const domain = params[0]!;
    if (!isDomain(domain)) throw new NotFoundError();
    const png = monogram(`domain:${domain}`, domainName(domain));
    sendImage(req, res, 'image/png', png, `"g${MONOGRAM_GENERATION}-${shortHash(domain)}"`, 7 * 86_400);
  },
};
