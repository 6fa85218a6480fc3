/**
 * Entry notifications (issue 11): a row per stored entry in queue.db, which every process
 * shares, so a page served by one process hears of an entry another process stored.
 * Readers page through them by id; old rows are pruned by age.
 */
import { sql, type Kysely } from 'kysely';
import { dialectOf } from './dialect.js';
import type { Outcome } from './group-commit.js';
import type { QueueSchema } from './schema.js';

/** On PostgreSQL, every recorded notification is also announced on this channel (LISTEN/NOTIFY), so pollers wake at once. */
export const NOTIFICATION_CHANNEL = 'feedmail_entries';

export interface Notification {
  id: number;
  feed_id: number;
  entry_id: number;
}

/** Records that an entry was stored for a feed; returns the notification's id. */
export async function recordNotification(db: Kysely<QueueSchema>, now: number, feedId: number, entryId: number): Promise<number> {
  const r = await db.insertInto('notifications').values({ feed_id: feedId, entry_id: entryId, created_at: now }).returning('id').executeTakeFirstOrThrow();
  if (dialectOf(db) === 'postgres') await sql`SELECT pg_notify(${NOTIFICATION_CHANNEL}, '')`.execute(db);
  return r.id;
}

/**
 * Records several entries' notifications in one transaction (one commit for all); one
 * outcome per item, in order (see store/group-commit.ts).
 */
export async function recordNotifications(db: Kysely<QueueSchema>, now: number, items: { feedId: number; entryId: number }[]): Promise<Outcome<number>[]> {
  return db.transaction().execute(async (trx) => {
    const out: Outcome<number>[] = [];
    for (const { feedId, entryId } of items) out.push({ value: await recordNotification(trx, now, feedId, entryId) });
    return out;
  });
}

/** The newest notification id (0 when there is none): where a poller starts. */
export async function lastNotificationId(db: Kysely<QueueSchema>): Promise<number> {
  const row = await db.selectFrom('notifications').select('id').orderBy('id', 'desc').limit(1).executeTakeFirst();
  return row?.id ?? 0;
}

/** Notifications of every feed after `afterId`, oldest first (one range read of the primary key). */
export async function notificationsAfter(db: Kysely<QueueSchema>, afterId: number, limit: number): Promise<Notification[]> {
  return db.selectFrom('notifications').select(['id', 'feed_id', 'entry_id'])
    .where('id', '>', afterId).orderBy('id', 'asc').limit(limit).execute();
}

/** One feed's notifications after `afterId`, oldest first: what a reconnecting stream missed. */
export async function notificationsOfFeedAfter(db: Kysely<QueueSchema>, feedId: number, afterId: number, limit: number): Promise<Notification[]> {
  return db.selectFrom('notifications').select(['id', 'feed_id', 'entry_id'])
    .where('feed_id', '=', feedId).where('id', '>', afterId).orderBy('id', 'asc').limit(limit).execute();
}

/** One feed's notifications recorded at or after `since` (ms), oldest first: what a page that just loaded may have missed. */
export async function notificationsOfFeedSince(db: Kysely<QueueSchema>, feedId: number, since: number, limit: number): Promise<Notification[]> {
  return db.selectFrom('notifications').select(['id', 'feed_id', 'entry_id'])
    .where('feed_id', '=', feedId).where('created_at', '>=', since).orderBy('id', 'asc').limit(limit).execute();
}

/** Deletes notifications older than `ageMs`; returns how many. */
export async function deleteNotificationsOlderThan(db: Kysely<QueueSchema>, now: number, ageMs: number): Promise<number> {
  const r = await db.deleteFrom('notifications').where('created_at', '<', now - ageMs).executeTakeFirst();
  return Number(r.numDeletedRows);
}
