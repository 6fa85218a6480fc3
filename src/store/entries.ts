/** Entries: stored once per (feed, journal row), read newest first. */
import type { Kysely } from 'kysely';
import { newToken } from '../secrets.js';
import { blobHash, putBlob } from './parts.js';
import type { AppSchema, EntriesTable } from './schema.js';

export type Entry = Omit<EntriesTable, 'id'> & { id: number };

/** An attachment or inline image as parsed from a message. */
export interface NewPart {
  content: Buffer | null;
  contentType: string;
  filename: string;
  contentId: string | null;
  inline: boolean;
  size: number;
}

/** Everything an entry shows, as rendered from its message. */
export interface EntryContent {
  fromName: string;
  fromAddress: string;
  subject: string;
  sentAt: number | null;
  html: string;
  text: string;
  confirmUrl: string | null;
  note: string | null;
  parts: NewPart[];
}

/**
 * Stores an entry with its parts and bumps the feed's version, in one
 * transaction. Returns undefined when the entry for this journal row already
 * exists, which makes re-running an ingest job harmless.
 */
export async function insertEntry(
  db: Kysely<AppSchema>,
  feedId: number,
  journalUid: string,
  receivedAt: number,
  raw: Buffer,
  content: EntryContent,
): Promise<Entry | undefined> {
  return db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('entries').select('id')
      .where('feed_id', '=', feedId).where('journal_uid', '=', journalUid).executeTakeFirst();
    if (existing) return undefined;
    // A byte-identical message already in this feed is a sender's retry after a lost "250"
    // (the connection dropped after our commit): SMTP delivers at least once, feeds show it once.
    const rawHash = blobHash(raw);
    const resent = await trx.selectFrom('entries').select('id')
      .where('feed_id', '=', feedId).where('raw_hash', '=', rawHash).executeTakeFirst();
    if (resent) return undefined;
    const feed = await trx.selectFrom('feeds').select('id').where('id', '=', feedId).executeTakeFirst();
    if (!feed) return undefined;
    await putBlob(trx, raw, rawHash);
    const now = Date.now();
    const entry = await trx.insertInto('entries').values({
      feed_id: feedId,
      journal_uid: journalUid,
      share_token: newToken(),
      from_name: content.fromName,
      from_address: content.fromAddress,
      subject: content.subject,
      sent_at: content.sentAt,
      received_at: receivedAt,
      html: content.html,
      text: content.text,
      confirm_url: content.confirmUrl,
      note: content.note,
      raw_hash: rawHash,
      processed_at: now,
    }).returningAll().executeTakeFirstOrThrow();
    await insertParts(trx, entry.id, content.parts);
    await trx.updateTable('feeds')
      .set((eb) => ({ version: eb('version', '+', 1), updated_at: now }))
      .where('id', '=', feedId).execute();
    return entry;
  });
}

async function insertParts(trx: Kysely<AppSchema>, entryId: number, parts: NewPart[]): Promise<void> {
  let idx = 0;
  for (const part of parts) {
    const blobHash = part.content ? await putBlob(trx, part.content) : null;
    await trx.insertInto('entry_parts').values({
      entry_id: entryId,
      idx: idx++,
      blob_hash: blobHash,
      content_type: part.contentType,
      filename: part.filename,
      content_id: part.contentId,
      inline: part.inline ? 1 : 0,
      size: part.size,
    }).execute();
  }
}

/** Replaces an entry's rendered content (after the sanitizer improved), keeping its share link. */
export async function replaceEntryContent(db: Kysely<AppSchema>, entryId: number, content: EntryContent): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const entry = await trx.selectFrom('entries').select(['id', 'feed_id']).where('id', '=', entryId).executeTakeFirst();
    if (!entry) return;
    const now = Date.now();
    await trx.updateTable('entries').set({
      from_name: content.fromName,
      from_address: content.fromAddress,
      subject: content.subject,
      sent_at: content.sentAt,
      html: content.html,
      text: content.text,
      confirm_url: content.confirmUrl,
      note: content.note,
      processed_at: now,
    }).where('id', '=', entryId).execute();
    await trx.deleteFrom('entry_parts').where('entry_id', '=', entryId).execute();
    await insertParts(trx, entryId, content.parts);
    await trx.updateTable('feeds')
      .set((eb) => ({ version: eb('version', '+', 1), updated_at: now }))
      .where('id', '=', entry.feed_id).execute();
  });
}

export async function entriesOfFeed(db: Kysely<AppSchema>, feedId: number, limit: number): Promise<Entry[]> {
  return db.selectFrom('entries').selectAll().where('feed_id', '=', feedId).orderBy('id', 'desc').limit(limit).execute();
}

export async function entryByShareToken(db: Kysely<AppSchema>, shareToken: string): Promise<Entry | undefined> {
  return db.selectFrom('entries').selectAll().where('share_token', '=', shareToken).executeTakeFirst();
}

export async function countEntries(db: Kysely<AppSchema>, feedId: number): Promise<number> {
  const row = await db.selectFrom('entries').select((eb) => eb.fn.countAll<number>().as('n')).where('feed_id', '=', feedId).executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function countAllEntries(db: Kysely<AppSchema>): Promise<number> {
  const row = await db.selectFrom('entries').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Entries of every feed in id order, a page at a time, for `feedmail reprocess`. */
export async function entriesAfter(db: Kysely<AppSchema>, afterId: number, limit: number): Promise<Entry[]> {
  return db.selectFrom('entries').selectAll().where('id', '>', afterId).orderBy('id').limit(limit).execute();
}

/** Deletes all but the newest `keep` entries of each feed. Returns how many went. */
export async function trimFeeds(db: Kysely<AppSchema>, keep: number): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const over = await trx.selectFrom('entries').select(['feed_id', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('feed_id').having((eb) => eb.fn.countAll(), '>', keep).execute();
    let deleted = 0;
    for (const { feed_id } of over) {
      const cutoff = await trx.selectFrom('entries').select('id').where('feed_id', '=', feed_id)
        .orderBy('id', 'desc').offset(keep).limit(1).executeTakeFirst();
      if (!cutoff) continue;
      const r = await trx.deleteFrom('entries').where('feed_id', '=', feed_id).where('id', '<=', cutoff.id).executeTakeFirst();
      deleted += Number(r.numDeletedRows);
      await trx.updateTable('feeds').set((eb) => ({ version: eb('version', '+', 1), updated_at: Date.now() }))
        .where('id', '=', feed_id).execute();
    }
    return deleted;
  });
}
