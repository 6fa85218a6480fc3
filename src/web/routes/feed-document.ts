/**
 * GET /feeds/<feed-secret>.(atom|rss|json). Documents are rendered once per
 * feed version and kept in cache.db in plain, gzip and brotli forms; readers
 * and CDNs get ETag, Last-Modified and 304s.
 */
import { createHash } from 'node:crypto';
import { brotliCompressSync, gzipSync, constants as zlib } from 'node:zlib';
import type { IncomingMessage } from 'node:http';
import { NotFoundError } from '../../errors.js';
import { renderAtom } from '../../feeds/atom.js';
import { renderJsonFeed } from '../../feeds/json-feed.js';
import { renderRss } from '../../feeds/rss.js';
import { cachedDocument, storeDocument } from '../../store/cache.js';
import { entriesOfFeed } from '../../store/entries.js';
import { feedByFeedToken, markFetched, type Feed } from '../../store/feeds.js';
import { partsOfEntries, type EntryPart } from '../../store/parts.js';
import { looksLikeToken } from '../../secrets.js';
import type { RequestContext, Route } from '../context.js';
import { buildFeedDocument } from '../entry-content.js';

type Format = 'atom' | 'rss' | 'json';
type Encoding = 'identity' | 'gzip' | 'br';

const CONTENT_TYPES: Record<Format, string> = {
  atom: 'application/atom+xml; charset=utf-8',
  rss: 'application/rss+xml; charset=utf-8',
  json: 'application/feed+json; charset=utf-8',
};

/** Bumped when rendering changes, so cached documents of older code are not served. */
const RENDER_GENERATION = 1;

function baseTag(base: string): string {
  return createHash('sha256').update(base).digest('hex').slice(0, 8);
}

function chooseEncoding(req: IncomingMessage): Encoding {
  const accept = String(req.headers['accept-encoding'] ?? '');
  if (/\bbr\b/.test(accept)) return 'br';
  if (/\bgzip\b/.test(accept)) return 'gzip';
  return 'identity';
}

/**
 * A .json URL fetched by a reader that lists XML feed types and no JSON type in
 * its Accept header (feedparser 6.0 and other XML-only readers do) gets the same
 * entries as Atom instead of a document it cannot read.
 */
function negotiate(requested: Format, req: IncomingMessage): Format {
  if (requested !== 'json') return requested;
  const accept = String(req.headers.accept ?? '').toLowerCase();
  const wantsXmlFeed = /application\/(atom|rss)\+xml/.test(accept);
  const acceptsJson = /application\/(feed\+)?json/.test(accept);
  return wantsXmlFeed && !acceptsJson ? 'atom' : 'json';
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const bare = etag.replace(/^W\//, '');
  return header.split(',').some((t) => t.trim() === '*' || t.trim().replace(/^W\//, '') === bare);
}

async function renderFeed(ctx: RequestContext, feed: Feed, format: Format): Promise<string> {
  const { stores, urls, config } = ctx.deps;
  const entries = await entriesOfFeed(stores.app.db, feed.id, config.feedMaxEntries);
  const parts = await partsOfEntries(stores.app.db, entries.map((e) => e.id));
  const byEntry = new Map<number, EntryPart[]>();
  for (const p of parts) byEntry.set(p.entry_id, [...(byEntry.get(p.entry_id) ?? []), p]);
  const doc = buildFeedDocument(feed, entries, byEntry, urls);
  return format === 'atom' ? renderAtom(doc) : format === 'rss' ? renderRss(doc) : renderJsonFeed(doc);
}

function encode(body: Buffer, encoding: Encoding): Buffer {
  if (encoding === 'gzip') return gzipSync(body, { level: 6 });
  if (encoding === 'br') return brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 5 } });
  return body;
}

export const feedDocumentRoute: Route = {
  method: 'GET',
  path: /^\/feeds\/([a-z2-7]+)\.(atom|rss|json)$/i,
  handler: async (ctx) => {
    const { req, res, params, deps } = ctx;
    const token = params[0]!.toLowerCase();
    const requested = params[1]!.toLowerCase() as Format;
    const format = negotiate(requested, req);
    if (!looksLikeToken(token)) throw new NotFoundError();
    const feed = await feedByFeedToken(deps.stores.app.db, token);
    if (!feed) throw new NotFoundError();
    await markFetched(deps.stores.app.db, feed).catch((err: unknown) => deps.log.warn({ err, feedId: feed.id }, 'web: unable to record fetch'));

    // The base URL is part of every link in the document, so a new one must change the ETag.
    const etag = `W/"${feed.id}-${feed.version}-${format}-${RENDER_GENERATION}-${baseTag(deps.urls.base)}"`;
    const lastModified = new Date(Math.floor(feed.updated_at / 1000) * 1000);
    const headers: Record<string, string> = {
      ETag: etag,
      'Last-Modified': lastModified.toUTCString(),
      // Short freshness keeps readers current; a CDN may serve stale copies while it revalidates.
      // Atom answered on a .json URL stays out of shared caches: many CDNs ignore Vary: Accept.
      'Cache-Control': format === requested
        ? 'public, max-age=60, stale-while-revalidate=600, stale-if-error=86400'
        : 'private, max-age=60',
      Vary: requested === 'json' ? 'Accept, Accept-Encoding' : 'Accept-Encoding',
    };
    const ims = req.headers['if-modified-since'];
    const notModified = req.headers['if-none-match'] !== undefined
      ? etagMatches(req.headers['if-none-match'], etag)
      : ims !== undefined && !Number.isNaN(Date.parse(ims)) && lastModified.getTime() <= Date.parse(ims);
    if (notModified) {
      res.writeHead(304, headers);
      res.end();
      return;
    }

    const encoding = chooseEncoding(req);
    const key = `${feed.id}:v${feed.version}:${format}:${encoding}:g${RENDER_GENERATION}:${deps.urls.base}`;
    let body: Buffer | undefined;
    try {
      body = (await cachedDocument(deps.stores.cache.db, key))?.body;
    } catch (err) {
      deps.log.warn({ err, feedId: feed.id }, 'web: cache read failed; rendering');
    }
    if (!body) {
      body = encode(Buffer.from(await renderFeed(ctx, feed, format)), encoding);
      // The cache is an optimisation: a full disk or busy cache must not fail the request.
      await storeDocument(deps.stores.cache.db, {
        key, feed_id: feed.id, content_type: CONTENT_TYPES[format], etag, last_modified: feed.updated_at, body,
      }, deps.config.cacheMaxBytes).catch((err: unknown) => deps.log.warn({ err, feedId: feed.id }, 'web: cache write failed'));
    }
    res.writeHead(200, {
      ...headers,
      'Content-Type': CONTENT_TYPES[format],
      'Content-Length': String(body.length),
      ...(encoding === 'identity' ? {} : { 'Content-Encoding': encoding }),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  },
};
