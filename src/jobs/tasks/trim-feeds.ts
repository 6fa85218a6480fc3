/** Deletes each feed's oldest entries beyond the number it keeps (its own, set on the manage page, at most FEEDMAIL_FEED_KEEP_ENTRIES). */
import type { TaskDefinition } from '../task.js';
import { HOUR, type TaskDeps } from './deps.js';

export function trimFeedsTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: 'trim-feeds',
    everyMs: HOUR,
    handler: async () => {
      const n = await stores.app.trimFeeds(config.feedKeepEntries);
      if (n) log.info({ deleted: n }, 'maintenance: trimmed feeds');
    },
  };
}
