/** Every task feedmail runs: the ingest job and the recurring maintenance tasks. */
import type { Kysely } from 'kysely';
import type { Config } from '../../config.js';
import type { Logger } from '../../log.js';
import { ingestJournalRow } from '../../mail/ingest.js';
import type { RenderPool } from '../../mail/render-pool.js';
import type { SpaceGuard } from '../../ops/storage-guard.js';
import { evictCache } from '../../store/cache.js';
import { checkpointTruncate, optimize, walBytes } from '../../store/db.js';
import { trimFeeds } from '../../store/entries.js';
import { deleteFeedCreationsBefore, feedsIdleSince } from '../../store/feeds.js';
import { deleteFeedEverywhere, reclaimSpace, type Stores } from '../../store/index.js';
import { deleteRecurringRunsBefore } from '../../store/jobs.js';
import { deleteJournalBefore, INGEST_PRIORITY, INGEST_TASK } from '../../store/journal.js';
import { deleteOrphanBlobs } from '../../store/parts.js';
import type { TaskDefinition } from '../queue.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export interface TaskDeps {
  stores: Stores;
  config: Config;
  renderer: RenderPool;
  log: Logger;
  /** The data directory's free space (see ops/storage-guard.ts). */
  space?: SpaceGuard;
}

export function allTasks(deps: TaskDeps): TaskDefinition[] {
  const { stores, config, log } = deps;
  return [
    {
      name: INGEST_TASK,
      priority: INGEST_PRIORITY,
      backoffBaseMs: 1_000,
      handler: async (payload, { signal }) => {
        const { journalId } = payload as { journalId: number };
        await ingestJournalRow({ app: stores.app.db, queue: stores.queue.db, renderer: deps.renderer, log, space: deps.space }, journalId, signal);
      },
    },
    {
      name: 'trim-feeds',
      everyMs: HOUR,
      handler: async () => {
        const n = await trimFeeds(stores.app.db, config.feedKeepEntries);
        if (n) log.info({ deleted: n }, 'maintenance: trimmed feeds');
      },
    },
    {
      name: 'expire-feeds',
      everyMs: 6 * HOUR,
      handler: async () => {
        if (config.feedExpireDays === 0) return;
        const idle = await feedsIdleSince(stores.app.db, Date.now() - config.feedExpireDays * DAY);
        for (const feed of idle) {
          await deleteFeedEverywhere(stores, feed.id);
          log.info({ feedId: feed.id }, 'maintenance: expired feed nobody fetched');
        }
      },
    },
    {
      name: 'delete-orphan-parts',
      everyMs: HOUR,
      handler: async () => {
        const n = await deleteOrphanBlobs(stores.app.db);
        if (n) log.info({ deleted: n }, 'maintenance: deleted orphaned parts');
      },
    },
    {
      name: 'drop-old-journal',
      everyMs: HOUR,
      handler: async () => {
        const n = await deleteJournalBefore(stores.queue.db, Date.now() - config.journalRetentionDays * DAY);
        await deleteRecurringRunsBefore(stores.queue.db, Date.now() - 7 * DAY);
        await deleteFeedCreationsBefore(stores.app.db, Date.now() - 2 * HOUR);
        if (n) log.info({ deleted: n }, 'maintenance: dropped old journal rows');
      },
    },
    {
      name: 'trim-cache',
      everyMs: 5 * MINUTE,
      handler: async () => {
        const n = await evictCache(stores.cache.db, config.cacheMaxBytes);
        if (n) log.info({ evicted: n }, 'maintenance: evicted cached documents');
      },
    },
    {
      name: 'checkpoint-wal',
      everyMs: MINUTE,
      handler: async () => {
        await checkpointLargeWals(stores, config.walMaxBytes, log);
      },
    },
    {
      // Returns the space deletes, trims and journal retention freed inside the databases to
      // the filesystem; cheap when there is none.
      name: 'reclaim-space',
      everyMs: MINUTE,
      handler: async () => {
        const bytes = await reclaimSpace(stores);
        if (bytes) log.info({ bytes }, 'maintenance: returned free pages to the filesystem');
      },
    },
    {
      name: 'optimize',
      everyMs: DAY,
      handler: async () => {
        await optimize(stores.app.db);
        await optimize(stores.queue.db);
        await optimize(stores.cache.db);
      },
    },
  ];
}

/** Checkpoints with TRUNCATE every database whose WAL grew past the bound. */
export async function checkpointLargeWals(stores: Stores, maxBytes: number, log: Logger): Promise<void> {
  const checkpoint = async <S>(h: { file: string; db: Kysely<S> }) => {
    const before = walBytes(h.file);
    if (before <= maxBytes) return;
    const { busy } = await checkpointTruncate(h.db);
    log.info({ file: h.file, walBytes: before, walBytesAfter: walBytes(h.file), busy }, 'maintenance: checkpointed WAL');
  };
  await checkpoint(stores.app);
  await checkpoint(stores.queue);
  await checkpoint(stores.cache);
}

