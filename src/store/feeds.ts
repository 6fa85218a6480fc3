/** Feeds: creation, lookups by each secret, and the version that keys caches. */
import type { Kysely } from 'kysely';
import { hashToken, newToken } from '../secrets.js';
import type { AppSchema, FeedsTable } from './schema.js';

export type Feed = Omit<FeedsTable, 'id' | 'version'> & { id: number; version: number };

export interface NewFeed {
  feed: Feed;
  /** Returned once, at creation; only its hash is stored. */
  manageToken: string;
}

export async function createFeed(db: Kysely<AppSchema>, title: string, client: string | null): Promise<NewFeed> {
  const now = Date.now();
  const manageToken = newToken();
  const feed = await db.transaction().execute(async (trx) => {
    if (client !== null) {
      await trx.insertInto('feed_creations').values({ client, created_at: now }).execute();
    }
    return trx
      .insertInto('feeds')
      .values({
        title,
        inbox_token: newToken(),
        feed_token: newToken(),
        manage_hash: hashToken(manageToken),
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  });
  return { feed, manageToken };
}

/** How many feeds a client created since a moment, for the creation rate limit. */
export async function feedCreationsSince(db: Kysely<AppSchema>, client: string, since: number): Promise<{ count: number; oldest: number | null }> {
  const row = await db
    .selectFrom('feed_creations')
    .select((eb) => [eb.fn.countAll<number>().as('count'), eb.fn.min('created_at').as('oldest')])
    .where('client', '=', client)
    .where('created_at', '>=', since)
    .executeTakeFirstOrThrow();
  return { count: Number(row.count), oldest: row.oldest as number | null };
}

export async function deleteFeedCreationsBefore(db: Kysely<AppSchema>, before: number): Promise<number> {
  const r = await db.deleteFrom('feed_creations').where('created_at', '<', before).executeTakeFirst();
  return Number(r.numDeletedRows);
}

export async function feedByInboxToken(db: Kysely<AppSchema>, inboxToken: string): Promise<Feed | undefined> {
  return db.selectFrom('feeds').selectAll().where('inbox_token', '=', inboxToken).executeTakeFirst();
}

export async function feedByFeedToken(db: Kysely<AppSchema>, feedToken: string): Promise<Feed | undefined> {
  return db.selectFrom('feeds').selectAll().where('feed_token', '=', feedToken).executeTakeFirst();
}

export async function feedByManageToken(db: Kysely<AppSchema>, manageToken: string): Promise<Feed | undefined> {
  return db.selectFrom('feeds').selectAll().where('manage_hash', '=', hashToken(manageToken)).executeTakeFirst();
}

export async function feedById(db: Kysely<AppSchema>, id: number): Promise<Feed | undefined> {
  return db.selectFrom('feeds').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function feedIdsExisting(db: Kysely<AppSchema>, ids: number[]): Promise<number[]> {
  if (ids.length === 0) return [];
  const rows = await db.selectFrom('feeds').select('id').where('id', 'in', ids).execute();
  return rows.map((r) => r.id);
}

export async function renameFeed(db: Kysely<AppSchema>, id: number, title: string): Promise<void> {
  await db.updateTable('feeds')
    .set((eb) => ({ title, updated_at: Date.now(), version: eb('version', '+', 1) }))
    .where('id', '=', id)
    .execute();
}

export async function deleteFeed(db: Kysely<AppSchema>, id: number): Promise<void> {
  await db.deleteFrom('feeds').where('id', '=', id).execute();
}

/**
 * Records that a feed reader fetched the feed. Written at most once an hour per
 * feed so polling readers do not turn every read into a write.
 */
export async function markFetched(db: Kysely<AppSchema>, feed: Feed, now = Date.now()): Promise<void> {
  if (feed.last_fetched_at !== null && now - feed.last_fetched_at < 3600_000) return;
  await db.updateTable('feeds').set({ last_fetched_at: now }).where('id', '=', feed.id).execute();
}

/** Feeds created and not fetched since `before`; candidates for expiry. */
export async function feedsIdleSince(db: Kysely<AppSchema>, before: number): Promise<Feed[]> {
  return db.selectFrom('feeds').selectAll()
    .where((eb) => eb.and([
      eb('created_at', '<', before),
      eb.or([eb('last_fetched_at', 'is', null), eb('last_fetched_at', '<', before)]),
    ]))
    .execute();
}
