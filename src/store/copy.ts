/**
 * Copying one store's rows into the same store of another database (`feedmail copy-db`,
 * SQLite ⇄ PostgreSQL): which tables hold user data, read in batches ordered by primary
 * key, written with insert-or-ignore by primary key (so a rerun after an interruption
 * adds only what is missing), identity counters set past the copied ids on PostgreSQL,
 * and an order-independent checksum of a table's content for the verification.
 *
 * Text keys are ordered bytewise on both dialects (PostgreSQL: COLLATE "C"), so "after
 * the last copied key" means the same on both sides.
 */
import { createHash } from 'node:crypto';
import { PostgresAdapter, sql, type Kysely, type RawBuilder } from 'kysely';
import type { AppSchema } from './schema.js';
import { indexEntryForSearch } from './search-pg.js';

export interface CopyKey {
  column: string;
  /** Compared bytewise (COLLATE "C" on PostgreSQL). */
  text?: boolean;
}

export interface CopyTable {
  table: string;
  key: CopyKey[];
  columns: string[];
  /** Rows per batch: fewer for tables of large byte values. */
  batch: number;
  /** The source's row replaces one the target made for itself (server keys a server made on an empty target). */
  sourceWins?: boolean;
  /** The integer id is an identity column: PostgreSQL's counter is moved past the copied ids. */
  identity?: boolean;
}

export type CopyRow = Record<string, unknown>;

const ID: CopyKey[] = [{ column: 'id' }];
const HASH: CopyKey[] = [{ column: 'hash', text: true }];

/**
 * What app.db (or the feedmail_app schema) holds that a copy must keep, in an order that
 * satisfies the foreign keys. feed_creations (a one-hour rate-limit log without a key) is
 * not copied.
 */
export const APP_COPY_TABLES: CopyTable[] = [
  { table: 'server_keys', key: [{ column: 'name', text: true }], columns: ['name', 'value', 'created_at'], batch: 500, sourceWins: true },
  {
    table: 'feeds', key: ID, identity: true, batch: 500,
    columns: ['id', 'title', 'inbox_token', 'feed_token', 'manage_hash', 'created_at', 'updated_at', 'version', 'last_fetched_at', 'document_entries', 'keep_entries'],
  },
  { table: 'feed_icons', key: [{ column: 'feed_id' }], columns: ['feed_id', 'content_type', 'data', 'hash', 'updated_at'], batch: 50 },
  { table: 'sender_rules', key: ID, identity: true, columns: ['id', 'feed_id', 'action', 'pattern', 'created_at'], batch: 500 },
  {
    table: 'websub_subscriptions', key: ID, identity: true, batch: 500,
    columns: ['id', 'feed_id', 'feed_token', 'topic', 'base', 'format', 'sender_key', 'callback', 'secret', 'lease_expires_at', 'created_at', 'updated_at'],
  },
  { table: 'bodies', key: HASH, columns: ['hash', 'html', 'text', 'summary', 'bytes', 'created_at'], batch: 100 },
  { table: 'blobs', key: HASH, columns: ['hash', 'size', 'data', 'created_at'], batch: 20 },
  {
    table: 'entries', key: ID, identity: true, batch: 200,
    columns: ['id', 'feed_id', 'journal_uid', 'share_token', 'from_name', 'from_address', 'subject', 'sent_at', 'received_at', 'html', 'text',
      'confirm_url', 'note', 'raw_hash', 'processed_at', 'body_hash', 'bytes'],
  },
  {
    table: 'entry_parts', key: [{ column: 'entry_id' }, { column: 'idx' }], batch: 500,
    columns: ['entry_id', 'idx', 'blob_hash', 'content_type', 'filename', 'content_id', 'inline', 'size', 'note'],
  },
];

/**
 * What queue.db (feedmail_queue) holds that a copy must keep: the journal (raw mail), the
 * pending jobs, the recent deliveries and counts the limits use, and accepted webhook
 * signatures (replays stay refused). Recurring slots, live-page notifications and the
 * SQLite backup history belong to the old database and are not copied.
 */
export const QUEUE_COPY_TABLES: CopyTable[] = [
  { table: 'journal', key: ID, identity: true, columns: ['id', 'uid', 'received_at', 'source', 'mail_from', 'feed_ids', 'size', 'raw'], batch: 20 },
  { table: 'journal_chunks', key: [{ column: 'uid', text: true }, { column: 'seq' }], columns: ['uid', 'seq', 'data', 'created_at'], batch: 10 },
  {
    table: 'jobs', key: ID, identity: true, batch: 500,
    columns: ['id', 'task', 'payload', 'priority', 'state', 'run_at', 'attempts', 'reclaims', 'max_attempts', 'lease_owner', 'lease_expires_at',
      'last_error', 'idempotency_key', 'created_at', 'updated_at', 'fair_key'],
  },
  {
    table: 'deliveries', key: ID, identity: true, batch: 500,
    columns: ['id', 'feed_id', 'at', 'sender', 'subject', 'size', 'outcome', 'detail', 'journal_uid', 'job_id', 'count'],
  },
  { table: 'intake_counts', key: [{ column: 'feed_id' }, { column: 'hour' }], columns: ['feed_id', 'hour', 'messages'], batch: 1000 },
  { table: 'webhook_deliveries', key: [{ column: 'signature', text: true }], columns: ['signature', 'expires_at'], batch: 1000 },
];

// The tables are named by the lists above, not by the schema types: one untyped view of the database.
type AnyDb = Kysely<Record<string, CopyRow>>;

function isPostgres(db: Kysely<unknown>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

function keyRef(db: Kysely<unknown>, key: CopyKey): RawBuilder<unknown> {
  return key.text && isPostgres(db) ? sql`${sql.ref(key.column)} COLLATE "C"` : sql`${sql.ref(key.column)}`;
}

function orderBy(db: Kysely<unknown>, spec: CopyTable, direction: 'asc' | 'desc'): RawBuilder<unknown> {
  return sql.join(spec.key.map((k) => sql`${keyRef(db, k)} ${sql.raw(direction)}`));
}

/** The values of a row's primary key, in the order of spec.key. */
export function keyOf(spec: CopyTable, row: CopyRow): unknown[] {
  return spec.key.map((k) => row[k.column]);
}

export async function countRows<S>(db: Kysely<S>, spec: CopyTable): Promise<number> {
  const { rows } = await sql<{ n: number | string }>`SELECT count(*) AS n FROM ${sql.table(spec.table)}`.execute(db);
  return Number(rows[0]?.n ?? 0);
}

/** The greatest primary key present, or undefined for an empty table: where a rerun continues. */
export async function lastKey<S>(db: Kysely<S>, spec: CopyTable): Promise<unknown[] | undefined> {
  const d = db as unknown as Kysely<unknown>;
  const { rows } = await sql<CopyRow>`SELECT ${sql.join(spec.key.map((k) => sql.ref(k.column)))} FROM ${sql.table(spec.table)}
    ORDER BY ${orderBy(d, spec, 'desc')} LIMIT 1`.execute(db);
  return rows[0] ? keyOf(spec, rows[0]) : undefined;
}

/** Up to `limit` rows whose key comes after `after` (all from the start when undefined), in key order. */
export async function rowsAfter<S>(db: Kysely<S>, spec: CopyTable, after: unknown[] | undefined, limit: number): Promise<CopyRow[]> {
  const d = db as unknown as Kysely<unknown>;
  const columns = sql.join(spec.columns.map((c) => sql.ref(c)));
  const where = after === undefined
    ? sql`1 = 1`
    : sql`(${sql.join(spec.key.map((k) => keyRef(d, k)))}) > (${sql.join(after.map((v) => sql`${v}`))})`;
  const { rows } = await sql<CopyRow>`SELECT ${columns} FROM ${sql.table(spec.table)} WHERE ${where}
    ORDER BY ${orderBy(d, spec, 'asc')} LIMIT ${limit}`.execute(db);
  return rows;
}

/**
 * Writes rows read by rowsAfter; a row whose key is already there is left alone (or
 * replaced, for sourceWins tables). Entries on PostgreSQL get their row of the search
 * index in the same transaction (SQLite's triggers index them by themselves).
 */
export async function insertRows<S>(db: Kysely<S>, spec: CopyTable, rows: CopyRow[]): Promise<void> {
  if (rows.length === 0) return;
  const values = rows.map((r) => Object.fromEntries(spec.columns.map((c) => [c, r[c] ?? null])));
  const keys = spec.key.map((k) => k.column);
  const insert = (trx: AnyDb) => trx.insertInto(spec.table).values(values)
    .onConflict((oc) => {
      const target = oc.columns(keys);
      if (!spec.sourceWins) return target.doNothing();
      const others = spec.columns.filter((c) => !keys.includes(c));
      return target.doUpdateSet(Object.fromEntries(others.map((c) => [c, sql.ref(`excluded.${c}`)])));
    })
    .execute();
  if (spec.table !== 'entries' || !isPostgres(db as unknown as Kysely<unknown>)) {
    await insert(db as unknown as AnyDb);
    return;
  }
  await (db as unknown as Kysely<AppSchema>).transaction().execute(async (trx) => {
    await insert(trx as unknown as AnyDb);
    const hashes = [...new Set(rows.map((r) => r.body_hash).filter((h): h is string => typeof h === 'string'))];
    const bodies = new Map((hashes.length === 0 ? [] : await trx.selectFrom('bodies').select(['hash', 'html', 'text']).where('hash', 'in', hashes).execute())
      .map((b) => [b.hash, b]));
    for (const r of rows) {
      const body = typeof r.body_hash === 'string' ? bodies.get(r.body_hash) : undefined;
      await indexEntryForSearch(trx, Number(r.id), Number(r.feed_id), {
        subject: String(r.subject), fromName: String(r.from_name), fromAddress: String(r.from_address),
        html: body?.html ?? String(r.html), text: body?.text ?? String(r.text),
      });
    }
  });
}

/** PostgreSQL: moves the identity counter of every copied id column past the greatest copied id (new rows get new ids). */
export async function fixIdentities<S>(db: Kysely<S>, specs: CopyTable[]): Promise<void> {
  if (!isPostgres(db as unknown as Kysely<unknown>)) return;
  for (const spec of specs.filter((s) => s.identity)) {
    await sql`SELECT setval(pg_get_serial_sequence(${spec.table}, 'id'), coalesce(max(id), 0) + 1, false) FROM ${sql.table(spec.table)}`.execute(db);
  }
}

/**
 * One value as text the same way on both dialects: bytes as hex, integers whether the
 * driver gives numbers, bigints or strings, booleans as 0/1.
 */
function canonical(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return `x${Buffer.from(v).toString('hex')}`;
  if (typeof v === 'boolean') return v ? '1' : '0';
  return String(v);
}

/**
 * The rows and an order-independent checksum of a table's copied columns (the sum of each
 * row's sha256, modulo 2^256): equal on both sides exactly when both hold the same rows.
 */
export async function checksum<S>(db: Kysely<S>, spec: CopyTable): Promise<{ rows: number; checksum: string }> {
  const MOD = 1n << 256n;
  let sum = 0n;
  let count = 0;
  let after: unknown[] | undefined;
  for (;;) {
    const rows = await rowsAfter(db, spec, after, spec.batch);
    if (rows.length === 0) break;
    for (const row of rows) {
      const digest = createHash('sha256').update(JSON.stringify(spec.columns.map((c) => canonical(row[c])))).digest('hex');
      sum = (sum + BigInt(`0x${digest}`)) % MOD;
      count++;
    }
    after = keyOf(spec, rows.at(-1)!);
  }
  return { rows: count, checksum: sum.toString(16).padStart(64, '0') };
}
