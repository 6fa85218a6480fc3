/** Deletes stored parts (blobs) that no entry uses any more. */
import { deleteOrphanBlobs } from '../../store/parts.js';
import type { TaskDefinition } from '../queue.js';
import { HOUR, type TaskDeps } from './deps.js';

export function deleteOrphanPartsTask({ stores, log }: TaskDeps): TaskDefinition {
  return {
    name: 'delete-orphan-parts',
    everyMs: HOUR,
    handler: async () => {
      const n = await deleteOrphanBlobs(stores.app.db);
      if (n) log.info({ deleted: n }, 'maintenance: deleted orphaned parts');
    },
  };
}
