/** The icon a feed's owner uploaded, one per feed; its feed documents point at it. */
import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { bumpFeedVersion } from './feeds.js';
import type { AppSchema, FeedIconsTable } from './schema.js';

export type FeedIcon = FeedIconsTable;

/** What a document needs to link the icon (no bytes). */
export type FeedIconTag = Pick<FeedIcon, 'content_type' | 'hash'>;

/** Sets (or replaces) a feed's icon and bumps the feed's version, so the documents link the new one. */
export async function setFeedIcon(db: Kysely<AppSchema>, now: number, feedId: number, contentType: string, data: Buffer): Promise<FeedIconTag> {
  const hash = createHash('sha256').update(data).digest('hex');
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('feed_icons').values({ feed_id: feedId, content_type: contentType, data, hash, updated_at: now })
      .onConflict((oc) => oc.column('feed_id').doUpdateSet({ content_type: contentType, data, hash, updated_at: now }))
      .execute();
    await bumpFeedVersion(trx, now, feedId);
  });
  return { content_type: contentType, hash };
}

/** Removes a feed's uploaded icon (its documents go back to the generated one). Returns whether there was one. */
export async function deleteFeedIcon(db: Kysely<AppSchema>, now: number, feedId: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const r = await trx.deleteFrom('feed_icons').where('feed_id', '=', feedId).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) return false;
    await bumpFeedVersion(trx, now, feedId);
    return true;
  });
}

export async function feedIcon(db: Kysely<AppSchema>, feedId: number): Promise<FeedIcon | undefined> {
  return db.selectFrom('feed_icons').selectAll().where('feed_id', '=', feedId).executeTakeFirst();
}

export async function feedIconTag(db: Kysely<AppSchema>, feedId: number): Promise<FeedIconTag | undefined> {
  return db.selectFrom('feed_icons').select(['content_type', 'hash']).where('feed_id', '=', feedId).executeTakeFirst();
}
