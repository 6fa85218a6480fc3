/** Content-addressed blobs: identical attachments, images and raw messages are stored once. */
import { createHash } from 'node:crypto';
import { sql, type Kysely, type Selectable, type SelectQueryBuilder, type Transaction } from 'kysely';
import type { AppSchema, EntryPartsTable } from './schema.js';

export function blobHash(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Stores a blob unless it is already there; returns its hash (pass it when already known). */
export async function putBlob(trx: Transaction<AppSchema> | Kysely<AppSchema>, now: number, data: Buffer, hash = blobHash(data)): Promise<string> {
  // Asking first spares binding megabytes again when the blob is already there (a message to many feeds).
  if (await trx.selectFrom('blobs').select('hash').where('hash', '=', hash).executeTakeFirst()) return hash;
  await trx.insertInto('blobs')
    .values({ hash, size: data.length, data, created_at: now })
    .onConflict((oc) => oc.column('hash').doNothing())
    .execute();
  return hash;
}

export async function blobByHash(db: Kysely<AppSchema>, hash: string): Promise<Buffer | undefined> {
  const row = await db.selectFrom('blobs').select('data').where('hash', '=', hash).executeTakeFirst();
  return row?.data;
}

export type EntryPart = Selectable<EntryPartsTable>;

export async function partsOfEntry(db: Kysely<AppSchema>, entryId: number): Promise<EntryPart[]> {
  return db.selectFrom('entry_parts').selectAll().where('entry_id', '=', entryId).orderBy('idx').execute();
}

export async function partsOfEntries(db: Kysely<AppSchema>, entryIds: number[]): Promise<EntryPart[]> {
  if (entryIds.length === 0) return [];
  return db.selectFrom('entry_parts').selectAll().where('entry_id', 'in', entryIds).orderBy('entry_id').orderBy('idx').execute();
}

export async function partOfEntry(db: Kysely<AppSchema>, entryId: number, idx: number): Promise<EntryPart | undefined> {
  return db.selectFrom('entry_parts').selectAll().where('entry_id', '=', entryId).where('idx', '=', idx).executeTakeFirst();
}

/** The bodies and blobs that the entries a query selects hold, before those entries are deleted. */
export async function heldBy(
  trx: Kysely<AppSchema>,
  where: (q: SelectQueryBuilder<AppSchema, 'entries', object>) => SelectQueryBuilder<AppSchema, 'entries', object>,
): Promise<{ bodies: (string | null)[]; blobs: (string | null)[] }> {
  const entries = await where(trx.selectFrom('entries')).select(['entries.id', 'entries.body_hash', 'entries.raw_hash']).execute();
  const ids = entries.map((e) => e.id);
  const parts = ids.length
    ? await trx.selectFrom('entry_parts').select('blob_hash').where('entry_id', 'in', ids).where('blob_hash', 'is not', null).execute()
    : [];
  return {
    bodies: entries.map((e) => e.body_hash),
    blobs: [...entries.map((e) => e.raw_hash), ...parts.map((p) => p.blob_hash)],
  };
}

/** A delete of the bodies no entry uses. */
function deleteUnusedBodies(trx: Kysely<AppSchema>) {
  return trx.deleteFrom('bodies')
    .where(({ not, exists, selectFrom }) => not(exists(
      selectFrom('entries').select(sql.lit(1).as('one')).whereRef('entries.body_hash', '=', 'bodies.hash'))));
}

/** A delete of the blobs no entry part and no entry's raw message uses. */
function deleteUnusedBlobs(trx: Kysely<AppSchema>) {
  return trx.deleteFrom('blobs')
    .where(({ not, exists, selectFrom }) => not(exists(
      selectFrom('entry_parts').select(sql.lit(1).as('one')).whereRef('entry_parts.blob_hash', '=', 'blobs.hash'))))
    .where(({ not, exists, selectFrom }) => not(exists(
      selectFrom('entries').select(sql.lit(1).as('one')).whereRef('entries.raw_hash', '=', 'blobs.hash'))));
}

/**
 * Deletes the given bodies and blobs that nothing refers to any more. Run in the
 * transaction that deleted entries, so deleting a feed (or trimming it) gives its
 * space back at once rather than at the next hourly sweep.
 */
export async function deleteUnreferenced(trx: Kysely<AppSchema>, held: { bodies: (string | null)[]; blobs: (string | null)[] }): Promise<void> {
  const bodies = [...new Set(held.bodies.filter((h): h is string => h !== null))];
  const blobs = [...new Set(held.blobs.filter((h): h is string => h !== null))];
  for (let i = 0; i < bodies.length; i += 500) await deleteUnusedBodies(trx).where('hash', 'in', bodies.slice(i, i + 500)).execute();
  for (let i = 0; i < blobs.length; i += 500) await deleteUnusedBlobs(trx).where('hash', 'in', blobs.slice(i, i + 500)).execute();
}

/**
 * Deletes bodies and blobs that nothing refers to. Returns how many blobs. Safe next
 * to ingest in other processes: a blob and the rows that use it are committed in one
 * transaction, so no committed blob is ever unreferenced on its way to being used.
 */
export async function deleteOrphanBlobs(db: Kysely<AppSchema>): Promise<number> {
  await db.transaction().execute((trx) => deleteUnusedBodies(trx).execute());
  const r = await db.transaction().execute((trx) => deleteUnusedBlobs(trx).executeTakeFirst());
  return Number(r.numDeletedRows);
}
