/** A migration is SQL per dialect; each list only ever grows at its end. */
export interface Migration {
  name: string;
  sqlite: string;
}

export { appMigrations } from './app.js';
export { queueMigrations } from './queue.js';
export { cacheMigrations } from './cache.js';
