/**
 * Returns the space deletes, trims and journal retention freed inside the databases to
 * the filesystem; cheap when there is none. Not under Litestream (FEEDMAIL_LITESTREAM): the
 * TRUNCATE checkpoint that ends it would wait on Litestream's read lock, holding writers back.
 */
import type { TaskDefinition } from '../task.js';
import { MINUTE, type TaskDeps } from './deps.js';

export function reclaimSpaceTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: 'reclaim-space',
    everyMs: MINUTE,
    handler: async () => {
      if (config.litestream) return;
      const bytes = await stores.reclaimSpace();
      if (bytes) log.info({ bytes }, 'maintenance: returned free pages to the filesystem');
    },
  };
}
