/**
 * The PostgreSQL pass of the suite. With FEEDMAIL_TEST_DATABASE_URL set (the admin URL of a
 * throwaway cluster, see scripts/test-pg.sh), every data directory a test uses gets its own
 * fresh database (feedmail_t_<pid>_<n>), passed to servers, commands and stores as
 * FEEDMAIL_DATABASE_URL; the data directory still holds what is not in the database. The
 * databases are dropped when the test file ends. Without it, everything runs on SQLite.
 */
import { after, type TestContext } from 'node:test';
import pg from 'pg';
import { openStores, type OpenStoresOptions, type Stores } from '../../src/store/index.js';

const ADMIN_URL = process.env.FEEDMAIL_TEST_DATABASE_URL || undefined;

/** True on the PostgreSQL pass. */
export const onPostgres = ADMIN_URL !== undefined;

const byDataDir = new Map<string, Promise<string>>();
const resolved = new Map<string, string>();
const created: string[] = [];
let counter = 0;

/** Runs `f` with a client of its own connected to `connectionString`, closed afterwards. */
export async function withPgClient<T>(connectionString: string, f: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return await f(client);
  } finally {
    await client.end();
  }
}

function asAdmin<T>(f: (client: pg.Client) => Promise<T>): Promise<T> {
  return withPgClient(ADMIN_URL!, f);
}

async function createDatabase(): Promise<string> {
  const name = `feedmail_t_${process.pid}_${++counter}`;
  await asAdmin((c) => c.query(`CREATE DATABASE ${name}`));
  created.push(name);
  const url = new URL(ADMIN_URL!);
  url.pathname = `/${name}`;
  return url.toString();
}

// Registered at the top level of the test file (this module is imported before its tests run).
if (onPostgres) {
  after(async () => {
    if (created.length === 0) return;
    await asAdmin(async (c) => {
      // FORCE: a server a test left running must not keep its database.
      for (const name of created.splice(0)) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    });
  });
}

/** The database of a data directory on the PostgreSQL pass (the same one for every call with it); undefined on SQLite. */
export function testDatabaseUrl(dataDir: string): Promise<string | undefined> {
  if (!onPostgres) return Promise.resolve(undefined);
  let url = byDataDir.get(dataDir);
  if (!url) {
    url = createDatabase();
    url.then((u) => resolved.set(dataDir, u), () => undefined);
    byDataDir.set(dataDir, url);
  }
  return url;
}

/** What a `feedmail` child process working on `dataDir` needs in its environment besides FEEDMAIL_DATA_DIR. */
export async function testDatabaseEnv(dataDir: string): Promise<Record<string, string>> {
  const url = await testDatabaseUrl(dataDir);
  return url ? { FEEDMAIL_DATABASE_URL: url } : {};
}

/** openStores for a test: on the PostgreSQL pass, in the data directory's own database. */
export async function openTestStores(dataDir: string, options: OpenStoresOptions = {}): Promise<Stores> {
  return openStores(dataDir, { databaseUrl: await testDatabaseUrl(dataDir), ...options });
}

/**
 * testDatabaseEnv for a synchronous spawn: the data directory's database must already
 * exist (await testDatabaseUrl(dataDir) or start a server on it first).
 */
export function testDatabaseEnvSync(dataDir: string): Record<string, string> {
  if (!onPostgres) return {};
  const url = resolved.get(dataDir);
  if (!url) throw new Error(`test harness: no database for ${dataDir} yet; await testDatabaseUrl(dataDir) before a synchronous spawn`);
  return { FEEDMAIL_DATABASE_URL: url };
}

/**
 * Skips a test that is about SQLite's files by nature (WAL, fsync of files, disk full,
 * copies of files) on the PostgreSQL pass, saying why; returns true when it did:
 * `if (sqliteOnly(t, 'the WAL bound')) return;`.
 */
export function sqliteOnly(t: TestContext, reason: string): boolean {
  if (!onPostgres) return false;
  t.skip(`SQLite only: ${reason}`);
  return true;
}

/** sqliteOnly for a whole suite: `describe('…', { skip: sqliteOnlySuite('why') }, …)`. */
export function sqliteOnlySuite(reason: string): string | false {
  return onPostgres && `SQLite only: ${reason}`;
}

/** The same for a test that only makes sense on PostgreSQL (skipped on the SQLite pass). */
export function postgresOnly(t: TestContext, reason: string): boolean {
  if (onPostgres) return false;
  t.skip(`PostgreSQL only: ${reason} (set FEEDMAIL_TEST_DATABASE_URL, see scripts/test-pg.sh)`);
  return true;
}
