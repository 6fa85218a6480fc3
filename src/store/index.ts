/** Opens the three databases of a data directory, each behind its store object. */
import path from 'node:path';
import { AppStore } from './app-store.js';
import { CacheStore } from './cache-store.js';
import { systemClock, type Clock } from './clock.js';
import { openSqlite } from './db.js';
import { appMigrations, cacheMigrations, queueMigrations } from './migrations/index.js';
import { openPostgres } from './postgres.js';
import { QueueStore } from './queue-store.js';
import { SEARCH_BODY_FUNCTION, SEARCH_TEXT_FUNCTION, searchBody, searchText } from './search-text.js';
import type { AppSchema, CacheSchema, QueueSchema } from './schema.js';
import type { Dialect } from './dialect.js';

export type { AppStore } from './app-store.js';
export type { CacheStore } from './cache-store.js';
export type { Clock } from './clock.js';
export type { QueueStore } from './queue-store.js';
export { cacheKey } from './cache.js';
export { sqliteVersion } from './db.js';
export type { Dialect } from './dialect.js';

export interface Stores {
  dataDir: string;
  /** 'postgres' when FEEDMAIL_DATABASE_URL is set, else 'sqlite' (the files in dataDir). */
  dialect: Dialect;
  /** Resolves once every store is ready (PostgreSQL: connected and migrated); rejects with a StoreError saying why not. */
  ready(): Promise<void>;
  app: AppStore;
  /** The journal lives here: its connection commits with synchronous=FULL. */
  queue: QueueStore;
  cache: CacheStore;
  /**
   * Deletes a feed with what it holds in every database: its entries, the bodies and
   * parts no other feed shares, its sender rules, the raw mail sent to it alone, its
   * recent deliveries and its cached documents.
   */
  removeFeed(feedId: number): Promise<void>;
  /**
   * Deletes one entry of a feed (see AppStore.deleteEntry) and the raw mail that was
   * sent to that feed alone. Returns false when the feed has no such entry.
   */
  removeEntry(feedId: number, entryId: number): Promise<boolean>;
  /**
   * Returns the free pages inside app.db and queue.db to the filesystem (after a feed is
   * deleted, and as a recurring task), so new mail, which needs real disk space for the
   * journal, can use what deletes freed. Returns the bytes given back.
   */
  reclaimSpace(): Promise<number>;
  close(): Promise<void>;
}

export interface OpenStoresOptions {
  walMaxBytes?: number;
  /** The time every store writes and compares; tests pass one they can move. */
  clock?: Clock;
  /** Read the files beside the process that owns them (see OpenOptions.readOnly). */
  readOnly?: boolean;
  /**
   * Open app.db and queue.db only when they exist (cache.db, rebuilt on demand, may be
   * created): commands that work on existing data never create an empty data directory.
   */
  existingOnly?: boolean;
  /**
   * FEEDMAIL_DATABASE_URL: keep everything in this PostgreSQL database (one schema per
   * store, see store/postgres.ts) instead of the SQLite files in dataDir.
   */
  databaseUrl?: string;
  /** Connections each PostgreSQL store's pool opens at most (default 10; the cache's half). */
  poolMax?: number;
}

/** The PostgreSQL schema of each store. */
export const POSTGRES_SCHEMAS = { app: 'feedmail_app', queue: 'feedmail_queue', cache: 'feedmail_cache' } as const;

/** The SQL functions app.db's schema calls (see search-text.ts); every connection to it needs them. */
export const APP_FUNCTIONS = [{ name: SEARCH_TEXT_FUNCTION, fn: searchText }, { name: SEARCH_BODY_FUNCTION, fn: searchBody }];

/**
 * queue.db commits with synchronous=FULL because "250" depends on it. app.db does
 * too: a worker deletes a finished ingest job (durably, in queue.db) right after
 * storing its entry, so the entry must be just as durable or a power cut could
 * lose it with nothing left to redo it. cache.db can lose anything.
 */
export function openStores(dataDir: string, options: OpenStoresOptions = {}): Stores {
  const { walMaxBytes, clock = systemClock, readOnly, existingOnly: mustExist, databaseUrl, poolMax = 10 } = options;
  let app: AppStore;
  let queue: QueueStore;
  let cache: CacheStore;
  if (databaseUrl) {
    // PostgreSQL commits are durable with its default synchronous_commit = on (see Store.durability).
    app = new AppStore(openPostgres<AppSchema>(databaseUrl, POSTGRES_SCHEMAS.app, appMigrations, { poolMax, readOnly, mustExist }), clock);
    queue = new QueueStore(openPostgres<QueueSchema>(databaseUrl, POSTGRES_SCHEMAS.queue, queueMigrations, { poolMax, readOnly, mustExist }), clock);
    cache = new CacheStore(openPostgres<CacheSchema>(databaseUrl, POSTGRES_SCHEMAS.cache, cacheMigrations, { poolMax: Math.max(1, Math.ceil(poolMax / 2)), readOnly }), clock);
  } else {
    app = new AppStore(openSqlite<AppSchema>(path.join(dataDir, 'app.db'), appMigrations, { synchronous: 'FULL', walMaxBytes, readOnly, mustExist, functions: APP_FUNCTIONS }), clock);
    queue = new QueueStore(openSqlite<QueueSchema>(path.join(dataDir, 'queue.db'), queueMigrations, { synchronous: 'FULL', walMaxBytes, readOnly, mustExist }), clock);
    cache = new CacheStore(openSqlite<CacheSchema>(path.join(dataDir, 'cache.db'), cacheMigrations, { walMaxBytes, readOnly }), clock);
  }
  return {
    dataDir,
    dialect: databaseUrl ? 'postgres' : 'sqlite',
    async ready() {
      // One after the other: the three migrate in their own schemas, and a failure names the first store that failed.
      await app.ready();
      await queue.ready();
      await cache.ready();
    },
    app,
    queue,
    cache,
    async removeFeed(feedId) {
      await app.deleteFeed(feedId);
      await queue.deleteJournalOfFeed(feedId);
      await queue.deleteDeliveriesOfFeed(feedId);
      await cache.deleteCachedFeed(feedId);
    },
    async removeEntry(feedId, entryId) {
      const deleted = await app.deleteEntry(feedId, entryId);
      if (!deleted) return false;
      await queue.deleteJournalOfEntry(deleted.journalUid, feedId);
      return true;
    },
    async reclaimSpace() {
      return (await app.reclaimFreePages()) + (await queue.reclaimFreePages());
    },
    async close() {
      await Promise.all([app.close(), queue.close(), cache.close()]);
    },
  };
}
