/**
 * Images the image proxy fetched (web/routes/image.ts), in cache.db: keyed by a hash of
 * their URL, bounded by total bytes, least recently used first out. A refused or failed
 * fetch is kept as a row without a body until it expires, so a dead image is not fetched
 * again on every view. Losing the table loses nothing but the fetches.
 */
import { sql, type Kysely } from 'kysely';
import { evictLeastRecent } from './cache.js';
import type { CacheSchema, ProxiedImagesTable } from './schema.js';

export type ProxiedImage = ProxiedImagesTable;

/** What a row without a body counts against the bound. */
const FAILURE_BYTES = 256;

/** The image (or the recent failure) cached for `key`; an expired failure is nothing. */
export async function cachedImage(db: Kysely<CacheSchema>, now: number, key: string): Promise<ProxiedImage | undefined> {
  const row = await db.selectFrom('proxied_images').selectAll().where('key', '=', key).executeTakeFirst();
  if (!row) return undefined;
  if (row.expires_at !== null && row.expires_at <= now) return undefined;
  // As for documents (cache.ts): the LRU order needs no write on every hit.
  if (now - row.accessed_at > 60_000) {
    await db.updateTable('proxied_images').set({ accessed_at: now }).where('key', '=', key).execute();
  }
  return row;
}

/** Stores a fetched image and keeps the table within `maxBytes`; an image larger than the whole bound is not kept. */
export async function storeImage(db: Kysely<CacheSchema>, now: number, key: string, contentType: string, body: Buffer, maxBytes: number): Promise<void> {
  if (body.length > maxBytes) return;
  await upsert(db, { key, content_type: contentType, body, bytes: body.length, expires_at: null, accessed_at: now }, maxBytes);
}

/** Remembers that fetching `key` failed or was refused, until `now + forMs`. */
export async function storeImageFailure(db: Kysely<CacheSchema>, now: number, key: string, forMs: number, maxBytes: number): Promise<void> {
  await upsert(db, { key, content_type: null, body: null, bytes: FAILURE_BYTES, expires_at: now + forMs, accessed_at: now }, maxBytes);
}

async function upsert(db: Kysely<CacheSchema>, row: ProxiedImage, maxBytes: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('proxied_images').values(row)
      .onConflict((oc) => oc.column('key').doUpdateSet({
        content_type: row.content_type, body: row.body, bytes: row.bytes, expires_at: row.expires_at, accessed_at: row.accessed_at,
      }))
      .execute();
    await evictLeastRecent(trx, 'proxied_images', maxBytes);
  });
}

/** Bytes the table holds (for /metrics and tests). */
export async function imageCacheBytes(db: Kysely<CacheSchema>): Promise<number> {
  const row = await db.selectFrom('proxied_images').select(sql<number>`coalesce(sum(bytes), 0)`.as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}
