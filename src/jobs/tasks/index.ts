/** Every task feedmail runs: the ingest job and the recurring maintenance tasks, one file each. */
import type { TaskDefinition } from '../task.js';
import { backupTask } from './backup.js';
import { checkpointWalTask } from './checkpoint-wal.js';
import { deleteOrphanPartsTask } from './delete-orphan-parts.js';
import type { TaskDeps } from './deps.js';
import { expireFeedsTask } from './expire-feeds.js';
import { ingestTask } from './ingest.js';
import { optimizeTask } from './optimize.js';
import { prefetchImagesTask } from './prefetch-images.js';
import { PRUNE_OLD_ROWS_FORMER_NAME, pruneOldRowsTask } from './prune-old-rows.js';
import { reclaimSpaceTask } from './reclaim-space.js';
import { trimCacheTask } from './trim-cache.js';
import { trimFeedsTask } from './trim-feeds.js';
import { websubDeliverTask, websubVerifyTask } from './websub.js';

export type { TaskDeps } from './deps.js';

export function allTasks(deps: TaskDeps): TaskDefinition[] {
  const pruneOldRows = pruneOldRowsTask(deps);
  return [
    ingestTask(deps),
    trimFeedsTask(deps),
    expireFeedsTask(deps),
    deleteOrphanPartsTask(deps),
    pruneOldRows,
    { ...pruneOldRows, name: PRUNE_OLD_ROWS_FORMER_NAME, everyMs: undefined },
    trimCacheTask(deps),
    checkpointWalTask(deps),
    reclaimSpaceTask(deps),
    optimizeTask(deps),
    websubVerifyTask(deps),
    websubDeliverTask(deps),
    ...[backupTask(deps)].filter((t) => t !== undefined),
    prefetchImagesTask(deps),
  ];
}
