/** Task definitions and the retry policy shared by every runner. */
import type { Job } from '../store/jobs.js';

export interface TaskContext {
  job: Job;
  /** Aborted when the process shuts down; long handlers should stop early. */
  signal: AbortSignal;
}

export interface TaskDefinition {
  name: string;
  handler: (payload: unknown, ctx: TaskContext) => Promise<void>;
  /** First retry delay; each later one doubles, with jitter. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Run this task every `everyMs` milliseconds, one slot per period across all processes. */
  everyMs?: number;
  priority?: number;
}

/** Exponential backoff with +-50% jitter, so retries of many jobs do not arrive in lockstep. */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.5 + random()));
}
