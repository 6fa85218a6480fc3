/**
 * Webhook deliveries already accepted, by signature, so a captured request
 * cannot be posted again while its timestamp is still fresh. They live in
 * queue.db, which every process shares, so all of them refuse the repeat.
 */
import type { Kysely, Transaction } from 'kysely';
import type { QueueSchema } from './schema.js';

/** True when a delivery with this signature was accepted and its window is not over. */
export async function deliveryAccepted(db: Kysely<QueueSchema>, now: number, signature: string): Promise<boolean> {
  const row = await db.selectFrom('webhook_deliveries').select('signature')
    .where('signature', '=', signature).where('expires_at', '>', now).executeTakeFirst();
  return row !== undefined;
}

/**
 * Remembers an accepted delivery until `expiresAt` (ms), dropping the ones whose
 * window is over on the way. Returns false when the signature was already there:
 * two identical requests raced past the check, and both messages were journaled.
 */
export async function recordDelivery(db: Kysely<QueueSchema>, now: number, signature: string, expiresAt: number): Promise<boolean> {
  return db.transaction().execute((trx) => recordDeliveryIn(trx, now, signature, expiresAt));
}

/** recordDelivery inside the caller's transaction (the journal's, see journal.ts). */
export async function recordDeliveryIn(trx: Transaction<QueueSchema>, now: number, signature: string, expiresAt: number): Promise<boolean> {
  await trx.deleteFrom('webhook_deliveries').where('expires_at', '<=', now).execute();
  const r = await trx.insertInto('webhook_deliveries').values({ signature, expires_at: expiresAt })
    .onConflict((oc) => oc.column('signature').doNothing()).executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
}
