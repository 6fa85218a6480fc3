/** Deletes each feed's oldest entries beyond the number to keep (FEEDMAIL_FEED_KEEP_ENTRIES). */
import { trimFeeds } from '../../store/entries.js';
import type { TaskDefinition } from '../queue.js';
import { HOUR, type TaskDeps } from './deps.js';

export function trimFeedsTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: 'trim-feeds',
    everyMs: HOUR,
    handler: async () => {
      const n = await trimFeeds(stores.app.db, config.feedKeepEntries);
      if (n) log.info({ deleted: n }, 'maintenance: trimmed feeds');
    },
  };
}
