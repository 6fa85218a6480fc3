/**
 * Runs jobs from queue.db: claims a batch under a lease, renews the leases by
 * heartbeat while handlers run, finishes or fails each job, and on shutdown
 * waits for handlers and gives back what it still holds. Several runners (in
 * the server and in `feedmail worker` processes) share one queue safely because
 * every claim is one atomic statement.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { InvalidJobPayloadError, isDiskFull, isUnreachable, messageWithCauses } from '../errors.js';
import type { Logger } from '../log.js';
import { createCounters, type JobCounters } from '../ops/metrics.js';
import { OutageLog } from '../ops/outage-log.js';
import type { QueueStore } from '../store/index.js';
import { DEFAULT_PRIORITY, type Job } from '../store/jobs.js';
import { retryDelayMs, type TaskDefinition } from './task.js';

/** A job whose process died this many times while running it is failed instead of run again. */
const MAX_RECLAIMS = 10;

export interface RunnerOptions {
  queue: QueueStore;
  tasks: TaskDefinition[];
  concurrency: number;
  log: Logger;
  leaseMs?: number;
  pollMs?: number;
  /** How often recurring slots are checked; 0 disables the scheduler in this runner. */
  scheduleEveryMs?: number;
  /**
   * With two or more slots, jobs of a priority above this one (maintenance) may take all
   * but one slot, which is kept for jobs of this priority or below (mail), so they are
   * never stuck behind maintenance. Unset: no slot is kept.
   */
  reserveOneSlotForPriority?: number;
  /** Where this runner counts its jobs for /metrics; a runner without one (a test) counts for nobody. */
  counters?: JobCounters;
}

export class JobRunner {
  readonly owner = `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly #tasks: Map<string, TaskDefinition>;
  /** Running jobs: their promise, an abort switch (shutdown or a lost lease) and their priority. */
  readonly #active = new Map<number, { done: Promise<void>; abort: AbortController; priority: number }>();
  #running = false;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #scheduler: NodeJS.Timeout | null = null;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  #outage?: OutageLog;
  readonly #counters: JobCounters;

  constructor(private readonly options: RunnerOptions) {
    this.#tasks = new Map(options.tasks.map((t) => [t.name, t]));
    this.#leaseMs = options.leaseMs ?? 30_000;
    this.#pollMs = options.pollMs ?? 500;
    this.#outage = new OutageLog(options.log, 'jobs');
    this.#counters = options.counters ?? createCounters().jobs;
  }

  start(): void {
    if (this.#running || this.options.concurrency === 0) return;
    this.#running = true;
    this.#loop = this.#run();
    this.#heartbeat = setInterval(() => void this.#renew(), Math.max(50, Math.floor(this.#leaseMs / 3)));
    const every = this.options.scheduleEveryMs ?? 10_000;
    if (every > 0) {
      void this.scheduleRecurring();
      this.#scheduler = setInterval(() => void this.scheduleRecurring(), every);
    }
  }

  /** Wakes the claim loop now (called after new work is enqueued in this process). */
  notify(): void {
    this.#wake?.();
  }

  get activeCount(): number {
    return this.#active.size;
  }

  /** Enqueues the current slot of every recurring task that no process has claimed yet. */
  async scheduleRecurring(now = this.options.queue.clock.now()): Promise<void> {
    for (const task of this.#tasks.values()) {
      if (!task.everyMs) continue;
      const slot = Math.floor(now / task.everyMs) * task.everyMs;
      try {
        if (await this.options.queue.claimRecurringSlot(task.name, slot, task.priority ?? DEFAULT_PRIORITY)) this.notify();
      } catch (err) {
        this.options.log.warn({ err, task: task.name }, 'jobs: unable to schedule recurring task');
      }
    }
  }

  /**
   * How many jobs to claim now, and whether only urgent jobs may be claimed, because
   * the others hold every slot but the one kept for urgent work.
   */
  #capacity(): { free: number; maxPriority?: number } {
    const { concurrency, reserveOneSlotForPriority: urgent } = this.options;
    const free = concurrency - this.#active.size;
    if (urgent === undefined) return { free };
    const others = [...this.#active.values()].filter((a) => a.priority > urgent).length;
    if (concurrency >= 2 && others >= concurrency - 1) return { free, maxPriority: urgent };
    return { free };
  }

  async #run(): Promise<void> {
    while (this.#running) {
      const { free, maxPriority } = this.#capacity();
      let claimed: Job[] = [];
      if (free > 0) {
        try {
          claimed = await this.options.queue.claimJobs(this.owner, free, this.#leaseMs, { tasks: [...this.#tasks.keys()], maxPriority });
          this.#outage?.recovered();
        } catch (err) {
          // The database down (PostgreSQL): one line per outage rather than a stack every poll.
          if (isUnreachable(err)) this.#outage?.failed(err);
          else this.options.log.error({ err }, 'jobs: unable to claim jobs');
        }
      }
      for (const job of claimed) {
        const abort = new AbortController();
        const done = this.#execute(job, abort.signal).finally(() => {
          this.#active.delete(job.id);
          this.notify();
        });
        this.#active.set(job.id, { done, abort, priority: job.priority });
      }
      if (claimed.length === 0 || this.#active.size >= this.options.concurrency) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.#pollMs);
          this.#wake = () => {
            clearTimeout(t);
            this.#wake = null;
            resolve();
          };
        });
      }
    }
  }

  async #execute(job: Job, signal: AbortSignal): Promise<void> {
    const { log, queue } = this.options;
    const task = this.#tasks.get(job.task)!;
    const started = Date.now();
    const timer = this.#counters.duration.startTimer({ task: job.task });
    try {
      if (job.reclaims >= MAX_RECLAIMS) {
        // Its process died every time it ran this job (a crash, not an error): stop trying.
        await queue.failJobAfterCrashes(job.id, this.owner, `the process running this job died ${job.reclaims} times (killed, crashed or out of memory)`);
        this.#counters.failed++;
        log.error({ jobId: job.id, task: job.task, reclaims: job.reclaims }, 'jobs: failed for good after repeated process deaths');
        return;
      }
      await task.handler(JSON.parse(job.payload), { job, signal });
      if (signal.aborted) return; // the lease went to another process, or we are shutting down
      await queue.finishJob(job.id, this.owner);
      this.#counters.succeeded++;
      log.debug({ jobId: job.id, task: job.task, ms: Date.now() - started }, 'jobs: finished');
    } catch (err) {
      if (signal.aborted) return; // shutting down or lease lost: the job runs again elsewhere
      // A full disk is the machine's fault, not the job's: wait for space without using up attempts.
      const diskFull = isDiskFull(err);
      const attempt = diskFull ? job.attempts : job.attempts + 1;
      const text = errorText(err);
      // A payload the task cannot read will not become readable by waiting.
      const retry = diskFull || (attempt < job.max_attempts && !(err instanceof InvalidJobPayloadError));
      const delay = diskFull ? 5_000 : retryDelayMs(attempt, task.backoffBaseMs ?? 2_000, task.backoffMaxMs ?? 3_600_000);
      try {
        if (diskFull) await queue.retryJobWithoutCharge(job.id, this.owner, text, delay);
        else if (retry) await queue.retryJobAfter(job.id, this.owner, text, delay);
        else await queue.failJobForGood(job.id, this.owner, text);
      } catch (inner) {
        // The lease will expire and the job will run again: nothing is lost.
        log.error({ err: inner, jobId: job.id }, 'jobs: unable to record failure');
      }
      if (retry) this.#counters.retried++;
      else this.#counters.failed++;
      log.warn({ jobId: job.id, task: job.task, attempt, retryInMs: retry ? delay : undefined, err }, retry ? 'jobs: failed, will retry' : 'jobs: failed for good');
    } finally {
      timer();
    }
  }

  async #renew(): Promise<void> {
    const ids = [...this.#active.keys()];
    if (ids.length === 0) return;
    try {
      const kept = new Set(await this.options.queue.renewLeases(this.owner, ids, this.#leaseMs));
      for (const id of ids) {
        if (kept.has(id)) continue;
        // This process stalled past its lease and another took the job over: stop our copy.
        this.#active.get(id)?.abort.abort();
        this.options.log.warn({ jobId: id }, 'jobs: lease lost to another process; abandoning this run');
      }
    } catch (err) {
      this.options.log.warn({ err }, 'jobs: unable to renew leases');
    }
  }

  /** Stops claiming, waits up to `drainMs` for running jobs, then releases the rest. */
  async stop(drainMs = 10_000): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.notify();
    if (this.#scheduler) clearInterval(this.#scheduler);
    await this.#loop;
    const drained = Promise.allSettled([...this.#active.values()].map((a) => a.done));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), drainMs); });
    const outcome = await Promise.race([drained, timeout]);
    clearTimeout(timer);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (outcome === 'timeout') for (const a of this.#active.values()) a.abort.abort();
    const released = await this.options.queue.releaseLeases(this.owner).catch((err: unknown) => {
      // The leases then expire on their own and other processes take the jobs over.
      this.options.log.warn({ err }, 'jobs: unable to release leases on shutdown');
      return 0;
    });
    if (released > 0) this.options.log.info({ released }, 'jobs: released leases on shutdown');
  }
}

/**
 * What a failed job records: the error's name and message with its causes (a store error
 * names the operation, its cause the reason, e.g. SQLITE_FULL), then where it was thrown.
 */
function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const frames = (err.stack ?? '').split('\n').slice(1).join('\n');
  return `${err.name}: ${messageWithCauses(err)}${frames ? `\n${frames}` : ''}`;
}
