/**
 * The two dialects a store runs on, the handle every store wraps, and the few SQL
 * differences store functions ask about. A store function keeps Kysely's portable
 * query-builder form wherever it works on both; where it cannot, it asks
 * `dialectOf(db)` (which also answers for a transaction) and keeps the branch local.
 */
import { PostgresAdapter, sql, type Kysely, type QueryExecutorProvider, type RawBuilder } from 'kysely';

export type Dialect = 'sqlite' | 'postgres';

/**
 * One database behind a store (a SQLite file, or one schema of a PostgreSQL database).
 * The SQLite-only maintenance (checkpoints, page counts, online copies) lives on the
 * store itself and answers "not applicable" on PostgreSQL.
 */
export interface StoreHandle<Schema> {
  readonly dialect: Dialect;
  /** SQLite: the database file. PostgreSQL: `postgres:<schema>` (never the URL: it may hold a password). */
  readonly file: string;
  readonly db: Kysely<Schema>;
  /** Problems met while opening that did not stop it (for the caller to log). */
  readonly warnings: string[];
  /** Resolves once the database is ready (PostgreSQL: connected and migrated); rejects with why not. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** The dialect a Kysely instance (or a transaction of one) speaks. */
export function dialectOf(db: QueryExecutorProvider): Dialect {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/** The larger of two values (SQLite's two-argument max(), PostgreSQL's greatest()). */
export function greatest<T>(db: QueryExecutorProvider, a: RawBuilder<T> | T, b: RawBuilder<T> | T): RawBuilder<T> {
  return dialectOf(db) === 'postgres' ? sql<T>`greatest(${a}, ${b})` : sql<T>`max(${a}, ${b})`;
}

/** The smaller of two values (SQLite's two-argument min(), PostgreSQL's least()). */
export function least<T>(db: QueryExecutorProvider, a: RawBuilder<T> | T, b: RawBuilder<T> | T): RawBuilder<T> {
  return dialectOf(db) === 'postgres' ? sql<T>`least(${a}, ${b})` : sql<T>`min(${a}, ${b})`;
}

/** An integer field of a JSON text column (`jobs.payload` → `$.journalId`). */
export function jsonInteger(db: QueryExecutorProvider, column: string, field: string): RawBuilder<unknown> {
  return dialectOf(db) === 'postgres'
    ? sql`(${sql.ref(column)}::jsonb ->> ${sql.lit(field)})::bigint`
    : sql`json_extract(${sql.ref(column)}, ${sql.lit(`$.${field}`)})`;
}

/**
 * Within a transaction, waits for any other transaction holding the same key: what a
 * count-then-insert needs so parallel requests cannot pass a bound together. SQLite's
 * transactions already take the one write lock at BEGIN IMMEDIATE, so there it does nothing.
 */
export async function serializeOn(trx: QueryExecutorProvider, key: string): Promise<void> {
  if (dialectOf(trx) !== 'postgres') return;
  await sql`SELECT pg_advisory_xact_lock(hashtext(${key}))`.execute(trx);
}
