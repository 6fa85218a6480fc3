/**
 * What every store (app, queue, cache) has in common: one database behind an opaque
 * object (a SQLite file, or one schema of a PostgreSQL database: see dialect.ts), its
 * clock, the maintenance statements, and the rule that a failed operation names its
 * layer and operation (`store: unable to …`). Nothing outside src/store sees a Kysely
 * instance or writes SQL. The SQLite-only maintenance (WAL checkpoints, free pages,
 * page caps, online copies) answers "not applicable" on PostgreSQL, whose server does
 * its own (autovacuum, checkpoints; backups with pg_dump or base backups).
 */
import path from 'node:path';
import type Database from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';
import { FeedmailError, StoreError } from '../errors.js';
import type { Clock } from './clock.js';
import { copyDatabase, type CopyProgress } from './backup.js';
import * as copy from './copy.js';
import { checkpointPassive, checkpointTruncate, checkWritable, freePageBytes, optimize, reclaimFreePages, walBytes, withRelaxedSync, type SqliteHandle } from './db.js';
import type { Dialect } from './dialect.js';
import type { PostgresHandle } from './postgres.js';

/** Fewer free bytes than this inside a database are left for it to reuse. */
const RECLAIM_THRESHOLD_BYTES = 4 * 1024 * 1024;

export type AnyHandle<Schema> = SqliteHandle<Schema> | PostgresHandle<Schema>;

/** Thrown by SQLite-only operations on PostgreSQL (a caller that asks should have checked `dialect`). */
export class NotApplicableError extends Error {
  constructor(what: string) {
    super(`store: ${what} applies to SQLite only; PostgreSQL manages its own storage`);
    this.name = 'NotApplicableError';
  }
}

export abstract class Store<Schema> {
  readonly #handle: AnyHandle<Schema>;
  /** The better-sqlite3 connection; undefined on PostgreSQL. */
  readonly #sqlite: Database.Database | undefined;
  /** Until the handle is ready (PostgreSQL: connected and migrated), operations wait for it. */
  #pending: Promise<void> | undefined;
  readonly file: string;
  readonly dialect: Dialect;

  constructor(handle: AnyHandle<Schema>, readonly clock: Clock) {
    this.#handle = handle;
    this.file = handle.file;
    this.dialect = handle.dialect;
    this.#sqlite = handle.dialect === 'sqlite' ? handle.sqlite : undefined;
    if (handle.dialect === 'postgres') {
      this.#pending = handle.ready.then(() => {
        this.#pending = undefined;
      });
      this.#pending.catch(() => undefined);
    }
  }

  /** Problems met while opening that did not stop it (for the caller to log). */
  get warnings(): string[] {
    return this.#handle.warnings;
  }

  /** Resolves once the database is ready (PostgreSQL: connected and migrated); rejects with a StoreError saying why not. */
  async ready(): Promise<void> {
    try {
      await this.#handle.ready;
    } catch (err) {
      throw this.#wrap('open the database', err);
    }
  }

  /**
   * Binds a store function to this database, wrapping any error that is not already
   * a named one as `store: unable to <operation>` with the original as its cause.
   */
  protected op<A extends unknown[], R>(operation: string, f: (db: Kysely<Schema>, ...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return async (...args: A) => {
      try {
        if (this.#pending) await this.#pending;
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
    // PostgreSQL commits these as durably as everything else: its commits are cheap beside SQLite's fsync on the event loop.
    const handle = this.#handle;
    if (handle.dialect !== 'sqlite') return this.op(operation, f);
    return this.op(operation, (_db, ...args: A) => withRelaxedSync(handle, (conn) => f(conn, ...args)));
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
   * Costs two prepared statements and no disk I/O.
   *
   * PostgreSQL: the current snapshot (xmin:xmax:in-progress ids), which any commit on the
   * server changes (a transaction that had its id when the stamp was read leaves the
   * in-progress list; one that got it later moves xmax): one round trip, no disk I/O.
   */
  async changeStamp(): Promise<string> {
    const sqlite = this.#sqlite;
    if (!sqlite) return this.#snapshotStamp();
    // Two statements cost half of one SELECT from the pragma_data_version table: total_changes() needs no read transaction.
    const st = this.#stampStatements ??= {
      dataVersion: sqlite.prepare<[]>('PRAGMA data_version').pluck(),
      changes: sqlite.prepare<[]>('SELECT total_changes()').pluck(),
    };
    return `${st.dataVersion.get() as number}:${st.changes.get() as number}`;
  }

  readonly #snapshotStamp = this.op('read the change stamp', async (db) =>
    (await sql<{ s: string }>`SELECT pg_current_snapshot()::text AS s`.execute(db)).rows[0]!.s);

  /** Size of this database's WAL file in bytes (0 when there is none, and on PostgreSQL). */
  walBytes(): number {
    return this.#sqlite ? walBytes(this.file) : 0;
  }

  /** Copies what the WAL holds into the database file without waiting for readers (nothing to do on PostgreSQL). */
  readonly checkpointPassive = this.op('checkpoint the WAL', (db) => (this.#sqlite ? checkpointPassive(db) : Promise.resolve()));

  /** Checkpoints and truncates the WAL; reports whether readers kept it from finishing (never, on PostgreSQL). */
  readonly checkpointTruncate = this.op('checkpoint and truncate the WAL', (db) => (this.#sqlite ? checkpointTruncate(db) : Promise.resolve({ busy: false })));

  /** SQLite's PRAGMA optimize; PostgreSQL's autovacuum keeps its statistics itself. */
  readonly optimize = this.op('optimize', (db) => (this.#sqlite ? optimize(db) : Promise.resolve()));

  /**
   * Proves the database takes writes: SQLite takes (and releases) the write lock;
   * PostgreSQL assigns a transaction id, which a read-only server (a standby) refuses.
   */
  readonly checkWritable = this.op('take the write lock', async (db) => {
    if (this.#sqlite) return checkWritable(db);
    await db.transaction().execute((trx) => sql`SELECT txid_current()`.execute(trx));
  });

  /**
   * Returns the free pages inside the file to the filesystem, once they are worth it,
   * so new mail can use what deletes freed. Returns the bytes given back (0 on PostgreSQL,
   * whose autovacuum makes freed space reusable).
   */
  async reclaimFreePages(): Promise<number> {
    const sqlite = this.#sqlite;
    if (!sqlite || freePageBytes(sqlite) < RECLAIM_THRESHOLD_BYTES) return 0;
    return this.op('reclaim free pages', (db) => reclaimFreePages(db, sqlite))();
  }

  /**
   * The settings that decide what survives a crash. SQLite: as it reports them on this
   * connection. PostgreSQL: synchronous_commit on (or local, remote_*) waits for the WAL
   * flush like FULL; off does not; journalMode is 'postgres'.
   */
  durability(): { synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA'; journalMode: string } {
    const sqlite = this.#sqlite;
    if (!sqlite) {
      const handle = this.#handle as PostgresHandle<Schema>;
      return { synchronous: handle.synchronousCommit() === 'off' ? 'OFF' : 'FULL', journalMode: 'postgres' };
    }
    const level = sqlite.pragma('synchronous', { simple: true }) as number;
    return {
      synchronous: (['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const)[level] ?? 'OFF',
      journalMode: String(sqlite.pragma('journal_mode', { simple: true })),
    };
  }

  /** The PostgreSQL server's version ('' on SQLite, and until the store is ready). */
  serverVersion(): string {
    return this.#sqlite ? '' : (this.#handle as PostgresHandle<Schema>).serverVersion();
  }

  /** PostgreSQL: the migrations its schema has and the ones this feedmail knows (once ready). Undefined on SQLite. */
  migrations(): { applied: number; known: number } | undefined {
    return this.#sqlite ? undefined : (this.#handle as PostgresHandle<Schema>).migrations();
  }

  /**
   * PostgreSQL: calls `onMessage` whenever another connection (any instance) sends NOTIFY on
   * `channel`, and resolves to the function that stops it. SQLite has no such thing: it
   * resolves to a function that does nothing, and callers poll.
   */
  async listen(channel: string, onMessage: () => void): Promise<() => Promise<void>> {
    if (this.#sqlite) return async () => undefined;
    try {
      await this.ready();
      return await (this.#handle as PostgresHandle<Schema>).listen(channel, onMessage);
    } catch (err) {
      throw this.#wrap('listen for notifications', err);
    }
  }

  /** SQLite's own consistency check: ['ok'] when the file is sound, else what it found. SQLite only. */
  integrityCheck(): string[] {
    return (this.#sqliteOnly('the integrity check').pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check);
  }

  /**
   * Lets the file grow by at most `bytes` more (rounded to pages); past that, writes
   * fail with SQLITE_FULL exactly as on a full disk. `null` lifts the cap. This is how
   * tests and benchmarks fill "the disk" without filling the machine's. SQLite only.
   */
  capGrowth(bytes: number | null): void {
    const sqlite = this.#sqliteOnly('capping the file\'s growth');
    if (bytes === null) {
      sqlite.pragma('max_page_count = 4294967294');
      return;
    }
    const pageSize = sqlite.pragma('page_size', { simple: true }) as number;
    const pages = sqlite.pragma('page_count', { simple: true }) as number;
    sqlite.pragma(`max_page_count = ${pages + Math.floor(bytes / pageSize)}`);
  }

  /** Bytes the database file holds (its pages), without the WAL; 0 on PostgreSQL (no file of feedmail's). */
  fileBytes(): number {
    const sqlite = this.#sqlite;
    if (!sqlite) return 0;
    return (sqlite.pragma('page_count', { simple: true }) as number) * (sqlite.pragma('page_size', { simple: true }) as number);
  }

  /**
   * Writes one consistent copy of this database into `file` while other connections and
   * processes keep writing (SQLite's online backup; see store/backup.ts). SQLite only:
   * PostgreSQL is backed up with pg_dump or base backups.
   */
  async copyTo(file: string, onProgress?: (p: CopyProgress) => void): Promise<void> {
    const sqlite = this.#sqliteOnly('copying the database');
    try {
      await copyDatabase(sqlite, file, onProgress);
    } catch (err) {
      throw this.#wrap('copy the database', err);
    }
  }

  #sqliteOnly(what: string): Database.Database {
    if (!this.#sqlite) throw new NotApplicableError(what);
    return this.#sqlite;
  }

  // Copying between databases (store/copy.ts, `feedmail copy-db`): each store names the tables it copies.
  readonly copyTables: copy.CopyTable[] = [];
  readonly countCopyRows = this.op('count rows to copy', copy.countRows<Schema>);
  readonly lastCopiedKey = this.op('find the last copied row', copy.lastKey<Schema>);
  readonly copyRowsAfter = this.op('read rows to copy', copy.rowsAfter<Schema>);
  readonly insertCopiedRows = this.op('write copied rows', copy.insertRows<Schema>);
  readonly fixCopiedIdentities = this.op('move the id counters past the copied rows', (db) => copy.fixIdentities(db, this.copyTables));
  readonly copyChecksum = this.op('checksum copied rows', copy.checksum<Schema>);

  close(): Promise<void> {
    return this.#handle.close();
  }
}
