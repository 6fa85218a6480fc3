/** Runs SQLite's PRAGMA optimize on every database once a day, so the query planner's statistics stay current. */
import type { TaskDefinition } from '../task.js';
import { DAY, type TaskDeps } from './deps.js';

export function optimizeTask({ stores }: TaskDeps): TaskDefinition {
  return {
    name: 'optimize',
    everyMs: DAY,
    handler: async () => {
      await stores.app.optimize();
      await stores.queue.optimize();
      await stores.cache.optimize();
    },
  };
}
