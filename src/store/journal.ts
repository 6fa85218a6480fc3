/** The inbound journal: raw mail kept durably before anyone is told "250". */
import type { Kysely } from 'kysely';
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
      received_at: input.receivedAt ?? Date.now(),
      source: input.source,
      mail_from: input.mailFrom,
      feed_ids: JSON.stringify(input.feedIds),
      size: input.raw.length,
      raw: input.raw,
    }).returning('id').executeTakeFirstOrThrow();
    await enqueueJob(trx, { task: INGEST_TASK, payload: { journalId: row.id }, priority: INGEST_PRIORITY });
    return row.id;
  });
}

export async function journalById(db: Kysely<QueueSchema>, id: number): Promise<JournalRow | undefined> {
  return db.selectFrom('journal').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function journalIdsSince(db: Kysely<QueueSchema>, since: number): Promise<number[]> {
  const rows = await db.selectFrom('journal').select('id').where('received_at', '>=', since).orderBy('id').execute();
  return rows.map((r) => r.id);
}

/** Drops raw mail older than the retention window, except rows an ingest job still needs. */
export async function deleteJournalBefore(db: Kysely<QueueSchema>, before: number): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const pending = await trx.selectFrom('jobs').select('payload').where('task', '=', INGEST_TASK).execute();
    const keep = pending.map((j) => Number((JSON.parse(j.payload) as { journalId?: number }).journalId)).filter(Number.isFinite);
    let q = trx.deleteFrom('journal').where('received_at', '<', before);
    if (keep.length > 0) q = q.where('id', 'not in', keep);
    const r = await q.executeTakeFirst();
    return Number(r.numDeletedRows);
  });
}
