/** WebSub subscriptions (see web/routes/websub.ts and jobs/tasks/websub.ts). */
import type { Kysely, Selectable } from 'kysely';
import { serializeOn } from './dialect.js';
import type { AppSchema, WebsubSubscriptionsTable } from './schema.js';

export type WebsubSubscription = Selectable<WebsubSubscriptionsTable>;

export interface WebsubSubscriptionInput {
  feedId: number;
  feedToken: string;
  topic: string;
  base: string;
  format: 'atom' | 'rss' | 'json';
  senderKey: string | null;
  callback: string;
  secret: string | null;
  leaseSeconds: number;
}

/** Live subscriptions of a feed, all topics. */
export async function countWebsubSubscriptions(db: Kysely<AppSchema>, now: number, feedId: number): Promise<number> {
  const r = await db.selectFrom('websub_subscriptions').select((eb) => eb.fn.countAll<number>().as('n'))
    .where('feed_id', '=', feedId).where('lease_expires_at', '>', now).executeTakeFirstOrThrow();
  return Number(r.n);
}

export async function websubSubscriptionExists(db: Kysely<AppSchema>, now: number, feedId: number, topic: string, callback: string): Promise<boolean> {
  const r = await db.selectFrom('websub_subscriptions').select('id')
    .where('feed_id', '=', feedId).where('topic', '=', topic).where('callback', '=', callback).where('lease_expires_at', '>', now).executeTakeFirst();
  return r !== undefined;
}

/**
 * Stores a verified subscription, or renews it (new lease and secret). Refused (false)
 * when it is new and the feed already has `cap` live subscriptions.
 */
export async function upsertWebsubSubscription(db: Kysely<AppSchema>, now: number, s: WebsubSubscriptionInput, cap: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    await serializeOn(trx, `websub subscriptions of ${s.feedId}`);
    const existing = await trx.selectFrom('websub_subscriptions').select('id')
      .where('feed_id', '=', s.feedId).where('topic', '=', s.topic).where('callback', '=', s.callback).executeTakeFirst();
    const lease = now + s.leaseSeconds * 1000;
    if (existing) {
      await trx.updateTable('websub_subscriptions').set({ secret: s.secret, lease_expires_at: lease, feed_token: s.feedToken, base: s.base, updated_at: now })
        .where('id', '=', existing.id).execute();
      return true;
    }
    const live = await countWebsubSubscriptions(trx, now, s.feedId);
    if (live >= cap) return false;
    await trx.insertInto('websub_subscriptions').values({
      feed_id: s.feedId, feed_token: s.feedToken, topic: s.topic, base: s.base, format: s.format, sender_key: s.senderKey,
      callback: s.callback, secret: s.secret, lease_expires_at: lease, created_at: now, updated_at: now,
    }).execute();
    return true;
  });
}

export async function deleteWebsubSubscription(db: Kysely<AppSchema>, _now: number, feedId: number, topic: string, callback: string): Promise<number> {
  const r = await db.deleteFrom('websub_subscriptions').where('feed_id', '=', feedId).where('topic', '=', topic).where('callback', '=', callback).executeTakeFirst();
  return Number(r.numDeletedRows);
}

export async function deleteWebsubSubscriptionById(db: Kysely<AppSchema>, _now: number, id: number): Promise<void> {
  await db.deleteFrom('websub_subscriptions').where('id', '=', id).execute();
}

/** Subscriptions whose lease has not run out. */
export async function liveWebsubSubscriptionsOfFeed(db: Kysely<AppSchema>, now: number, feedId: number): Promise<WebsubSubscription[]> {
  return db.selectFrom('websub_subscriptions').selectAll().where('feed_id', '=', feedId).where('lease_expires_at', '>', now).orderBy('id').execute();
}

export async function hasLiveWebsubSubscriptions(db: Kysely<AppSchema>, now: number, feedId: number): Promise<boolean> {
  const r = await db.selectFrom('websub_subscriptions').select('id').where('feed_id', '=', feedId).where('lease_expires_at', '>', now).limit(1).executeTakeFirst();
  return r !== undefined;
}

export async function websubSubscriptionById(db: Kysely<AppSchema>, _now: number, id: number): Promise<WebsubSubscription | undefined> {
  return db.selectFrom('websub_subscriptions').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Subscriptions of a feed, expired or not (tests and operators). */
export async function websubSubscriptionsOfFeed(db: Kysely<AppSchema>, _now: number, feedId: number): Promise<WebsubSubscription[]> {
  return db.selectFrom('websub_subscriptions').selectAll().where('feed_id', '=', feedId).orderBy('id').execute();
}

export async function deleteExpiredWebsubSubscriptions(db: Kysely<AppSchema>, now: number): Promise<number> {
  const r = await db.deleteFrom('websub_subscriptions').where('lease_expires_at', '<=', now).executeTakeFirst();
  return Number(r.numDeletedRows);
}
