/**
 * SQLite connections: one file per access pattern, the same pragmas on every
 * connection, and a Kysely driver whose transactions start with BEGIN IMMEDIATE
 * (a deferred transaction that later writes fails with SQLITE_BUSY_SNAPSHOT
 * no matter how long the busy timeout is).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { CompiledQuery, Kysely, sql, SqliteDialect, SqliteDriver, type DatabaseConnection, type Driver } from 'kysely';
import type { StoreHandle } from './dialect.js';
import type { Migration } from './migrations/migration.js';

export type Synchronous = 'NORMAL' | 'FULL';

export interface OpenOptions {
  synchronous?: Synchronous;
  /** The WAL is checkpointed automatically at half this size and truncated back to it afterwards. */
  walMaxBytes?: number;
  /**
   * Opens an existing file to read it beside the process that owns it (audits, benchmarks):
   * no pragmas that write, no migrations, and every write fails.
   */
  readOnly?: boolean;
  /** Opens only a file that exists (never creates one, nor its directory); for commands that work on existing data. */
  mustExist?: boolean;
  /**
   * Deterministic SQL functions the schema's views and triggers call (the search index's
   * text, see search-text.ts), registered before the migrations run.
   */
  functions?: SqlFunction[];
}

export interface SqlFunction {
  name: string;
  fn: (...values: unknown[]) => string;
}

class ImmediateSqliteDriver extends SqliteDriver {
  readonly #database: Database.Database;
  constructor(database: Database.Database) {
    super({ database });
    this.#database = database;
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  /**
   * SQLite rolls a transaction back by itself on some errors (SQLITE_FULL among them);
   * a ROLLBACK then fails with "no transaction is active", and that error would replace
   * the real one, hiding a full disk from the code that waits for space.
   */
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (!this.#database.inTransaction) return;
    await super.rollbackTransaction(connection);
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #database: Database.Database;
  constructor(database: Database.Database) {
    super({ database });
    this.#database = database;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#database);
  }
}

const DEFAULT_WAL_MAX_BYTES = 64 * 1024 * 1024;

/** Applies the pragmas DESIGN.md asks for on every connection. */
export function applyPragmas(raw: Database.Database, synchronous: Synchronous, walMaxBytes = DEFAULT_WAL_MAX_BYTES): void {
  // The busy handler first: switching to WAL takes a lock that another process starting at the same moment may hold.
  raw.pragma('busy_timeout = 5000');
  raw.pragma('journal_mode = WAL');
  raw.pragma('foreign_keys = ON');
  raw.pragma(`synchronous = ${synchronous}`);
  // SQLite checkpoints on its own once the WAL holds this many pages, and then truncates the
  // file to journal_size_limit: together they keep the WAL near its bound between the
  // recurring TRUNCATE checkpoints, which remain the backstop when readers held it back.
  const pageSize = raw.pragma('page_size', { simple: true }) as number;
  raw.pragma(`wal_autocheckpoint = ${Math.max(16, Math.floor(walMaxBytes / 2 / pageSize))}`);
  raw.pragma(`journal_size_limit = ${walMaxBytes}`);
  raw.pragma('mmap_size = 134217728');
  raw.pragma('temp_store = MEMORY');
}

export interface SqliteHandle<Schema> extends StoreHandle<Schema> {
  readonly dialect: 'sqlite';
  /** The better-sqlite3 connection, for pragmas Kysely has no words for. */
  readonly sqlite: Database.Database;
}

const READY = Promise.resolve();

/**
 * Deleted rows leave free pages inside the file, and without auto_vacuum they are
 * never given back to the filesystem: deleting an abusive feed would not let mail
 * in again. INCREMENTAL lets maintenance return them in small steps
 * (reclaimFreePages). A new file takes the mode at once; an existing one needs a
 * VACUUM, which is tried at start and, if it cannot run now (disk full, another
 * process busy), again at the next start.
 */
function enableIncrementalVacuum(raw: Database.Database, file: string): string[] {
  if (raw.pragma('auto_vacuum', { simple: true }) === 2) return [];
  raw.pragma('auto_vacuum = INCREMENTAL');
  if (raw.pragma('auto_vacuum', { simple: true }) === 2) return [];
  try {
    raw.exec('VACUUM');
    return [];
  } catch (err) {
    return [`store: unable to switch ${file} to incremental vacuum (${(err as Error).message}); space freed by deletes is reused but not returned to the disk until a later start succeeds`];
  }
}

/** Bytes of free pages inside a database file: reusable by it without growing the file. */
export function freePageBytes(raw: Database.Database): number {
  return (raw.pragma('freelist_count', { simple: true }) as number) * (raw.pragma('page_size', { simple: true }) as number);
}

/** Opens one database file, runs its migrations and returns both the raw and the Kysely handle. */
export function openSqlite<Schema>(file: string, migrations: Migration[], options: OpenOptions = {}): SqliteHandle<Schema> {
  if (!options.readOnly && !options.mustExist) fs.mkdirSync(path.dirname(file), { recursive: true });
  let raw: Database.Database;
  try {
    raw = new Database(file, options.readOnly ? { readonly: true, fileMustExist: true } : { fileMustExist: options.mustExist === true });
  } catch (err) {
    throw new Error(`store: unable to open ${file}: ${(err as Error).message}`, { cause: err });
  }
  for (const f of options.functions ?? []) raw.function(f.name, { deterministic: true }, f.fn);
  let warnings: string[] = [];
  if (options.readOnly) {
    raw.pragma('busy_timeout = 5000');
  } else {
    applyPragmas(raw, options.synchronous ?? 'NORMAL', options.walMaxBytes);
    warnings = enableIncrementalVacuum(raw, file);
    migrate(raw, file, migrations);
  }
  const db = new Kysely<Schema>({ dialect: new ImmediateSqliteDialect(raw) });
  let closed = false;
  return {
    dialect: 'sqlite',
    file,
    sqlite: raw,
    db,
    warnings,
    // Opened and migrated above, synchronously.
    ready: READY,
    async close() {
      if (closed) return;
      closed = true;
      // Kysely's destroy closes the underlying better-sqlite3 handle.
      await db.destroy();
    },
  };
}

/**
 * Runs the migrations this file has not seen yet, in one immediate transaction,
 * so two processes starting together never apply one twice.
 */
function migrate(raw: Database.Database, file: string, migrations: Migration[]): void {
  raw.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const run = raw.transaction(() => {
    const row = raw.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
    const current = row.v ?? 0;
    if (current > migrations.length) {
      throw new Error(`store: ${file} has schema version ${current}, newer than this feedmail (${migrations.length}); upgrade feedmail`);
    }
    migrations.forEach((m, i) => {
      const version = i + 1;
      if (version <= current) return;
      raw.exec(m.sqlite);
      raw.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(version, m.name, Date.now());
    });
  });
  run.immediate();
}

/** Size of a database's WAL file in bytes (0 when there is none). */
export function walBytes(file: string): number {
  try {
    return fs.statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
}

/*
 * The maintenance statements below go through Kysely so they take its connection
 * lock and never land between the statements of another transaction on the same
 * connection.
 */

/** Checkpoints the WAL into the database file and truncates it; reports whether readers kept it from finishing. */
/** Copies what the WAL holds into the database file without waiting for readers (it does what it can). */
export async function checkpointPassive<S>(db: Kysely<S>): Promise<void> {
  await sql`PRAGMA wal_checkpoint(PASSIVE)`.execute(db);
}

export async function checkpointTruncate<S>(db: Kysely<S>): Promise<{ busy: boolean }> {
  const { rows } = await sql<{ busy: number }>`PRAGMA wal_checkpoint(TRUNCATE)`.execute(db);
  return { busy: (rows[0]?.busy ?? 0) !== 0 };
}

export async function optimize<S>(db: Kysely<S>): Promise<void> {
  await sql`PRAGMA optimize`.execute(db);
}

/**
 * Gives free pages back to the filesystem, a bounded number per statement so no
 * single step holds the write lock (or the event loop) for long, then truncates
 * the WAL so the file really shrinks. Returns the bytes given back.
 */
export async function reclaimFreePages<S>(db: Kysely<S>, raw: Database.Database, pagesPerStep = 256): Promise<number> {
  const before = freePageBytes(raw);
  if (before === 0) return 0;
  for (let i = 0; i < 100_000 && freePageBytes(raw) > 0; i++) {
    await sql.raw(`PRAGMA incremental_vacuum(${pagesPerStep})`).execute(db);
    // Each step's moved pages go through the WAL; checkpointing after each lets the next
    // step reuse the WAL from its start, so it never grows past one step.
    await checkpointPassive(db);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await checkpointTruncate(db);
  return before - freePageBytes(raw);
}

/** Proves the file is writable by taking (and releasing) the write lock. */
export async function checkWritable<S>(db: Kysely<S>): Promise<void> {
  await db.transaction().execute(async () => undefined);
}

/** The SQLite library better-sqlite3 was built with (e.g. "3.50.4"). */
export function sqliteVersion(): string {
  const raw = new Database(':memory:');
  try {
    return String(raw.prepare('SELECT sqlite_version()').pluck().get());
  } finally {
    raw.close();
  }
}
