/** The inbound journal: raw mail kept durably before anyone is told "250". */
import { ReplayedDeliveryError } from '../errors.js';
import { randomBytes } from 'node:crypto';
import { InvalidJobPayloadError } from '../errors.js';
import { sql, type Kysely, type Transaction } from 'kysely';
import { recordAccepted, type DeliveryFacts } from './deliveries.js';
import { dialectOf, jsonInteger } from './dialect.js';
import { enqueueJob } from './jobs.js';
import { recordDeliveryIn } from './webhook-replays.js';
import type { JournalTable, QueueSchema } from './schema.js';

export type JournalRow = Omit<JournalTable, 'id'> & { id: number };

export interface JournalInput {
  source: string;
  mailFrom: string;
  feedIds: number[];
  raw: Buffer;
  receivedAt?: number;
  /** The message as its feeds' owners see it in their recent deliveries (store/deliveries.ts); none: no row. */
  delivery?: Omit<DeliveryFacts, 'size'>;
  /**
   * A signed webhook delivery's replay key, remembered in the same transaction as the
   * message (store/webhook-replays.ts), so both are durable with one commit.
   */
  replay?: { signature: string; expiresAt: number };
}

/**
 * The ingest job's contract, in one place: its name, its priority (lowest, so mail runs
 * first) and its payload, the journal row to process. The store owns it because the
 * store writes the job with its journal row and queries the payload (`$.journalId`).
 */
export const INGEST_TASK = 'ingest';
export const INGEST_PRIORITY = 0;

export interface IngestPayload {
  journalId: number;
}

/** Checks a stored ingest payload: another shape is a bug or a corrupt row, and fails the job saying so. */
export function parseIngestPayload(payload: unknown): IngestPayload {
  const journalId = (payload as { journalId?: unknown } | null)?.journalId;
  if (typeof payload !== 'object' || !Number.isSafeInteger(journalId)) {
    throw new InvalidJobPayloadError(`${INGEST_TASK} job: the payload must be {"journalId": <integer>}, got ${String(JSON.stringify(payload)).slice(0, 200)}`);
  }
  return { journalId: journalId as number };
}

/** Messages larger than this are written in pieces of this size. */
const CHUNK_BYTES = 1024 * 1024;

/** Messages larger than this are written in pieces first, and never journaled in a group. */
export const LARGEST_GROUPED_BYTES = CHUNK_BYTES;

/**
 * Writes the raw message and its ingest job; the queue connection runs with
 * synchronous=FULL, so once this resolves the message survives kill -9 and power
 * loss. A small message goes in one transaction. A large one is first written in
 * pieces, each committed on its own with the event loop free in between (one commit
 * of 25 MB would hold every other sender and request for a quarter of a second),
 * and then counts only once the journal row and job that name it are committed.
 * Pieces left by a write that failed or died are deleted by `deleteJournalOlderThan`.
 * The same transaction counts the message against its feeds' messages per day and lists
 * it in their recent deliveries (store/deliveries.ts).
 */
export async function journalMessage(db: Kysely<QueueSchema>, now: number, input: JournalInput): Promise<number> {
  const uid = randomBytes(16).toString('hex');
  const chunked = input.raw.length > CHUNK_BYTES;
  if (chunked) {
    try {
      for (let seq = 0; seq * CHUNK_BYTES < input.raw.length; seq++) {
        if (seq > 0) await new Promise((resolve) => setImmediate(resolve));
        await db.insertInto('journal_chunks')
          .values({ uid, seq, data: input.raw.subarray(seq * CHUNK_BYTES, (seq + 1) * CHUNK_BYTES), created_at: now })
          .execute();
      }
    } catch (err) {
      await db.deleteFrom('journal_chunks').where('uid', '=', uid).execute().catch(() => {
        // Left for deleteJournalOlderThan's sweep of abandoned pieces; the original error is what matters.
      });
      throw err;
    }
  }
  return db.transaction().execute((trx) => insertJournalRow(trx, now, uid, input, chunked));
}

/**
 * Journals several small messages (none above LARGEST_GROUPED_BYTES) in one transaction,
 * so one fsync makes all of them durable (group commit, see store/group-commit.ts): each
 * gets the same rows journalMessage writes, and either all are committed or none.
 * Returns their journal ids in order.
 */
export async function journalMessages(db: Kysely<QueueSchema>, now: number, inputs: JournalInput[]): Promise<number[]> {
  if (inputs.some((input) => input.raw.length > LARGEST_GROUPED_BYTES)) throw new Error('journalMessages: a message too large to group');
  return db.transaction().execute(async (trx) => {
    const ids: number[] = [];
    for (const input of inputs) ids.push(await insertJournalRow(trx, now, randomBytes(16).toString('hex'), input, false));
    return ids;
  });
}

/** The journal row of one message, its ingest job and its intake records, inside the caller's transaction. */
async function insertJournalRow(trx: Transaction<QueueSchema>, now: number, uid: string, input: JournalInput, chunked: boolean): Promise<number> {
  const row = await trx.insertInto('journal').values({
    uid,
    received_at: input.receivedAt ?? now,
    source: input.source,
    mail_from: input.mailFrom,
    feed_ids: JSON.stringify(input.feedIds),
    size: input.raw.length,
    raw: chunked ? Buffer.alloc(0) : input.raw,
  }).returning('id').executeTakeFirstOrThrow();
  const fairKey = `feeds:${[...input.feedIds].sort((a, b) => a - b).join(',')}`;
  const jobId = await enqueueJob(trx, now, { task: INGEST_TASK, payload: { journalId: row.id } satisfies IngestPayload, priority: INGEST_PRIORITY, fairKey });
  // Counted against each feed's messages per day, and listed in its recent deliveries, with the message itself.
  await recordAccepted(trx, now, input.feedIds, uid, jobId ?? null, input.delivery && { ...input.delivery, size: input.raw.length });
  // Another process accepted the same signed delivery first (both passed the early check at
  // once): refuse this one, and the whole transaction with it, so it is journaled once.
  if (input.replay && !(await recordDeliveryIn(trx, now, input.replay.signature, input.replay.expiresAt))) throw new ReplayedDeliveryError();
  return row.id;
}

export async function journalById(db: Kysely<QueueSchema>, id: number): Promise<JournalRow | undefined> {
  const row = await db.selectFrom('journal').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row || row.raw.length === row.size) return row;
  const chunks = await db.selectFrom('journal_chunks').select('data').where('uid', '=', row.uid).orderBy('seq').execute();
  return { ...row, raw: Buffer.concat(chunks.map((c) => c.data)) };
}

/** What is known of a journaled message without reading it. */
export type JournalSummary = Omit<JournalRow, 'raw'>;

/** Journal rows in id order, a page at a time, without their bytes (audits and replays). */
export async function journalAfter(db: Kysely<QueueSchema>, afterId: number, limit: number): Promise<JournalSummary[]> {
  return db.selectFrom('journal').select(['id', 'uid', 'received_at', 'source', 'mail_from', 'feed_ids', 'size'])
    .where('id', '>', afterId).orderBy('id').limit(limit).execute();
}

/** Pieces older than this without a journal row belong to a write that failed or died. */
const ABANDONED_CHUNK_MS = 3600_000;

/** Deletes the pieces of journal rows that are gone, and of writes abandoned long ago. */
async function deleteOrphanChunks(db: Kysely<QueueSchema>, now: number): Promise<void> {
  await db.deleteFrom('journal_chunks')
    .where('created_at', '<', now - ABANDONED_CHUNK_MS)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('journal').select(sql.lit(1).as('one')).whereRef('journal.uid', '=', 'journal_chunks.uid'))))
    .execute();
}

/** Drops raw mail older than `ageMs` (the retention window), except rows an ingest job still needs. */
export async function deleteJournalOlderThan(db: Kysely<QueueSchema>, now: number, ageMs: number): Promise<number> {
  const r = await db.deleteFrom('journal')
    .where('received_at', '<', now - ageMs)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('jobs').select(sql.lit(1).as('one'))
      .where('task', '=', INGEST_TASK)
      .where(jsonInteger(db, 'jobs.payload', 'journalId'), '=', sql.ref('journal.id')))))
    .executeTakeFirst();
  await deleteOrphanChunks(db, now);
  return Number(r.numDeletedRows);
}

/**
 * Forgets the raw mail addressed to a deleted feed alone, so deleting a feed gives
 * all its space back. (Mail also addressed to other feeds stays for their replay.)
 * A pending ingest job of such a row finds it gone and does nothing.
 */
export async function deleteJournalOfFeed(db: Kysely<QueueSchema>, feedId: number): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const rows = await trx.selectFrom('journal').select('uid').where('feed_ids', '=', JSON.stringify([feedId])).execute();
    for (let i = 0; i < rows.length; i += 500) {
      const uids = rows.slice(i, i + 500).map((r) => r.uid);
      await trx.deleteFrom('journal_chunks').where('uid', 'in', uids).execute();
      await trx.deleteFrom('journal').where('uid', 'in', uids).execute();
    }
    return rows.length;
  });
}

/**
 * Forgets the raw mail of one deleted entry when it was addressed to that entry's feed
 * alone (mail also addressed to other feeds stays for their replay). A pending ingest
 * job of the row then finds it gone and cannot bring the entry back.
 */
export async function deleteJournalOfEntry(db: Kysely<QueueSchema>, uid: string, feedId: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const row = await trx.selectFrom('journal').select('uid').where('uid', '=', uid).where('feed_ids', '=', JSON.stringify([feedId])).executeTakeFirst();
    if (!row) return false;
    await trx.deleteFrom('journal_chunks').where('uid', '=', uid).execute();
    await trx.deleteFrom('journal').where('uid', '=', uid).execute();
    return true;
  });
}

/** An ingest job that failed for good, as the owner of one of its feeds sees it. */
export interface FailedIngest {
  jobId: number;
  journalId: number;
  receivedAt: number;
  size: number;
  attempts: number;
  lastError: string;
}

/** Ingest jobs failed for good whose message was addressed to this feed (newest first). */
export async function failedIngestsOfFeed(db: Kysely<QueueSchema>, feedId: number, limit = 20): Promise<FailedIngest[]> {
  const rows = await db.selectFrom('jobs')
    .innerJoin('journal', (j) => j.on(jsonInteger(db, 'jobs.payload', 'journalId'), '=', sql.ref('journal.id')))
    .select(['jobs.id as jobId', 'journal.id as journalId', 'journal.received_at as receivedAt', 'journal.size as size',
      'jobs.attempts as attempts', 'jobs.last_error as lastError'])
    .where('jobs.task', '=', INGEST_TASK).where('jobs.state', '=', 'failed')
    .where(dialectOf(db) === 'postgres'
      ? sql<boolean>`journal.feed_ids::jsonb @> ${JSON.stringify([feedId])}::jsonb`
      : sql<boolean>`exists (select 1 from json_each(journal.feed_ids) where json_each.value = ${feedId})`)
    .orderBy('jobs.id', 'desc').limit(limit).execute();
  return rows.map((r) => ({ ...r, lastError: (r.lastError ?? '').split('\n')[0]! }));
}
