/** What every task is given, and the periods recurring tasks are written in. */
import type { Config } from '../../config.js';
import type { Logger } from '../../log.js';
import type { ProcessPool } from '../../mail/process-pool.js';
import type { JobCounters } from '../../ops/metrics.js';
import type { SpaceGuard } from '../../ops/storage-guard.js';
import type { Stores } from '../../store/index.js';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export interface TaskDeps {
  stores: Stores;
  config: Config;
  processor: ProcessPool;
  log: Logger;
  /** The data directory's free space (see ops/storage-guard.ts). */
  space?: SpaceGuard;
  /** The job runner's counters: the ingest job observes the time from 250 to entry there. */
  counters?: JobCounters;
}
