/** Feeds: creation, lookups by each secret (in any case; anything not secret-shaped finds nothing), and the version that keys caches. */
import { sql, type Kysely } from 'kysely';
import { hashToken, looksLikeToken, newToken } from '../secrets.js';
import { greatest, serializeOn } from './dialect.js';
import { deleteUnreferenced, heldBy } from './parts.js';
import type { AppSchema, FeedsTable } from './schema.js';

export type Feed = Omit<FeedsTable, 'id' | 'version'> & { id: number; version: number };

export interface NewFeed {
  feed: Feed;
  /** Returned once, at creation; only its hash is stored. */
  manageToken: string;
}

export interface CreationLimit {
  client: string;
  perHour: number;
}

const HOUR = 3600_000;

/**
 * Creates a feed with fresh independent secrets. With a limit, the count of the
 * client's creations in the last hour is checked and the new one recorded in the
 * same transaction, so parallel requests cannot slip past the limit. Returns
 * `{ retryAt }` instead of a feed when the client is over its limit.
 */
export async function createFeed(db: Kysely<AppSchema>, now: number, title: string, limit: CreationLimit | null): Promise<NewFeed | { retryAt: number }> {
  const manageToken = newToken();
  return db.transaction().execute(async (trx) => {
    if (limit) {
      await serializeOn(trx, `feed creations of ${limit.client}`);
      const recent = await trx.selectFrom('feed_creations')
        .select((eb) => [eb.fn.countAll<number>().as('count'), eb.fn.min('created_at').as('oldest')])
        .where('client', '=', limit.client).where('created_at', '>', now - HOUR)
        .executeTakeFirstOrThrow();
      if (Number(recent.count) >= limit.perHour) return { retryAt: Number(recent.oldest ?? now) + HOUR };
      await trx.insertInto('feed_creations').values({ client: limit.client, created_at: now }).execute();
    }
    const feed = await trx
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
    return { feed, manageToken };
  });
}

/** Forgets feed creations older than `ageMs`: the creation limit only counts the last hour. */
export async function deleteFeedCreationsOlderThan(db: Kysely<AppSchema>, now: number, ageMs: number): Promise<number> {
  const r = await db.deleteFrom('feed_creations').where('created_at', '<', now - ageMs).executeTakeFirst();
  return Number(r.numDeletedRows);
}

export async function feedByInboxToken(db: Kysely<AppSchema>, inboxToken: string): Promise<Feed | undefined> {
  const token = inboxToken.toLowerCase();
  if (!looksLikeToken(token)) return undefined;
  return db.selectFrom('feeds').selectAll().where('inbox_token', '=', token).executeTakeFirst();
}

export async function feedByFeedToken(db: Kysely<AppSchema>, feedToken: string): Promise<Feed | undefined> {
  const token = feedToken.toLowerCase();
  if (!looksLikeToken(token)) return undefined;
  return db.selectFrom('feeds').selectAll().where('feed_token', '=', token).executeTakeFirst();
}

export async function feedByManageToken(db: Kysely<AppSchema>, manageToken: string): Promise<Feed | undefined> {
  const token = manageToken.toLowerCase();
  if (!looksLikeToken(token)) return undefined;
  return db.selectFrom('feeds').selectAll().where('manage_hash', '=', hashToken(token)).executeTakeFirst();
}

export async function feedById(db: Kysely<AppSchema>, id: number): Promise<Feed | undefined> {
  return db.selectFrom('feeds').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Marks a feed as changed: a new version (which keys its caches and ETags) and a new
 * `updated_at`, which readers see as Last-Modified in whole seconds. It always moves to
 * a later second than before, so a change within the second of a fetch is not hidden
 * from readers that revalidate with If-Modified-Since alone.
 */
export async function bumpFeedVersion(db: Kysely<AppSchema>, now: number, id: number): Promise<void> {
  await db.updateTable('feeds')
    .set((eb) => ({
      version: eb('version', '+', 1),
      updated_at: greatest(db, now, sql<number>`(updated_at / 1000 + 1) * 1000`),
    }))
    .where('id', '=', id)
    .execute();
}

export async function renameFeed(db: Kysely<AppSchema>, now: number, id: number, title: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('feeds').set({ title }).where('id', '=', id).execute();
    await bumpFeedVersion(trx, now, id);
  });
}

/**
 * Gives a feed a new inbox address (its old one leaked): from the commit on, mail to the
 * old one finds no feed (550 at RCPT). Returns the new token. The feed documents do not
 * show the address, so the version stays.
 */
export async function rotateInboxToken(db: Kysely<AppSchema>, id: number): Promise<string> {
  const token = newToken();
  await db.updateTable('feeds').set({ inbox_token: token }).where('id', '=', id).execute();
  return token;
}

/**
 * Gives a feed a new feed URL secret (its old one leaked): from the commit on, the old
 * URL, feed page and documents find no feed (404). The version moves on, since every
 * document links to its own URL: no document rendered for the old one is served again.
 */
export async function rotateFeedToken(db: Kysely<AppSchema>, now: number, id: number): Promise<string> {
  const token = newToken();
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('feeds').set({ feed_token: token }).where('id', '=', id).execute();
    await bumpFeedVersion(trx, now, id);
  });
  return token;
}

/** A feed's own entry numbers (null: the instance's); the documents change at once. Callers check the bounds. */
export async function setEntryLimits(db: Kysely<AppSchema>, now: number, id: number, limits: { documentEntries: number | null; keepEntries: number | null }): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('feeds').set({ document_entries: limits.documentEntries, keep_entries: limits.keepEntries }).where('id', '=', id).execute();
    await bumpFeedVersion(trx, now, id);
  });
}

/** Deletes a feed, its entries and whatever of their bodies and parts no other feed shares. */
export async function deleteFeed(db: Kysely<AppSchema>, id: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const held = await heldBy(trx, (q) => q.where('entries.feed_id', '=', id));
    await trx.deleteFrom('feeds').where('id', '=', id).execute();
    await deleteUnreferenced(trx, held);
  });
}

/**
 * Records that a feed reader fetched the feed. Written at most once an hour per
 * feed so polling readers do not turn every read into a write.
 */
export async function markFetched(db: Kysely<AppSchema>, now: number, feed: Feed): Promise<void> {
  if (feed.last_fetched_at !== null && now - feed.last_fetched_at < HOUR) return;
  await db.updateTable('feeds').set({ last_fetched_at: now }).where('id', '=', feed.id).execute();
}

/** Feeds created and not fetched in the last `ageMs`; candidates for expiry. */
export async function feedsIdleFor(db: Kysely<AppSchema>, now: number, ageMs: number): Promise<Feed[]> {
  const before = now - ageMs;
  return db.selectFrom('feeds').selectAll()
    .where((eb) => eb.and([
      eb('created_at', '<', before),
      eb.or([eb('last_fetched_at', 'is', null), eb('last_fetched_at', '<', before)]),
    ]))
    .execute();
}

/** The feeds holding an entry made from this raw message: the recipients of one delivery. */
export async function feedsWithRawMessage(db: Kysely<AppSchema>, rawHash: string): Promise<Feed[]> {
  return db.selectFrom('feeds').selectAll()
    .where('id', 'in', (eb) => eb.selectFrom('entries').select('feed_id').where('raw_hash', '=', rawHash))
    .execute();
}
