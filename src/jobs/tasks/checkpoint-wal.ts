/**
 * Checkpoints with TRUNCATE every database whose WAL grew past FEEDMAIL_WAL_MAX_BYTES.
 * Not under Litestream (FEEDMAIL_LITESTREAM), which manages the WAL itself (docs/operations.md).
 */
import type { Logger } from '../../log.js';
import type { Stores } from '../../store/index.js';
import type { TaskDefinition } from '../task.js';
import { MINUTE, type TaskDeps } from './deps.js';

export function checkpointWalTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: 'checkpoint-wal',
    everyMs: MINUTE,
    handler: async () => {
      if (config.litestream) return;
      await checkpointLargeWals(stores, config.walMaxBytes, log);
    },
  };
}

/** Checkpoints with TRUNCATE every database whose WAL grew past the bound. */
export async function checkpointLargeWals(stores: Stores, maxBytes: number, log: Logger): Promise<void> {
  // PostgreSQL checkpoints its own WAL.
  if (stores.dialect === 'postgres') return;
  for (const store of [stores.app, stores.queue, stores.cache]) {
    const before = store.walBytes();
    if (before <= maxBytes) continue;
    const { busy } = await store.checkpointTruncate();
    log.info({ file: store.file, walBytes: before, walBytesAfter: store.walBytes(), busy }, 'maintenance: checkpointed WAL');
  }
}
