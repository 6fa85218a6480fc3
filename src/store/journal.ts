/** The inbound journal: raw mail kept durably before anyone is told "250". */
import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { enqueueJob } from './jobs.js';
import type { JournalTable, QueueSchema } from './schema.js';

export type JournalRow = Omit<JournalTable, 'id'> & { id: number };

export interface JournalInput {
  source: string;
  mailFrom: string;
  feedIds: number[];
  raw: Buffer;
  receivedAt?: number;
}

export const INGEST_TASK = 'ingest';
export const INGEST_PRIORITY = 0;

/**
 * Writes the raw message and its ingest job in one transaction. The queue
 * connection runs with synchronous=FULL, so once this resolves the message
 * survives kill -9 and power loss.
 */
export async function journalMessage(db: Kysely<QueueSchema>, input: JournalInput): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const row = await trx.insertInto('journal').values({
      uid: randomBytes(16).toString('hex'),
      received_at: input.receivedAt ?? Date.now(),
      source: input.source,
      mail_from: input.mailFrom,
      feed_ids: JSON.stringify(input.feedIds),
      size: input.raw.length,
      raw: input.raw,
    }).returning('id').executeTakeFirstOrThrow();
    const fairKey = `feeds:${[...input.feedIds].sort((a, b) => a - b).join(',')}`;
    await enqueueJob(trx, { task: INGEST_TASK, payload: { journalId: row.id }, priority: INGEST_PRIORITY, fairKey });
    return row.id;
  });
}

export async function journalById(db: Kysely<QueueSchema>, id: number): Promise<JournalRow | undefined> {
  return db.selectFrom('journal').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Drops raw mail older than the retention window, except rows an ingest job still needs. */
export async function deleteJournalBefore(db: Kysely<QueueSchema>, before: number): Promise<number> {
  const r = await db.deleteFrom('journal')
    .where('received_at', '<', before)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('jobs').select(sql.lit(1).as('one'))
      .where('task', '=', INGEST_TASK)
      .where(sql`json_extract(jobs.payload, '$.journalId')`, '=', sql.ref('journal.id')))))
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}

/**
 * Forgets the raw mail addressed to a deleted feed alone, so deleting a feed gives
 * all its space back. (Mail also addressed to other feeds stays for their replay.)
 * A pending ingest job of such a row finds it gone and does nothing.
 */
export async function deleteJournalOfFeed(db: Kysely<QueueSchema>, feedId: number): Promise<number> {
  const r = await db.deleteFrom('journal').where('feed_ids', '=', JSON.stringify([feedId])).executeTakeFirst();
  return Number(r.numDeletedRows);
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
    .innerJoin('journal', (j) => j.on(sql`json_extract(jobs.payload, '$.journalId')`, '=', sql.ref('journal.id')))
    .select(['jobs.id as jobId', 'journal.id as journalId', 'journal.received_at as receivedAt', 'journal.size as size',
      'jobs.attempts as attempts', 'jobs.last_error as lastError'])
    .where('jobs.task', '=', INGEST_TASK).where('jobs.state', '=', 'failed')
    .where(sql<boolean>`exists (select 1 from json_each(journal.feed_ids) where json_each.value = ${feedId})`)
    .orderBy('jobs.id', 'desc').limit(limit).execute();
  return rows.map((r) => ({ ...r, lastError: (r.lastError ?? '').split('\n')[0]! }));
}
