/**
 * Rendered documents in cache.db, keyed by feed and version so a new entry
 * invalidates by construction. Bounded by total bytes; the least recently used
 * go first. The whole file may be deleted while feedmail is stopped.
 */
import { sql, type Kysely } from 'kysely';
import type { CacheSchema, RenderedTable } from './schema.js';

export type CachedDocument = RenderedTable;

/** What a cached document depends on: anything that changes the bytes must change the key. */
export interface CacheKeyParts {
  feedId: number;
  version: number;
  /**
   * Which feed holds that id (a digest of its URL secret): SQLite gives a deleted feed's id to
   * the next new feed, and a document of the deleted feed rendered late must never be its.
   */
  owner: string;
  /** Which of the feed's entries the document carries: `all`, or one sender's (see feed-document.ts). */
  selection: string;
  format: string;
  encoding: string;
  /** Bumped when the code that renders documents changes what it writes. */
  generation: number;
  /** The public URL the document's links start with. */
  base: string;
}

/** The key of a cached document; `versionOf` reads the feed version back out of it. */
export function cacheKey(k: CacheKeyParts): string {
  return `${k.feedId}:v${k.version}:${k.owner}:${k.selection}:${k.format}:${k.encoding}:g${k.generation}:${k.base}`;
}

export async function cachedDocument(db: Kysely<CacheSchema>, now: number, key: string): Promise<CachedDocument | undefined> {
  const row = await db.selectFrom('rendered').selectAll().where('key', '=', key).executeTakeFirst();
  if (row) {
    // Touching on every hit would turn reads into writes; once a minute is enough for LRU order.
    if (now - row.accessed_at > 60_000) {
      await db.updateTable('rendered').set({ accessed_at: now }).where('key', '=', key).execute();
    }
  }
  return row;
}

/** The size of a cached document without reading it, for HEAD. */
export async function cachedDocumentBytes(db: Kysely<CacheSchema>, key: string): Promise<number | undefined> {
  const row = await db.selectFrom('rendered').select('bytes').where('key', '=', key).executeTakeFirst();
  return row?.bytes;
}

/**
 * Stores a rendered document and keeps the cache within `maxBytes` at once, so
 * the bound holds between runs of the trim task too. A document larger than the
 * whole bound (possible only when the cache is set smaller than a feed document)
 * is not cached.
 */
export async function storeDocument(db: Kysely<CacheSchema>, now: number, doc: Omit<CachedDocument, 'bytes' | 'accessed_at'>, maxBytes: number): Promise<void> {
  if (doc.body.length > maxBytes) return;
  await db.transaction().execute(async (trx) => {
    // Older versions of the same feed can never be served again.
    await trx.deleteFrom('rendered').where('feed_id', '=', doc.feed_id).where('key', '!=', doc.key)
      .where('key', 'not like', `${doc.feed_id}:v${versionOf(doc.key)}:%`).execute();
    await trx.insertInto('rendered').values({ ...doc, bytes: doc.body.length, accessed_at: now })
      .onConflict((oc) => oc.column('key').doUpdateSet({ body: doc.body, bytes: doc.body.length, etag: doc.etag, accessed_at: now }))
      .execute();
    await evictLeastRecent(trx, 'rendered', maxBytes);
  });
}

/** The feed version a key names (see cacheKey). */
function versionOf(key: string): string {
  return /^\d+:v(\d+):/.exec(key)?.[1] ?? '';
}

export async function cacheBytes(db: Kysely<CacheSchema>): Promise<number> {
  const row = await db.selectFrom('rendered').select(sql<number>`coalesce(sum(bytes), 0)`.as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Evicts least recently used documents until the cache holds at most `maxBytes`. */
export async function evictCache(db: Kysely<CacheSchema>, maxBytes: number): Promise<number> {
  return db.transaction().execute((trx) => evictLeastRecent(trx, 'rendered', maxBytes));
}

/** Deletes a table's least recently used rows until its rows' bytes add up to at most `maxBytes` (for store/images.ts too). */
export async function evictLeastRecent(trx: Kysely<CacheSchema>, table: 'rendered' | 'proxied_images', maxBytes: number): Promise<number> {
  const total = Number((await trx.selectFrom(table).select(sql<number>`coalesce(sum(bytes), 0)`.as('n')).executeTakeFirstOrThrow()).n);
  if (total <= maxBytes) return 0;
  let excess = total - maxBytes;
  const victims: string[] = [];
  const rows = await trx.selectFrom(table).select(['key', 'bytes']).orderBy('accessed_at').orderBy('key').execute();
  for (const r of rows) {
    if (excess <= 0) break;
    victims.push(r.key);
    excess -= r.bytes;
  }
  let evicted = 0;
  for (let i = 0; i < victims.length; i += 500) {
    const r = await trx.deleteFrom(table).where('key', 'in', victims.slice(i, i + 500)).executeTakeFirst();
    evicted += Number(r.numDeletedRows);
  }
  return evicted;
}

export async function deleteCachedFeed(db: Kysely<CacheSchema>, feedId: number): Promise<void> {
  await db.deleteFrom('rendered').where('feed_id', '=', feedId).execute();
}
