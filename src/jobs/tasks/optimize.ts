/** Runs SQLite's PRAGMA optimize on every database once a day, so the query planner's statistics stay current. */
import { optimize } from '../../store/db.js';
import type { TaskDefinition } from '../queue.js';
import { DAY, type TaskDeps } from './deps.js';

export function optimizeTask({ stores }: TaskDeps): TaskDefinition {
  return {
    name: 'optimize',
    everyMs: DAY,
    handler: async () => {
      await optimize(stores.app.db);
      await optimize(stores.queue.db);
      await optimize(stores.cache.db);
    },
  };
}
