/**
 * What each feed's owner sees of the mail sent to it (the recent deliveries of the manage
 * page), and the per-hour counts the messages-per-day limit reads. Both live in queue.db,
 * beside the journal: an accepted message's row and count are written in the very
 * transaction that journals it (a "250" always has both), a refusal is written on the
 * connection intake already uses, and whether an accepted message is still waiting or
 * failed is read from its ingest job in the same database.
 *
 * Bounded: a feed keeps its newest DELIVERIES_KEPT_PER_FEED rows (each write trims), a
 * sender refused again for the same reason within FOLD_MS adds to one row instead of a
 * new one, rows older than the retention the maintenance task passes are pruned, and a
 * feed's rows go with it (Stores.removeFeed).
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { DeliveryOutcome, JobState, QueueSchema } from './schema.js';

/** Rows kept per feed: the manage page shows them all. */
export const DELIVERIES_KEPT_PER_FEED = 100;
const HOUR = 3600_000;
/** Refusals of one sender for one reason within this long are one row with a count. */
const FOLD_MS = HOUR;
/** The messages-per-day window, in the hours it is counted in. */
export const INTAKE_WINDOW_HOURS = 24;

type Db = Kysely<QueueSchema> | Transaction<QueueSchema>;

/** The message as its feeds' owners see it: sender and subject already bounded and redacted. */
export interface DeliveryFacts {
  sender: string;
  /** Null when it was refused before its text arrived. */
  subject: string | null;
  size: number | null;
}

export interface Refusal extends DeliveryFacts {
  feedId: number;
  outcome: Exclude<DeliveryOutcome, 'accepted'>;
  /** Which rule or limit, as the owner reads it. */
  detail: string;
}

/** A row of the recent deliveries, with the state of an accepted message's ingest job while it has one. */
export interface Delivery {
  id: number;
  at: number;
  sender: string;
  subject: string | null;
  size: number | null;
  outcome: DeliveryOutcome;
  detail: string;
  count: number;
  journalUid: string | null;
  /** The ingest job while it exists (it is deleted once the message is processed). */
  job: { id: number; state: JobState; attempts: number; lastError: string } | null;
}

function hourOf(time: number): number {
  return Math.floor(time / HOUR);
}

/** Keeps the feed's newest DELIVERIES_KEPT_PER_FEED rows. */
async function trim(db: Db, feedId: number): Promise<void> {
  const last = await db.selectFrom('deliveries').select(['at', 'id']).where('feed_id', '=', feedId)
    .orderBy('at', 'desc').orderBy('id', 'desc').limit(1).offset(DELIVERIES_KEPT_PER_FEED - 1).executeTakeFirst();
  if (!last) return;
  await db.deleteFrom('deliveries').where('feed_id', '=', feedId)
    .where((eb) => eb.or([eb('at', '<', last.at), eb.and([eb('at', '=', last.at), eb('id', '<', last.id)])]))
    .execute();
}

/**
 * Records a journaled message for each of its feeds and counts it against their messages
 * per day. Runs inside the journal's transaction (store/journal.ts:journalMessage).
 */
export async function recordAccepted(trx: Transaction<QueueSchema>, now: number, feedIds: number[], journalUid: string, jobId: number | null, facts: DeliveryFacts | undefined): Promise<void> {
  const hour = hourOf(now);
  for (const feedId of feedIds) {
    await trx.insertInto('intake_counts').values({ feed_id: feedId, hour, messages: 1 })
      .onConflict((oc) => oc.columns(['feed_id', 'hour']).doUpdateSet({ messages: sql<number>`intake_counts.messages + 1` }))
      .execute();
    if (!facts) continue;
    await trx.insertInto('deliveries').values({
      feed_id: feedId, at: now, sender: facts.sender, subject: facts.subject, size: facts.size,
      outcome: 'accepted', detail: '', journal_uid: journalUid, job_id: jobId,
    }).execute();
    await trim(trx, feedId);
  }
}

/** Records a refusal: a new row, or one more on the row of the same sender refused for the same reason lately. */
export async function recordRefusal(db: Kysely<QueueSchema>, now: number, r: Refusal): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const same = await trx.selectFrom('deliveries').select('id')
      .where('feed_id', '=', r.feedId).where('at', '>', now - FOLD_MS)
      .where('outcome', '=', r.outcome).where('detail', '=', r.detail).where('sender', '=', r.sender)
      .orderBy('at', 'desc').limit(1).executeTakeFirst();
    if (same) {
      await trx.updateTable('deliveries').set((eb) => ({
        at: now,
        count: eb('count', '+', 1),
        subject: r.subject ?? eb.ref('subject'),
        size: r.size ?? eb.ref('size'),
      })).where('id', '=', same.id).execute();
      return;
    }
    await trx.insertInto('deliveries').values({
      feed_id: r.feedId, at: now, sender: r.sender, subject: r.subject, size: r.size, outcome: r.outcome, detail: r.detail,
    }).execute();
    await trim(trx, r.feedId);
  });
}

/** The feed's recent deliveries, newest first. */
export async function deliveriesOfFeed(db: Kysely<QueueSchema>, feedId: number, limit = DELIVERIES_KEPT_PER_FEED): Promise<Delivery[]> {
  const rows = await db.selectFrom('deliveries')
    .leftJoin('jobs', 'jobs.id', 'deliveries.job_id')
    .select([
      'deliveries.id as id', 'deliveries.at as at', 'deliveries.sender as sender', 'deliveries.subject as subject', 'deliveries.size as size',
      'deliveries.outcome as outcome', 'deliveries.detail as detail', 'deliveries.count as count', 'deliveries.journal_uid as journalUid',
      'jobs.id as jobId', 'jobs.state as jobState', 'jobs.attempts as attempts', 'jobs.last_error as lastError',
    ])
    .where('deliveries.feed_id', '=', feedId)
    .orderBy('deliveries.at', 'desc').orderBy('deliveries.id', 'desc').limit(limit)
    .execute();
  return rows.map((r) => ({
    id: r.id, at: r.at, sender: r.sender, subject: r.subject, size: r.size, outcome: r.outcome, detail: r.detail, count: r.count, journalUid: r.journalUid,
    job: r.jobId === null || r.jobState === null
      ? null
      : { id: r.jobId, state: r.jobState, attempts: r.attempts ?? 0, lastError: (r.lastError ?? '').split('\n')[0]! },
  }));
}

/** What the messages-per-day limit sees of a feed now: messages journaled in the window, and when the oldest counted hour began. */
export async function messagesInWindow(db: Kysely<QueueSchema>, now: number, feedId: number): Promise<{ messages: number; oldestHourAt: number | null }> {
  const row = await db.selectFrom('intake_counts')
    .select((eb) => [eb.fn.sum<number>('messages').as('messages'), eb.fn.min<number>('hour').as('oldest')])
    .where('feed_id', '=', feedId).where('hour', '>', hourOf(now) - INTAKE_WINDOW_HOURS)
    .executeTakeFirstOrThrow();
  return { messages: Number(row.messages ?? 0), oldestHourAt: row.oldest === null ? null : Number(row.oldest) * HOUR };
}

/** Forgets a deleted feed's deliveries and counts. */
export async function deleteDeliveriesOfFeed(db: Kysely<QueueSchema>, feedId: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('deliveries').where('feed_id', '=', feedId).execute();
    await trx.deleteFrom('intake_counts').where('feed_id', '=', feedId).execute();
  });
}

/** Drops deliveries older than `ageMs` and the hourly counts the window no longer reads. */
export async function pruneIntakeRecords(db: Kysely<QueueSchema>, now: number, ageMs: number): Promise<number> {
  const r = await db.deleteFrom('deliveries').where('at', '<', now - ageMs).executeTakeFirst();
  await db.deleteFrom('intake_counts').where('hour', '<=', hourOf(now) - INTAKE_WINDOW_HOURS).execute();
  return Number(r.numDeletedRows);
}
