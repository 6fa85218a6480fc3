/** Opens the three databases of a data directory. */
import path from 'node:path';
import { openSqlite, type SqliteHandle } from './db.js';
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

export function openStores(dataDir: string): Stores {
  const app = openSqlite<AppSchema>(path.join(dataDir, 'app.db'), appMigrations);
  const queue = openSqlite<QueueSchema>(path.join(dataDir, 'queue.db'), queueMigrations, { synchronous: 'FULL' });
  const cache = openSqlite<CacheSchema>(path.join(dataDir, 'cache.db'), cacheMigrations);
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
