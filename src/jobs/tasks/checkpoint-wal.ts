/** Checkpoints with TRUNCATE every database whose WAL grew past FEEDMAIL_WAL_MAX_BYTES. */
import type { Logger } from '../../log.js';
import { checkpointTruncate, walBytes, type SqliteHandle } from '../../store/db.js';
import type { Stores } from '../../store/index.js';
import type { TaskDefinition } from '../queue.js';
import { MINUTE, type TaskDeps } from './deps.js';

export function checkpointWalTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: 'checkpoint-wal',
    everyMs: MINUTE,
    handler: async () => {
      await checkpointLargeWals(stores, config.walMaxBytes, log);
    },
  };
}

/** Checkpoints with TRUNCATE every database whose WAL grew past the bound. */
export async function checkpointLargeWals(stores: Stores, maxBytes: number, log: Logger): Promise<void> {
  const checkpoint = async <S>(h: SqliteHandle<S>) => {
    const before = walBytes(h.file);
    if (before <= maxBytes) return;
    const { busy } = await checkpointTruncate(h.db);
    log.info({ file: h.file, walBytes: before, walBytesAfter: walBytes(h.file), busy }, 'maintenance: checkpointed WAL');
  };
  await checkpoint(stores.app);
  await checkpoint(stores.queue);
  await checkpoint(stores.cache);
}
