/** Deletes stored parts (blobs) that no entry uses any more. */
import type { TaskDefinition } from '../task.js';
import { HOUR, type TaskDeps } from './deps.js';

export function deleteOrphanPartsTask({ stores, log }: TaskDeps): TaskDefinition {
  return {
    name: 'delete-orphan-parts',
    everyMs: HOUR,
    handler: async () => {
      const n = await stores.app.deleteOrphanBlobs();
      if (n) log.info({ deleted: n }, 'maintenance: deleted orphaned parts');
    },
  };
}
