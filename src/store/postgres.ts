/**
 * PostgreSQL connections: one database, one schema per store (feedmail_app,
 * feedmail_queue, feedmail_cache) so every table keeps its SQLite name and the three
 * migration sequences stay apart. Each store has its own bounded pool whose
 * connections run with `search_path` set to its schema.
 *
 * node-postgres returns int8 and numeric as strings: this pool's type parsers turn
 * them into numbers (ids, counts, sums and millisecond times all fit in 2^53).
 * Commits are durable by default (synchronous_commit = on), which "250" relies on.
 */
import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import type { StoreHandle } from './dialect.js';
import type { Migration } from './migrations/migration.js';

export interface PostgresOptions {
  /** Connections this store's pool opens at most. */
  poolMax?: number;
  /** No migrations, and every transaction is read-only (doctor, audits). */
  readOnly?: boolean;
  /** Fail unless the schema was made already (commands that work on existing data). */
  mustExist?: boolean;
}

export interface PostgresHandle<Schema> extends StoreHandle<Schema> {
  readonly dialect: 'postgres';
  readonly schema: string;
  /** synchronous_commit as the server reports it (read while migrating); '' until ready. */
  readonly synchronousCommit: () => string;
  /** The server's version (read while migrating); '' until ready. */
  readonly serverVersion: () => string;
  /** Migrations applied to the schema (once ready) and known to this feedmail. */
  readonly migrations: () => { applied: number; known: number };
  readonly pool: pg.Pool;
  /**
   * Calls `onMessage` for every NOTIFY on `channel`, on a connection of its own (a pooled
   * one would be handed to other queries); resolves to the function that stops listening.
   * A lost connection is not reopened: callers keep polling as the fallback.
   */
  listen(channel: string, onMessage: () => void): Promise<() => Promise<void>>;
}

const INT8 = 20;
const NUMERIC = 1700;

/** Type parsers of feedmail's pools: int8 and numeric as numbers, everything else as node-postgres does. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if (oid === INT8 || oid === NUMERIC) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * PostgreSQL's text cannot hold NUL (U+0000), which mail can: a bound string with one
 * would fail its whole statement ("invalid byte sequence"), and with it the message's
 * ingest. This client stores U+FFFD (what HTML parsers show for NUL) instead, in every
 * string it binds. Bytes (bytea: raw mail, parts) are Buffers and stay as they are.
 */
class NulSafeClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    // A connection cut while checked out of the pool (between a transaction's statements,
    // say) is reported as an 'error' event on the client; without a listener the process
    // crashed. The query in flight fails (and answers 503), and the pool drops the client.
    this.on('error', () => undefined);
  }

  override query(...args: unknown[]): never {
    const values = args[1];
    if (Array.isArray(values) && values.some((v) => typeof v === 'string' && v.includes('\u0000'))) {
      args[1] = values.map((v: unknown) => (typeof v === 'string' ? v.replace(/\u0000/g, '\ufffd') : v));
    }
    return (super.query as (...a: unknown[]) => never)(...args);
  }
}

/** A read-only or existing-only open of a database where no "feedmail serve" has run yet. */
export class NotSetUpError extends Error {
  constructor(file: string) {
    super(`store: ${file} does not exist yet: the first "feedmail serve" with this FEEDMAIL_DATABASE_URL creates it`);
    this.name = 'NotSetUpError';
  }
}

/** A schema name feedmail chose (never user input); checked anyway since it is spliced into SQL. */
function checkSchema(schema: string): void {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`store: invalid schema name ${schema}`);
}

/** Opens one store's pool on `url` in `schema`; migrations run at once, and `ready` says when they finished. */
export function openPostgres<Schema>(url: string, schema: string, migrations: Migration[], options: PostgresOptions = {}): PostgresHandle<Schema> {
  checkSchema(schema);
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolMax ?? 10,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    application_name: `feedmail ${schema}`,
    options: `-c search_path=${schema}${options.readOnly ? ' -c default_transaction_read_only=on' : ''}`,
    types: TYPES,
    Client: NulSafeClient,
  });
  // An idle connection that breaks (server restart, network) is reported here; without a
  // listener it would crash the process. The next query gets a fresh connection, and a
  // query that fails is wrapped as a StoreError naming its operation.
  pool.on('error', () => undefined);
  let synchronousCommit = '';
  let serverVersion = '';
  let applied = 0;
  const file = `postgres:${schema}`;
  const ready = (async () => {
    const client = await pool.connect();
    try {
      const { rows } = await client.query<{ sc: string; v: string }>("SELECT current_setting('synchronous_commit') AS sc, current_setting('server_version') AS v");
      synchronousCommit = rows[0]?.sc ?? '';
      serverVersion = rows[0]?.v ?? '';
      if (options.readOnly || options.mustExist) await checkMigrated(client, schema, file, migrations);
      else await migrate(client, schema, file, migrations);
      applied = await schemaVersion(client);
    } finally {
      client.release();
    }
  })();
  // Awaited by the store's first operation; marked handled here so a failure never goes unobserved.
  ready.catch(() => undefined);
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  let closed = false;
  return {
    dialect: 'postgres',
    file,
    schema,
    db,
    pool,
    warnings: [],
    ready,
    synchronousCommit: () => synchronousCommit,
    serverVersion: () => serverVersion,
    migrations: () => ({ applied, known: migrations.length }),
    async listen(channel, onMessage) {
      checkSchema(channel);
      const client = new pg.Client({ connectionString: url, application_name: `feedmail ${schema} listener` });
      client.on('error', () => undefined);
      client.on('notification', () => onMessage());
      await client.connect();
      await client.query(`LISTEN ${channel}`);
      return async () => {
        await client.end().catch(() => undefined);
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      await ready.catch(() => undefined);
      // Kysely's destroy ends the pool, but only once a query went through Kysely: a store that
      // only migrated (the cache of a command) would keep its idle connection, and the process
      // alive, for idleTimeoutMillis.
      await db.destroy();
      if (!pool.ending) await pool.end();
    },
  };
}

const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`;

/**
 * Runs the migrations this schema has not seen yet, in one transaction under an advisory
 * lock, so several instances starting together apply each once (PostgreSQL's DDL is
 * transactional: a failed migration leaves nothing behind).
 */
async function migrate(client: pg.PoolClient, schema: string, file: string, migrations: Migration[]): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`feedmail migrate ${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`SET LOCAL search_path TO ${schema}`);
    await client.query(MIGRATIONS_TABLE);
    const current = await schemaVersion(client);
    if (current > migrations.length) {
      throw new Error(`store: ${file} has schema version ${current}, newer than this feedmail (${migrations.length}); upgrade feedmail`);
    }
    for (let i = current; i < migrations.length; i++) {
      const m = migrations[i]!;
      await client.query(m.postgres);
      await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [i + 1, m.name, Date.now()]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function schemaVersion(client: pg.PoolClient): Promise<number> {
  if (!(await client.query<{ t: string | null }>("SELECT to_regclass('schema_migrations') AS t")).rows[0]?.t) return 0;
  const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
  return Number(rows[0]?.v ?? 0);
}

/** For read-only and existing-only opens: the schema must be there and not newer than this feedmail. */
async function checkMigrated(client: pg.PoolClient, schema: string, file: string, migrations: Migration[]): Promise<void> {
  const { rows } = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${schema}.schema_migrations`]);
  if (!rows[0]?.t) throw new NotSetUpError(file);
  const current = await schemaVersion(client);
  if (current > migrations.length) throw new Error(`store: ${file} has schema version ${current}, newer than this feedmail (${migrations.length}); upgrade feedmail`);
}
