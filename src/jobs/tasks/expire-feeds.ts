/** Deletes, everywhere, the feeds nobody fetched for FEEDMAIL_FEED_EXPIRE_DAYS (0: never). */
import type { TaskDefinition } from '../task.js';
import { DAY, HOUR, type TaskDeps } from './deps.js';

export function expireFeedsTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: 'expire-feeds',
    everyMs: 6 * HOUR,
    handler: async () => {
      if (config.feedExpireDays === 0) return;
      const idle = await stores.app.feedsIdleFor(config.feedExpireDays * DAY);
      for (const feed of idle) {
        await stores.removeFeed(feed.id);
        log.info({ feedId: feed.id }, 'maintenance: expired feed nobody fetched');
      }
    },
  };
}
