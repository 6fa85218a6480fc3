/** The migration lists of the three databases. */
export type { Migration } from './migration.js';
export { appMigrations } from './app.js';
export { queueMigrations } from './queue.js';
export { cacheMigrations } from './cache.js';
