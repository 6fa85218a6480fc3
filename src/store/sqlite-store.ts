/**
 * What every store (app.db, queue.db, cache.db) has in common: one open database
 * file behind an opaque object, its clock, the maintenance statements, and the
 * rule that a failed operation names its layer and operation (`store: unable to …`).
 * Nothing outside src/store sees a Kysely instance or writes SQL.
 */
import path from 'node:path';
import type Database from 'better-sqlite3';
import type { Kysely } from 'kysely';
import { FeedmailError, StoreError } from '../errors.js';
import type { Clock } from './clock.js';
import { copyDatabase, type CopyProgress } from './backup.js';
import { checkpointPassive, checkpointTruncate, checkWritable, freePageBytes, optimize, reclaimFreePages, walBytes, withRelaxedSync, type SqliteHandle } from './db.js';

/** Fewer free bytes than this inside a database are left for it to reuse. */
const RECLAIM_THRESHOLD_BYTES = 4 * 1024 * 1024;

export abstract class SqliteStore<Schema> {
  readonly #handle: SqliteHandle<Schema>;
  readonly file: string;

  constructor(handle: SqliteHandle<Schema>, readonly clock: Clock) {
    this.#handle = handle;
    this.file = handle.file;
  }

  /** Problems met while opening that did not stop it (for the caller to log). */
  get warnings(): string[] {
    return this.#handle.warnings;
  }

  /**
   * Binds a store function to this database, wrapping any error that is not already
   * a named one as `store: unable to <operation>` with the original as its cause.
   */
  protected op<A extends unknown[], R>(operation: string, f: (db: Kysely<Schema>, ...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return async (...args: A) => {
      try {
        return await f(this.#handle.db, ...args);
      } catch (err) {
        throw this.#wrap(operation, err);
      }
    };
  }

  /** As op, for a function that reads the time: it gets `now` from this store's clock. */
  protected timed<A extends unknown[], R>(operation: string, f: (db: Kysely<Schema>, now: number, ...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return this.op(operation, (db, ...args: A) => f(db, this.clock.now(), ...args));
  }

  /**
   * As op, for bookkeeping whose loss in a crash only repeats work: its commit gets no
   * fsync of its own (see withRelaxedSync); the next durable commit carries it.
   */
  protected relaxed<A extends unknown[], R>(operation: string, f: (db: Kysely<Schema>, ...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return this.op(operation, (_db, ...args: A) => withRelaxedSync(this.#handle, (conn) => f(conn, ...args)));
  }

  /** As relaxed, for a function that reads the time (see timed). */
  protected relaxedTimed<A extends unknown[], R>(operation: string, f: (db: Kysely<Schema>, now: number, ...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return this.relaxed(operation, (db, ...args: A) => f(db, this.clock.now(), ...args));
  }

  #wrap(operation: string, err: unknown): Error {
    if (err instanceof FeedmailError || err instanceof StoreError) return err;
    return new StoreError(operation, path.basename(this.file), err);
  }

  #stampStatements: { dataVersion: Database.Statement<[], unknown>; changes: Database.Statement<[], unknown> } | undefined;

  /**
   * A value that is different whenever anything may have been committed to this database
   * since the last value was read, by any connection: this process's own (SQLite's
   * total_changes(), counted as each statement finishes) and every other one, in this
   * process or another (PRAGMA data_version, which moves when another connection commits).
   * Read it BEFORE reading what it guards: a commit in between then shows as a new stamp
   * at the next read. It may change when nothing relevant did (any write to any table),
   * never the other way round; in-memory caches of rows (web/hot-feeds.ts) are keyed by it.
   * Costs two prepared statements and no disk I/O. A PostgreSQL store answers it its own way.
   */
  async changeStamp(): Promise<string> {
    // Two statements cost half of one SELECT from the pragma_data_version table: total_changes() needs no read transaction.
    const st = this.#stampStatements ??= {
      dataVersion: this.#handle.sqlite.prepare<[]>('PRAGMA data_version').pluck(),
      changes: this.#handle.sqlite.prepare<[]>('SELECT total_changes()').pluck(),
    };
    return `${st.dataVersion.get() as number}:${st.changes.get() as number}`;
  }

  /** Size of this database's WAL file in bytes (0 when there is none). */
  walBytes(): number {
    return walBytes(this.file);
  }

  /** Copies what the WAL holds into the database file without waiting for readers. */
  readonly checkpointPassive = this.op('checkpoint the WAL', checkpointPassive);

  /** Checkpoints and truncates the WAL; reports whether readers kept it from finishing. */
  readonly checkpointTruncate = this.op('checkpoint and truncate the WAL', checkpointTruncate);

  readonly optimize = this.op('optimize', optimize);

  /** Proves the file is writable by taking (and releasing) the write lock. */
  readonly checkWritable = this.op('take the write lock', checkWritable);

  /**
   * Returns the free pages inside the file to the filesystem, once they are worth it,
   * so new mail can use what deletes freed. Returns the bytes given back.
   */
  async reclaimFreePages(): Promise<number> {
    if (freePageBytes(this.#handle.sqlite) < RECLAIM_THRESHOLD_BYTES) return 0;
    return this.op('reclaim free pages', (db) => reclaimFreePages(db, this.#handle.sqlite))();
  }

  /** The settings that decide what survives a crash, as SQLite reports them on this connection. */
  durability(): { synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA'; journalMode: string } {
    const level = this.#handle.sqlite.pragma('synchronous', { simple: true }) as number;
    return {
      synchronous: (['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const)[level] ?? 'OFF',
      journalMode: String(this.#handle.sqlite.pragma('journal_mode', { simple: true })),
    };
  }

  /** SQLite's own consistency check: ['ok'] when the file is sound, else what it found. */
  integrityCheck(): string[] {
    return (this.#handle.sqlite.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check);
  }

  /**
   * Lets the file grow by at most `bytes` more (rounded to pages); past that, writes
   * fail with SQLITE_FULL exactly as on a full disk. `null` lifts the cap. This is how
   * tests and benchmarks fill "the disk" without filling the machine's.
   */
  capGrowth(bytes: number | null): void {
    const sqlite = this.#handle.sqlite;
    if (bytes === null) {
      sqlite.pragma('max_page_count = 4294967294');
      return;
    }
    const pageSize = sqlite.pragma('page_size', { simple: true }) as number;
    const pages = sqlite.pragma('page_count', { simple: true }) as number;
    sqlite.pragma(`max_page_count = ${pages + Math.floor(bytes / pageSize)}`);
  }

  /** Bytes the database file holds (its pages), without the WAL. */
  fileBytes(): number {
    const sqlite = this.#handle.sqlite;
    return (sqlite.pragma('page_count', { simple: true }) as number) * (sqlite.pragma('page_size', { simple: true }) as number);
  }

  /**
   * Writes one consistent copy of this database into `file` while other connections and
   * processes keep writing (SQLite's online backup; see store/backup.ts).
   */
  async copyTo(file: string, onProgress?: (p: CopyProgress) => void): Promise<void> {
    try {
      await copyDatabase(this.#handle.sqlite, file, onProgress);
    } catch (err) {
      throw this.#wrap('copy the database', err);
    }
  }

  close(): Promise<void> {
    return this.#handle.close();
  }
}
