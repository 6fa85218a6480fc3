/**
 * Returns the space deletes, trims and journal retention freed inside the databases to
 * the filesystem; cheap when there is none.
 */
import type { TaskDefinition } from '../task.js';
import { MINUTE, type TaskDeps } from './deps.js';

export function reclaimSpaceTask({ stores, log }: TaskDeps): TaskDefinition {
  return {
    name: 'reclaim-space',
    everyMs: MINUTE,
    handler: async () => {
      const bytes = await stores.reclaimSpace();
      if (bytes) log.info({ bytes }, 'maintenance: returned free pages to the filesystem');
    },
  };
}
