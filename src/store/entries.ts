/** Entries: stored once per (feed, journal row), read newest first. */
import { createHash } from 'node:crypto';
import { sql, type Kysely, type Selectable } from 'kysely';
import { looksLikeToken, newToken } from '../secrets.js';
import { dialectOf, least, serializeOn } from './dialect.js';
import { bumpFeedVersion } from './feeds.js';
import type { Outcome } from './group-commit.js';
import { blobHash, deleteUnreferenced, heldBy, putBlob } from './parts.js';
import type { AppSchema, EntriesTable } from './schema.js';
import { indexEntryForSearch } from './search-pg.js';

export type Entry = Selectable<EntriesTable>;

/** An attachment or inline image as parsed from a message. */
export interface NewPart {
  content: Buffer | null;
  contentType: string;
  filename: string;
  contentId: string | null;
  inline: boolean;
  size: number;
  /** The charset a text part declared (bytes are as sent); null when none or not text. */
  charset?: string | null;
  /** Why the bytes are not kept or not offered; shown next to the part. */
  note?: string | null;
}

/** Everything an entry shows, as processed from its message. */
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

/** Characters of plain text kept as a body's summary. */
const SUMMARY_CHARS = 1000;

function bodyHash(html: string, text: string): string {
  return createHash('sha256').update(`${html}\0${text}`).digest('hex');
}

/** Counts what an entry costs its feed: its body, its kept parts and its raw message. */
function entryBytes(content: EntryContent, raw: Buffer): number {
  const parts = content.parts.reduce((n, p) => n + (p.content ? p.content.length : 0), 0);
  return Buffer.byteLength(content.html) + Buffer.byteLength(content.text) + parts + raw.length;
}

/** The hashes that key an entry's raw message, body and parts, and what the entry costs its feed. */
export interface ContentHashes {
  raw: string;
  body: string;
  parts: (string | null)[];
  bytes: number;
}

async function sha256(data: Uint8Array | string): Promise<string> {
  // WebCrypto digests in libuv's thread pool: megabytes of mail never block the event loop here.
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.from(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)).toString('hex');
}

/** Hashes what insertEntry stores, once per message however many feeds receive it. */
export async function hashContent(raw: Buffer, content: EntryContent): Promise<ContentHashes> {
  return {
    raw: await sha256(raw),
    body: await sha256(`${content.html}\0${content.text}`),
    parts: await Promise.all(content.parts.map((p) => (p.content ? sha256(p.content) : null))),
    bytes: entryBytes(content, raw),
  };
}

/**
 * Stores a body once: every feed that received the same message (and so the same
 * redacted content) points at one row.
 */
async function putBody(trx: Kysely<AppSchema>, now: number, html: string, text: string, hash = bodyHash(html, text)): Promise<string> {
  // Asking first spares binding megabytes again for every further feed of the same message.
  if (await trx.selectFrom('bodies').select('hash').where('hash', '=', hash).executeTakeFirst()) return hash;
  await trx.insertInto('bodies')
    .values({ hash, html, text, summary: text.slice(0, SUMMARY_CHARS), bytes: Buffer.byteLength(html) + Buffer.byteLength(text), created_at: now })
    .onConflict((oc) => oc.column('hash').doNothing())
    .execute();
  return hash;
}

/** One entry to store: what insertEntry takes, as one value (see insertEntries). */
export interface NewEntry {
  feedId: number;
  journalUid: string;
  receivedAt: number;
  raw: Buffer;
  content: EntryContent;
  hashes?: ContentHashes;
}

/** What storing one entry came to: the entry (undefined when it already existed), or why it failed. */
export type StoredEntry = Outcome<{ id: number; note: string | null } | undefined>;

/**
 * Stores an entry with its parts and bumps the feed's version, in one
 * transaction. Returns undefined when the entry for this journal row already
 * exists, which makes re-running an ingest job harmless.
 */
export async function insertEntry(
  db: Kysely<AppSchema>,
  now: number,
  feedId: number,
  journalUid: string,
  receivedAt: number,
  raw: Buffer,
  content: EntryContent,
  hashes?: ContentHashes,
): Promise<{ id: number; note: string | null } | undefined> {
  return db.transaction().execute((trx) => storeEntry(trx, now, { feedId, journalUid, receivedAt, raw, content, hashes }));
}

/**
 * Stores several entries in one transaction (one commit, so one fsync, for all of them),
 * each as insertEntry would, inside a savepoint of its own: an entry that fails is rolled
 * back alone and reported as `{ error }` in its place (`{ value }` otherwise), and the others are committed. Rejects
 * when the transaction itself fails, or when an entry's failure ended it (a full disk):
 * nothing of the group is then stored.
 */
export async function insertEntries(db: Kysely<AppSchema>, now: number, items: NewEntry[]): Promise<StoredEntry[]> {
  const trx = await db.startTransaction().execute();
  const out: StoredEntry[] = [];
  try {
    for (const item of items) {
      const inside = await trx.savepoint('entry').execute();
      try {
        const value = await storeEntry(inside, now, item);
        await inside.releaseSavepoint('entry').execute();
        out.push({ value });
      } catch (error) {
        try {
          await inside.rollbackToSavepoint('entry').execute();
          await inside.releaseSavepoint('entry').execute();
        } catch {
          // SQLite ended the whole transaction (a full disk or an I/O error does that): the
          // group fails, with the entry's own error, which says why.
          throw error;
        }
        out.push({ error });
      }
    }
    await trx.commit().execute();
  } catch (err) {
    await trx.rollback().execute().catch(() => undefined);
    throw err;
  }
  return out;
}

/** Rows per multi-row INSERT of importEntries: well under SQLite's limit of bound values per statement. */
const IMPORT_ROWS = 200;

/**
 * Stores entries known to be new (a benchmark's seed, an import) in one transaction, with a
 * few multi-row statements per IMPORT_ROWS entries instead of insertEntry's statements per
 * entry: none of insertEntry's checks for an entry already stored, so the caller must not
 * pass one twice. Returns the new entries' ids, in order.
 */
export async function importEntries(db: Kysely<AppSchema>, now: number, items: NewEntry[]): Promise<number[]> {
  return db.transaction().execute(async (trx) => {
    const ids: number[] = [];
    for (let at = 0; at < items.length; at += IMPORT_ROWS) {
      const chunk = items.slice(at, at + IMPORT_ROWS).map((item) => ({
        item, rawHash: item.hashes?.raw ?? blobHash(item.raw), bodyHash: item.hashes?.body ?? bodyHash(item.content.html, item.content.text),
      }));
      const blobs = new Map(chunk.map((c) => [c.rawHash, { hash: c.rawHash, size: c.item.raw.length, data: c.item.raw, created_at: now }]));
      await trx.insertInto('blobs').values([...blobs.values()]).onConflict((oc) => oc.column('hash').doNothing()).execute();
      const bodies = new Map(chunk.map(({ item: { content }, bodyHash: hash }) => [hash, {
        hash, html: content.html, text: content.text, summary: content.text.slice(0, SUMMARY_CHARS),
        bytes: Buffer.byteLength(content.html) + Buffer.byteLength(content.text), created_at: now,
      }]));
      await trx.insertInto('bodies').values([...bodies.values()]).onConflict((oc) => oc.column('hash').doNothing()).execute();
      const rows = await trx.insertInto('entries').values(chunk.map(({ item, rawHash, bodyHash: hash }) => ({
        feed_id: item.feedId, journal_uid: item.journalUid, share_token: newToken(), from_name: item.content.fromName,
        from_address: item.content.fromAddress, subject: item.content.subject, sent_at: item.content.sentAt, received_at: item.receivedAt,
        html: '', text: '', body_hash: hash, bytes: item.hashes?.bytes ?? entryBytes(item.content, item.raw),
        confirm_url: item.content.confirmUrl, note: item.content.note, raw_hash: rawHash, processed_at: now,
      }))).returning('id').execute();
      for (const [i, row] of rows.entries()) {
        const { item } = chunk[i]!;
        if (item.content.parts.length > 0) await insertParts(trx, now, row.id, item.content.parts, item.hashes?.parts);
        await indexEntryForSearch(trx, row.id, item.feedId, item.content);
        ids.push(row.id);
      }
    }
    for (const feedId of new Set(items.map((i) => i.feedId))) await bumpFeedVersion(trx, now, feedId);
    return ids;
  });
}

async function storeEntry(trx: Kysely<AppSchema>, now: number, item: NewEntry): Promise<{ id: number; note: string | null } | undefined> {
  const { feedId, journalUid, receivedAt, raw, content, hashes } = item;
  const rawHash = hashes?.raw ?? blobHash(raw);
  // PostgreSQL: two jobs storing the same bytes (a sender's retry) must not both pass the checks below.
  await serializeOn(trx, `entries of feed ${feedId}`);
  const existing = await trx.selectFrom('entries').select('id')
    .where('feed_id', '=', feedId).where('journal_uid', '=', journalUid).executeTakeFirst();
  if (existing) return undefined;
  // A byte-identical message already in this feed is a sender's retry after a lost "250"
  // (the connection dropped after our commit): SMTP delivers at least once, feeds show it once.
  const resent = await trx.selectFrom('entries').select('id')
    .where('feed_id', '=', feedId).where('raw_hash', '=', rawHash).executeTakeFirst();
  if (resent) return undefined;
  const feed = await trx.selectFrom('feeds').select('id').where('id', '=', feedId).executeTakeFirst();
  if (!feed) return undefined;
  await putBlob(trx, now, raw, rawHash);
  const bodyHash = await putBody(trx, now, content.html, content.text, hashes?.body);
  const row = await trx.insertInto('entries').values({
    feed_id: feedId,
    journal_uid: journalUid,
    share_token: newToken(),
    from_name: content.fromName,
    from_address: content.fromAddress,
    subject: content.subject,
    sent_at: content.sentAt,
    received_at: receivedAt,
    html: '',
    text: '',
    body_hash: bodyHash,
    bytes: hashes?.bytes ?? entryBytes(content, raw),
    confirm_url: content.confirmUrl,
    note: content.note,
    raw_hash: rawHash,
    processed_at: now,
  }).returning('id').executeTakeFirstOrThrow();
  await insertParts(trx, now, row.id, content.parts, hashes?.parts);
  await indexEntryForSearch(trx, row.id, feedId, content);
  await bumpFeedVersion(trx, now, feedId);
  return { id: row.id, note: content.note };
}

async function insertParts(trx: Kysely<AppSchema>, now: number, entryId: number, parts: NewPart[], hashes?: (string | null)[]): Promise<void> {
  let idx = 0;
  for (const part of parts) {
    const blobHash = part.content ? await putBlob(trx, now, part.content, hashes?.[idx] ?? undefined) : null;
    await trx.insertInto('entry_parts').values({
      entry_id: entryId,
      idx: idx++,
      blob_hash: blobHash,
      content_type: part.contentType,
      filename: part.filename,
      content_id: part.contentId,
      inline: part.inline ? 1 : 0,
      size: part.size,
      note: part.note ?? null,
    }).execute();
  }
}

/** Replaces an entry's processed content (after the sanitizer improved), keeping its share link. */
export async function replaceEntryContent(db: Kysely<AppSchema>, now: number, entryId: number, content: EntryContent): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const entry = await trx.selectFrom('entries').select(['id', 'feed_id', 'body_hash']).where('id', '=', entryId).executeTakeFirst();
    if (!entry) return;
    const bodyHash = await putBody(trx, now, content.html, content.text);
    const oldParts = await trx.selectFrom('entry_parts').select('blob_hash').where('entry_id', '=', entryId).execute();
    await trx.updateTable('entries').set({
      from_name: content.fromName,
      from_address: content.fromAddress,
      subject: content.subject,
      sent_at: content.sentAt,
      html: '',
      text: '',
      body_hash: bodyHash,
      confirm_url: content.confirmUrl,
      note: content.note,
      processed_at: now,
    }).where('id', '=', entryId).execute();
    await trx.deleteFrom('entry_parts').where('entry_id', '=', entryId).execute();
    await insertParts(trx, now, entryId, content.parts);
    await indexEntryForSearch(trx, entryId, entry.feed_id, content);
    await deleteUnreferenced(trx, { bodies: [entry.body_hash], blobs: oldParts.map((p) => p.blob_hash) });
    await bumpFeedVersion(trx, now, entry.feed_id);
  });
}

/** An entry's own columns; its html and text come from its shared body (see entryQuery). */
const ENTRY_COLUMNS = [
  'entries.id', 'entries.feed_id', 'entries.journal_uid', 'entries.share_token', 'entries.from_name',
  'entries.from_address', 'entries.subject', 'entries.sent_at', 'entries.received_at', 'entries.confirm_url',
  'entries.note', 'entries.raw_hash', 'entries.processed_at', 'entries.body_hash', 'entries.bytes',
] as const;

/** Entries joined to their bodies (shared or, for entries stored before bodies were shared, inline). */
function withBodies(db: Kysely<AppSchema>) {
  return db.selectFrom('entries').leftJoin('bodies', 'bodies.hash', 'entries.body_hash');
}

/** Entry rows with their whole body. */
function entryQuery(db: Kysely<AppSchema>) {
  return withBodies(db).select([
    ...ENTRY_COLUMNS,
    sql<string>`coalesce(bodies.html, entries.html)`.as('html'),
    sql<string>`coalesce(bodies.text, entries.text)`.as('text'),
  ]);
}

export async function entriesOfFeed(db: Kysely<AppSchema>, feedId: number, limit: number): Promise<Entry[]> {
  return entryQuery(db).where('entries.feed_id', '=', feedId).orderBy('entries.id', 'desc').limit(limit).execute();
}

/** What a list of entries shows: everything but the body, which can be megabytes. */
export type EntrySummary = Omit<Entry, 'html' | 'text' | 'journal_uid' | 'raw_hash' | 'body_hash'>;

const SUMMARY_COLUMNS = [
  'id', 'feed_id', 'share_token', 'from_name', 'from_address', 'subject', 'sent_at', 'received_at',
  'confirm_url', 'note', 'processed_at', 'bytes',
] as const;

/** One entry of a feed, by its id; undefined when the feed has no such entry. */
export async function entrySummaryOfFeed(db: Kysely<AppSchema>, feedId: number, entryId: number): Promise<EntrySummary | undefined> {
  return db.selectFrom('entries').select(SUMMARY_COLUMNS).where('feed_id', '=', feedId).where('id', '=', entryId).executeTakeFirst();
}

/** The newest `limit` entries of a feed; with `beforeId`, the newest of those older than that entry (a next page). */
export async function entrySummariesOfFeed(db: Kysely<AppSchema>, feedId: number, limit: number, beforeId?: number): Promise<EntrySummary[]> {
  let q = db.selectFrom('entries').select(SUMMARY_COLUMNS).where('feed_id', '=', feedId);
  if (beforeId !== undefined) q = q.where('id', '<', beforeId);
  return q.orderBy('id', 'desc').limit(limit).execute();
}

/**
 * Entries for a feed document, with the body only when it has at most `maxHtmlBytes`
 * bytes (else ''): a long newsletter is shown as its summary and a link, so a feed
 * document costs the same to build whatever was mailed to it. `html_length` is the
 * body's size in bytes (octet_length reads it from the record header, not the value).
 */
export type DocumentEntry = Omit<Entry, 'text'> & { html_length: number; summary: string };

function documentEntryQuery(db: Kysely<AppSchema>, feedId: number, maxHtmlBytes: number) {
  return withBodies(db).select([
    ...ENTRY_COLUMNS,
    sql<string>`CASE WHEN octet_length(coalesce(bodies.html, entries.html)) <= ${maxHtmlBytes} THEN coalesce(bodies.html, entries.html) ELSE '' END`.as('html'),
    sql<number>`octet_length(coalesce(bodies.html, entries.html))`.as('html_length'),
    sql<string>`coalesce(bodies.summary, substr(entries.text, 1, ${SUMMARY_CHARS}))`.as('summary'),
  ]).where('entries.feed_id', '=', feedId);
}

export async function documentEntriesOfFeed(db: Kysely<AppSchema>, feedId: number, limit: number, maxHtmlBytes: number): Promise<DocumentEntry[]> {
  return documentEntryQuery(db, feedId, maxHtmlBytes).orderBy('entries.id', 'desc').limit(limit).execute();
}

/** A sender's address as entries are grouped by it: compared without ASCII case (index entries_by_feed_sender). */
const SENDER = sql<string>`entries.from_address COLLATE NOCASE`;
/** PostgreSQL has no NOCASE: its index is on lower(from_address) (which folds non-ASCII letters too). */
const SENDER_PG = sql<string>`lower(entries.from_address)`;

/** As documentEntriesOfFeed, for the entries of one sender address (any ASCII case) only. */
export async function documentEntriesOfSender(db: Kysely<AppSchema>, feedId: number, fromAddress: string, limit: number, maxHtmlBytes: number): Promise<DocumentEntry[]> {
  const q = documentEntryQuery(db, feedId, maxHtmlBytes);
  return (dialectOf(db) === 'postgres' ? q.where(SENDER_PG, '=', sql<string>`lower(${fromAddress})`) : q.where(SENDER, '=', fromAddress))
    .orderBy('entries.id', 'desc').limit(limit).execute();
}

/** A sender seen in a feed: the address (as its newest entry wrote it), that entry's display name, how many entries. */
export interface FeedSender {
  fromAddress: string;
  fromName: string;
  entries: number;
  /** When its newest entry arrived. */
  lastReceivedAt: number;
}

/** The senders of a feed's entries, the most recent first. */
export async function sendersOfFeed(db: Kysely<AppSchema>, feedId: number, limit: number): Promise<FeedSender[]> {
  if (dialectOf(db) === 'postgres') return sendersOfFeedPg(db, feedId, limit);
  // With max(), SQLite takes the bare columns from the row holding the maximum: the newest entry's.
  const rows = await db.selectFrom('entries')
    .select([
      'entries.from_address', 'entries.from_name', 'entries.received_at',
      sql<number>`max(entries.id)`.as('last_id'),
      sql<number>`count(*)`.as('n'),
    ])
    .where('entries.feed_id', '=', feedId)
    .groupBy(SENDER).orderBy('last_id', 'desc').limit(limit).execute();
  return rows.map((r) => ({ fromAddress: r.from_address, fromName: r.from_name, entries: Number(r.n), lastReceivedAt: r.received_at }));
}

/** PostgreSQL has no bare columns beside max(): each sender's newest entry is joined to its group. */
async function sendersOfFeedPg(db: Kysely<AppSchema>, feedId: number, limit: number): Promise<FeedSender[]> {
  const { rows } = await sql<{ from_address: string; from_name: string; received_at: number; n: number }>`
    SELECT e.from_address, e.from_name, e.received_at, g.n FROM (
      SELECT max(id) AS last_id, count(*) AS n FROM entries WHERE feed_id = ${feedId} GROUP BY ${SENDER_PG}
    ) g JOIN entries e ON e.id = g.last_id
    ORDER BY g.last_id DESC LIMIT ${limit}`.execute(db);
  return rows.map((r) => ({ fromAddress: r.from_address, fromName: r.from_name, entries: Number(r.n), lastReceivedAt: r.received_at }));
}

/** Every distinct sender address of a feed (newest spelling of each), read from the index alone. */
export async function senderAddressesOfFeed(db: Kysely<AppSchema>, feedId: number): Promise<string[]> {
  if (dialectOf(db) === 'postgres') {
    const { rows } = await sql<{ from_address: string }>`
      SELECT DISTINCT ON (${SENDER_PG}) entries.from_address FROM entries WHERE feed_id = ${feedId}
      ORDER BY ${SENDER_PG}, entries.id DESC`.execute(db);
    return rows.map((r) => r.from_address);
  }
  const rows = await db.selectFrom('entries')
    .select(['entries.from_address', sql<number>`max(entries.id)`.as('last_id')])
    .where('entries.feed_id', '=', feedId).groupBy(SENDER).execute();
  return rows.map((r) => r.from_address);
}

/** The entry a share link names, in any case; anything not secret-shaped finds nothing. */
export async function entryByShareToken(db: Kysely<AppSchema>, shareToken: string): Promise<Entry | undefined> {
  const token = shareToken.toLowerCase();
  if (!looksLikeToken(token)) return undefined;
  return entryQuery(db).where('entries.share_token', '=', token).executeTakeFirst();
}

export async function countEntries(db: Kysely<AppSchema>, feedId: number): Promise<number> {
  const row = await db.selectFrom('entries').select((eb) => eb.fn.countAll<number>().as('n')).where('feed_id', '=', feedId).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Bytes a feed's entries take (bodies, parts and raw mail, each counted in full), for its quota. */
export async function feedBytes(db: Kysely<AppSchema>, feedId: number): Promise<number> {
  const row = await db.selectFrom('entries').select((eb) => eb.fn.sum<number>('bytes').as('n')).where('feed_id', '=', feedId).executeTakeFirst();
  return Number(row?.n ?? 0);
}

export interface RowCounts {
  feeds: number;
  entries: number;
  bodies: number;
  blobs: number;
}

export async function rowCounts(db: Kysely<AppSchema>): Promise<RowCounts> {
  const count = async (table: 'feeds' | 'entries' | 'bodies' | 'blobs') =>
    Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  return { feeds: await count('feeds'), entries: await count('entries'), bodies: await count('bodies'), blobs: await count('blobs') };
}

export async function countAllEntries(db: Kysely<AppSchema>): Promise<number> {
  const row = await db.selectFrom('entries').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Entries of every feed in id order, a page at a time, for `feedmail reprocess`. */
export async function entriesAfter(db: Kysely<AppSchema>, afterId: number, limit: number): Promise<Entry[]> {
  return entryQuery(db).where('entries.id', '>', afterId).orderBy('entries.id').limit(limit).execute();
}

/**
 * Deletes one entry of a feed: its parts, the body and blobs no other entry uses,
 * and bumps the feed's version, in one transaction, so the feed documents change at
 * once. Returns the entry's journal uid, or undefined when the feed has no such entry.
 */
export async function deleteEntry(db: Kysely<AppSchema>, now: number, feedId: number, entryId: number): Promise<{ journalUid: string } | undefined> {
  return db.transaction().execute(async (trx) => {
    const entry = await trx.selectFrom('entries').select(['id', 'journal_uid'])
      .where('feed_id', '=', feedId).where('id', '=', entryId).executeTakeFirst();
    if (!entry) return undefined;
    const held = await heldBy(trx, (q) => q.where('entries.id', '=', entry.id));
    // Its parts go with it (ON DELETE CASCADE).
    await trx.deleteFrom('entries').where('id', '=', entry.id).execute();
    await deleteUnreferenced(trx, held);
    await bumpFeedVersion(trx, now, feedId);
    return { journalUid: entry.journal_uid };
  });
}

/** The entries a feed keeps: its own number when set, never more than the instance's `keep`. */
function keptSql(db: Kysely<AppSchema>, keep: number) {
  return least(db, sql<number>`coalesce(max(feeds.keep_entries), ${keep})`, keep);
}

/** Deletes a feed's entries older than its newest `keep`, in `trx`; returns how many went. */
async function trimOne(trx: Kysely<AppSchema>, now: number, feedId: number, keep: number): Promise<number> {
  const cutoff = await trx.selectFrom('entries').select('id').where('feed_id', '=', feedId)
    .orderBy('id', 'desc').offset(keep).limit(1).executeTakeFirst();
  if (!cutoff) return 0;
  const held = await heldBy(trx, (q) => q.where('entries.feed_id', '=', feedId).where('entries.id', '<=', cutoff.id));
  const r = await trx.deleteFrom('entries').where('feed_id', '=', feedId).where('id', '<=', cutoff.id).executeTakeFirst();
  await deleteUnreferenced(trx, held);
  await bumpFeedVersion(trx, now, feedId);
  return Number(r.numDeletedRows);
}

/**
 * Deletes all but the newest entries of each feed: as many as the feed keeps (its
 * `keep_entries`), at most `keep` (FEEDMAIL_FEED_KEEP_ENTRIES). Returns how many went.
 */
export async function trimFeeds(db: Kysely<AppSchema>, now: number, keep: number): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const over = await trx.selectFrom('entries').innerJoin('feeds', 'feeds.id', 'entries.feed_id')
      .select(['entries.feed_id', keptSql(trx, keep).as('keep')])
      .groupBy('entries.feed_id').having((eb) => eb(eb.fn.countAll(), '>', keptSql(trx, keep))).execute();
    let deleted = 0;
    for (const { feed_id, keep: kept } of over) deleted += await trimOne(trx, now, feed_id, Number(kept));
    return deleted;
  });
}

/** Trims one feed to its newest `keep` entries at once (after its owner lowered the number). */
export async function trimFeed(db: Kysely<AppSchema>, now: number, feedId: number, keep: number): Promise<number> {
  return db.transaction().execute((trx) => trimOne(trx, now, feedId, keep));
}

/** The feed's entries made from these journal rows (by their uid), for its recent deliveries: which accepted messages are in the feed. */
export async function entriesOfJournalUids(db: Kysely<AppSchema>, feedId: number, journalUids: string[]): Promise<{ journal_uid: string; share_token: string }[]> {
  if (journalUids.length === 0) return [];
  return db.selectFrom('entries').select(['journal_uid', 'share_token']).where('feed_id', '=', feedId).where('journal_uid', 'in', journalUids).execute();
}
