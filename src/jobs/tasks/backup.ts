/**
 * Scheduled backups (issue 13): when FEEDMAIL_BACKUP_TO is set, a snapshot every
 * FEEDMAIL_BACKUP_EVERY (one slot per period across all processes), recorded in queue.db
 * for /readyz, then retention (FEEDMAIL_BACKUP_KEEP_HOURLY / _DAILY).
 */
import { openTarget } from '../../ops/backup-target.js';
import { pruneSnapshots, takeSnapshot } from '../../ops/backup.js';
import type { TaskDefinition } from '../task.js';
import type { TaskDeps } from './deps.js';

export const BACKUP_TASK = 'backup';

export function backupTask({ stores, config, log, space }: TaskDeps): TaskDefinition | undefined {
  if (!config.backupTo) return undefined;
  return {
    name: BACKUP_TASK,
    everyMs: config.backupEveryMs,
    backoffBaseMs: 60_000,
    handler: async () => {
      const target = openTarget(config.backupTo, config);
      const r = await takeSnapshot(stores, target, stores.queue.clock.now(), undefined, space);
      await stores.queue.recordBackup({ snapshot: r.snapshot, target: target.description, bytes: r.bytes });
      log.info({ snapshot: r.snapshot, target: target.description, bytes: r.bytes }, 'backup: snapshot stored');
      const removed = await pruneSnapshots(target, config.backupKeepHourly, config.backupKeepDaily);
      if (removed.length > 0) log.info({ removed }, 'backup: removed snapshots past retention');
    },
  };
}
