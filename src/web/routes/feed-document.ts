/**
 * GET /feeds/<feed-secret>.(atom|rss|json), and the same machinery for any
 * selection of a feed's entries (one sender's: routes/sender-feed.ts). Documents
 * are rendered once per feed version and selection and kept in cache.db in plain,
 * gzip and brotli forms; readers and CDNs get ETag, Last-Modified and 304s.
 *
 * What one request may cost is bounded whatever was mailed to the feed: an
 * entry longer than `feedEntryMaxBytes` is carried as a summary and a link to
 * its page, a document stops before `feedDocumentMaxBytes`, rendering yields to
 * the event loop between entries, compression runs in libuv's thread pool, and
 * HEAD never renders.
 */
import { SECRET_IN_PATH } from '../../secrets.js';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { brotliCompress, gzip, constants as zlib } from 'node:zlib';
import type { IncomingMessage } from 'node:http';
import { atomFormat } from '../../feeds/atom.js';
import { jsonFeedFormat } from '../../feeds/json-feed.js';
import { entryLimits } from '../../feeds/entry-limits.js';
import type { FeedDocumentHead, FeedFormat } from '../../feeds/model.js';
import { rssFormat } from '../../feeds/rss.js';
import type { DocumentEntry } from '../../store/entries.js';
import type { Feed } from '../../store/feeds.js';
import { cacheKey } from '../../store/index.js';
import type { EntryPart } from '../../store/parts.js';
import { foundOr404 } from '../http.js';
import type { RequestContext, Route, WebDeps } from '../context.js';
import { feedDocumentEntry, feedDocumentHead } from '../presenters.js';
import { feedIconRef } from './icons.js';
import { feedOfFeedToken, hotDocumentsOf } from '../hot-feeds.js';

const gzipAsync = promisify(gzip);
const brotliAsync = promisify(brotliCompress);

export type Format = 'atom' | 'rss' | 'json';
type Encoding = 'identity' | 'gzip' | 'br';

const CONTENT_TYPES: Record<Format, string> = {
  atom: 'application/atom+xml; charset=utf-8',
  rss: 'application/rss+xml; charset=utf-8',
  json: 'application/feed+json; charset=utf-8',
};

const FORMATS: Record<Format, FeedFormat> = { atom: atomFormat, rss: rssFormat, json: jsonFeedFormat };

/** Bumped when rendering changes, so cached documents of older code are not served. */
const RENDER_GENERATION = 4;

/**
 * Which of a feed's entries a document carries, and what the document says of itself.
 * Everything else (bounds, caching, ETags, encodings, HEAD) is the same for every selection.
 */
export interface EntrySelection {
  /** Names the selection in cache keys, ETags and shared work: `all`, or e.g. `sender-<key>`. */
  tag: string;
  /** The document's head: its id, title, own URLs and icon (`entries`: what it carries, newest first). */
  head(ctx: RenderContext, feed: Feed, entries: DocumentEntry[]): Promise<FeedDocumentHead>;
  /** The newest `limit` entries, bodies cut as documentEntriesOfFeed does. */
  entries(ctx: RenderContext, feed: Feed, limit: number, maxHtmlBytes: number): Promise<DocumentEntry[]>;
}

/** What rendering a document needs: a request's context, or a job's (jobs/tasks/websub.ts). */
export interface RenderContext {
  deps: Pick<WebDeps, 'stores' | 'config' | 'urls'>;
}

export const CONTENT_TYPE_OF: Readonly<Record<Format, string>> = CONTENT_TYPES;

/** The whole feed. */
export const wholeFeed: EntrySelection = {
  tag: 'all',
  head: async ({ deps }, feed) => ({
    ...feedDocumentHead(feed, deps.urls),
    icon: feedIconRef(feed, await deps.stores.app.feedIconTag(feed.id), deps.urls),
  }),
  entries: ({ deps }, feed, limit, maxHtmlBytes) => deps.stores.app.documentEntriesOfFeed(feed.id, limit, maxHtmlBytes),
};

const baseTags = new Map<string, string>();

function baseTag(base: string): string {
  let tag = baseTags.get(base);
  if (tag === undefined) {
    tag = createHash('sha256').update(base).digest('hex').slice(0, 8);
    if (baseTags.size > 100) baseTags.clear();
    baseTags.set(base, tag);
  }
  return tag;
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

interface DocumentSource {
  entries: DocumentEntry[];
  byEntry: Map<number, EntryPart[]>;
}

/**
 * Work in flight, shared by the requests that need the same result: a burst of
 * readers after a new entry (or an attacker's loop) costs one read of the
 * entries and one rendering per format and feed version. Scoped by store, so
 * two servers in one process (as in tests) never share anything.
 */
const inFlight = new WeakMap<object, Map<string, Promise<unknown>>>();

function once<T>(scope: object, key: string, work: () => Promise<T>): Promise<T> {
  let pending = inFlight.get(scope);
  if (!pending) inFlight.set(scope, pending = new Map());
  const running = pending.get(key) as Promise<T> | undefined;
  if (running) return running;
  const started = work().finally(() => pending.delete(key));
  pending.set(key, started);
  return started;
}

const owners = new WeakMap<Feed, string>();

/**
 * The feed's id with a digest of its URL secret: SQLite gives a deleted feed's id to the next
 * new feed, so every key of a rendered or rendering document names the feed by both, and a
 * render of the deleted feed that finishes late never answers for the new one.
 */
function feedOwner(feed: Feed): string {
  let owner = owners.get(feed);
  if (owner === undefined) owners.set(feed, owner = `${feed.id}.${createHash('sha256').update(feed.feed_token).digest('base64url').slice(0, 16)}`);
  return owner;
}

/** Reading the entries is the one step that cannot yield (SQLite reads synchronously), so it is shared too. */
function documentSource(ctx: RenderContext, feed: Feed, selection: EntrySelection): Promise<DocumentSource> {
  const { stores, config } = ctx.deps;
  return once(stores.app, `entries:${feedOwner(feed)}:v${feed.version}:${selection.tag}`, async () => {
    // A body with more characters than the entry bound has more bytes too: it is never read whole.
    const entries = await selection.entries(ctx, feed, entryLimits(feed, config).documentEntries, config.feedEntryMaxBytes);
    const parts = await stores.app.partsOfEntries(entries.map((e) => e.id));
    const byEntry = new Map<number, EntryPart[]>();
    for (const p of parts) byEntry.set(p.entry_id, [...(byEntry.get(p.entry_id) ?? []), p]);
    return { entries, byEntry };
  });
}

/**
 * Renders a document entry by entry. Sizes are measured on the rendered text, so
 * escaping (`&` stored as `&amp;` becomes `&amp;amp;` in XML) counts against the
 * bounds. The newest entry is always included; the next one that would take the
 * document past its bound ends it, so a document never has gaps.
 */
/** The plain (unencoded) document, rendered as GET renders it; shared with concurrent GETs of the same version. */
export function renderFeedDocument(ctx: RenderContext, feed: Feed, selection: EntrySelection, format: Format): Promise<Buffer> {
  return once(ctx.deps.stores.app, `plain:${feedOwner(feed)}:v${feed.version}:${selection.tag}:${format}:${ctx.deps.urls.variant}`, () => renderFeed(ctx, feed, selection, format));
}

async function renderFeed(ctx: RenderContext, feed: Feed, selection: EntrySelection, format: Format): Promise<Buffer> {
  const { urls, config } = ctx.deps;
  const fmt = FORMATS[format];
  const entryMax = config.feedEntryMaxBytes;
  const { entries, byEntry } = await documentSource(ctx, feed, selection);

  const head = await selection.head(ctx, feed, entries);
  const tail = fmt.tail(head);
  const pieces = [fmt.head(head)];
  let size = Buffer.byteLength(pieces[0]!) + Buffer.byteLength(tail);
  for (const [i, entry] of entries.entries()) {
    // One entry's work at a time, so other requests, SMTP and jobs run in between.
    if (i > 0) await new Promise(setImmediate);
    const own = byEntry.get(entry.id) ?? [];
    let piece = entry.html_length <= entryMax ? fmt.entry(feedDocumentEntry(entry, feed, own, urls, 'whole')) : undefined;
    if (piece === undefined || Buffer.byteLength(piece) > entryMax) piece = fmt.entry(feedDocumentEntry(entry, feed, own, urls, 'summary'));
    if (i > 0) piece = fmt.separator + piece;
    const bytes = Buffer.byteLength(piece);
    if (i > 0 && size + bytes > config.feedDocumentMaxBytes) break;
    pieces.push(piece);
    size += bytes;
  }
  pieces.push(tail);
  return Buffer.from(pieces.join(''));
}

async function encode(body: Buffer, encoding: Encoding): Promise<Buffer> {
  if (encoding === 'gzip') return gzipAsync(body, { level: 6 });
  if (encoding === 'br') {
    return brotliAsync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 5, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length } });
  }
  return body;
}

export const feedDocumentRoute: Route = {
  method: 'GET',
  path: new RegExp(String.raw`^/feeds/${SECRET_IN_PATH}\.(atom|rss|json)$`, 'i'),
  // A JSON Feed URL is read by programs: its errors are JSON too.
  errors: (params) => (params[1]?.toLowerCase() === 'json' ? 'json' : 'html'),
  handler: async (ctx) => {
    // From memory while app.db is unchanged (web/hot-feeds.ts): a 304 then touches no database.
    const feed = foundOr404(await feedOfFeedToken(ctx.deps.stores, ctx.params[0]!));
    await serveFeedDocument(ctx, feed, wholeFeed, ctx.params[1]!.toLowerCase() as Format);
  },
};

/**
 * Answers a document of `feed` carrying the entries `selection` picks, in the `requested`
 * format (or Atom, see negotiate): from cache.db when it was rendered for this feed
 * version already, with ETag, Last-Modified and 304s, HEAD without rendering.
 */
export async function serveFeedDocument(ctx: RequestContext, feed: Feed, selection: EntrySelection, requested: Format): Promise<void> {
  const { req, res, deps } = ctx;
  const format = negotiate(requested, req);
  await deps.stores.app.markFetched(feed).catch((err: unknown) => deps.log.warn({ err, feedId: feed.id }, 'web: unable to record fetch'));

  // The base URL (and the image proxy's key) is part of every link in the document, so a new one must change the ETag.
  const etag = `W/"${feed.id}-${feed.version}-${selection.tag}-${format}-${RENDER_GENERATION}-${baseTag(deps.urls.variant)}"`;
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
  const key = cacheKey({ feedId: feed.id, version: feed.version, owner: feedOwner(feed), selection: selection.tag, format, encoding, generation: RENDER_GENERATION, base: deps.urls.variant });
  const contentHeaders = {
    'Content-Type': CONTENT_TYPES[format],
    ...(encoding === 'identity' ? {} : { 'Content-Encoding': encoding }),
  };
  // The feed's secret keeps a feed id SQLite reuses after a deletion from meeting the deleted feed's bytes.
  const hot = hotDocumentsOf(deps.stores, deps.config.memoryCacheBytes);
  const hotKey = `${feed.feed_token}:${key}`;
  let body = hot.get(hotKey);
  if (req.method === 'HEAD') {
    // Headers only: the length is known when a rendered copy is cached, and is left out otherwise.
    const bytes = body?.length ?? await deps.stores.cache.cachedDocumentBytes(key).catch((err: unknown) => {
      deps.log.warn({ err, feedId: feed.id }, 'web: cache read failed; answering HEAD without a length');
      return undefined;
    });
    res.writeHead(200, { ...headers, ...contentHeaders, ...(bytes === undefined ? {} : { 'Content-Length': String(bytes) }) });
    res.end();
    return;
  }

  if (!body) {
    body = await cachedOrRendered(ctx, feed, selection, format, encoding, key, etag);
    hot.set(hotKey, body);
  }
  res.writeHead(200, { ...headers, ...contentHeaders, 'Content-Length': String(body.length) });
  res.end(body);
}

/** The document from cache.db, or rendered, encoded and stored there (shared with concurrent requests). */
async function cachedOrRendered(ctx: RequestContext, feed: Feed, selection: EntrySelection, format: Format, encoding: Encoding, key: string, etag: string): Promise<Buffer> {
  const { deps } = ctx;
  try {
    const cached = (await deps.stores.cache.cachedDocument(key))?.body;
    if (cached) return cached;
  } catch (err) {
    deps.log.warn({ err, feedId: feed.id }, 'web: cache read failed; rendering');
  }
  return once(deps.stores.app, `encoded:${key}`, async () => {
    const plain = await once(deps.stores.app, `plain:${feedOwner(feed)}:v${feed.version}:${selection.tag}:${format}:${deps.urls.variant}`, () => renderFeed(ctx, feed, selection, format));
    const rendered = await encode(plain, encoding);
    // The cache is an optimisation: a full disk or busy cache must not fail the request.
    await deps.stores.cache.storeDocument({
      key, feed_id: feed.id, content_type: CONTENT_TYPES[format], etag, last_modified: feed.updated_at, body: rendered,
    }, deps.config.cacheMaxBytes).catch((err: unknown) => deps.log.warn({ err, feedId: feed.id }, 'web: cache write failed'));
    return rendered;
  });
}
