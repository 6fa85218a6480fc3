/** Evicts cached feed documents beyond FEEDMAIL_CACHE_MAX_BYTES. */
import type { TaskDefinition } from '../task.js';
import { MINUTE, type TaskDeps } from './deps.js';

export function trimCacheTask({ stores, config, log }: TaskDeps): TaskDefinition {
  return {
    name: 'trim-cache',
    everyMs: 5 * MINUTE,
    handler: async () => {
      const n = await stores.cache.evictCache(config.cacheMaxBytes);
      if (n) log.info({ evicted: n }, 'maintenance: evicted cached documents');
    },
  };
}
