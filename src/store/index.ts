/** Opens the three databases of a data directory. */
import path from 'node:path';
import { deleteCachedFeed } from './cache.js';
import { freePageBytes, openSqlite, reclaimFreePages, type SqliteHandle } from './db.js';
import { deleteFeed } from './feeds.js';
import { deleteJournalOfFeed } from './journal.js';
import { appMigrations, cacheMigrations, queueMigrations } from './migrations/index.js';
import type { AppSchema, CacheSchema, QueueSchema } from './schema.js';

export interface Stores {
  dataDir: string;
  app: SqliteHandle<AppSchema>;
  /** The journal lives here: its connection commits with synchronous=FULL. */
  queue: SqliteHandle<QueueSchema>;
  cache: SqliteHandle<CacheSchema>;
  close(): Promise<void>;
}

/**
 * queue.db commits with synchronous=FULL because "250" depends on it. app.db does
 * too: a worker deletes a finished ingest job (durably, in queue.db) right after
 * storing its entry, so the entry must be just as durable or a power cut could
 * lose it with nothing left to redo it. cache.db can lose anything.
 */
export function openStores(dataDir: string, options: { walMaxBytes?: number } = {}): Stores {
  const { walMaxBytes } = options;
  const app = openSqlite<AppSchema>(path.join(dataDir, 'app.db'), appMigrations, { synchronous: 'FULL', walMaxBytes });
  const queue = openSqlite<QueueSchema>(path.join(dataDir, 'queue.db'), queueMigrations, { synchronous: 'FULL', walMaxBytes });
  const cache = openSqlite<CacheSchema>(path.join(dataDir, 'cache.db'), cacheMigrations, { walMaxBytes });
  return {
    dataDir,
    app,
    queue,
    cache,
    async close() {
      await Promise.all([app.close(), queue.close(), cache.close()]);
    },
  };
}

/**
 * Deletes a feed with what it holds in every database: its entries, the bodies and
 * parts no other feed shares, the raw mail sent to it alone and its cached documents.
 * The freed pages count as free space for new mail at once (ops/storage-guard.ts).
 */
export async function deleteFeedEverywhere(stores: Stores, feedId: number): Promise<void> {
  await deleteFeed(stores.app.db, feedId);
  await deleteJournalOfFeed(stores.queue.db, feedId);
  await deleteCachedFeed(stores.cache.db, feedId);
}

/** Fewer free bytes than this inside a database are left for it to reuse. */
const RECLAIM_THRESHOLD_BYTES = 4 * 1024 * 1024;

/**
 * Returns the free pages inside app.db and queue.db to the filesystem (after a feed is
 * deleted, and as a recurring task), so new mail, which needs real disk space for the
 * journal, can use what deletes freed. Returns the bytes given back.
 */
export async function reclaimSpace(stores: Stores): Promise<number> {
  const reclaim = async <S>(h: SqliteHandle<S>) => (freePageBytes(h.raw) < RECLAIM_THRESHOLD_BYTES ? 0 : reclaimFreePages(h.db, h.raw));
  return (await reclaim(stores.app)) + (await reclaim(stores.queue));
}
