/**
 * Runs jobs from queue.db: claims a batch under a lease, renews the leases by
 * heartbeat while handlers run, finishes or fails each job, and on shutdown
 * waits for handlers and gives back what it still holds. Several runners (in
 * the server and in `feedmail worker` processes) share one queue safely because
 * every claim is one atomic statement.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Kysely } from 'kysely';
import { isDiskFull } from '../errors.js';
import type { Logger } from '../log.js';
import { claimJobs, claimRecurringSlot, failJob, finishJob, releaseLeases, renewLeases, type Job } from '../store/jobs.js';
import type { QueueSchema } from '../store/schema.js';
import { retryDelayMs, type TaskDefinition } from './queue.js';

export interface RunnerOptions {
  queue: Kysely<QueueSchema>;
  tasks: TaskDefinition[];
  concurrency: number;
  log: Logger;
  leaseMs?: number;
  pollMs?: number;
  /** How often recurring slots are checked; 0 disables the scheduler in this runner. */
  scheduleEveryMs?: number;
}

export class JobRunner {
  readonly owner = `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly #tasks: Map<string, TaskDefinition>;
  readonly #active = new Map<number, Promise<void>>();
  readonly #abort = new AbortController();
  #running = false;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #scheduler: NodeJS.Timeout | null = null;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  /** Counters for /metrics. */
  readonly stats = { succeeded: 0, failed: 0, retried: 0 };

  constructor(private readonly options: RunnerOptions) {
    this.#tasks = new Map(options.tasks.map((t) => [t.name, t]));
    this.#leaseMs = options.leaseMs ?? 30_000;
    this.#pollMs = options.pollMs ?? 500;
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
  async scheduleRecurring(now = Date.now()): Promise<void> {
    for (const task of this.#tasks.values()) {
      if (!task.everyMs) continue;
      const slot = Math.floor(now / task.everyMs) * task.everyMs;
      try {
        if (await claimRecurringSlot(this.options.queue, task.name, slot, task.priority ?? 100)) this.notify();
      } catch (err) {
        this.options.log.warn({ err, task: task.name }, 'jobs: unable to schedule recurring task');
      }
    }
  }

  async #run(): Promise<void> {
    while (this.#running) {
      const free = this.options.concurrency - this.#active.size;
      let claimed: Job[] = [];
      if (free > 0) {
        try {
          claimed = await claimJobs(this.options.queue, this.owner, free, this.#leaseMs);
        } catch (err) {
          this.options.log.error({ err }, 'jobs: unable to claim jobs');
        }
      }
      for (const job of claimed) {
        const p = this.#execute(job).finally(() => {
          this.#active.delete(job.id);
          this.notify();
        });
        this.#active.set(job.id, p);
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

  async #execute(job: Job): Promise<void> {
    const { log, queue } = this.options;
    const task = this.#tasks.get(job.task);
    const started = Date.now();
    try {
      if (!task) throw new Error(`no handler for task "${job.task}" in this version of feedmail`);
      await task.handler(JSON.parse(job.payload), { job, signal: this.#abort.signal });
      await finishJob(queue, job.id, this.owner);
      this.stats.succeeded++;
      log.debug({ jobId: job.id, task: job.task, ms: Date.now() - started }, 'jobs: finished');
    } catch (err) {
      if (this.#abort.signal.aborted) return; // shutting down: the lease is released, the job runs again
      // A full disk is the machine's fault, not the job's: wait for space without using up attempts.
      const diskFull = isDiskFull(err);
      const attempt = diskFull ? job.attempts : job.attempts + 1;
      const text = (err as Error)?.stack ?? String(err);
      const retry = diskFull || attempt < job.max_attempts;
      const delay = diskFull ? 5_000 : retryDelayMs(attempt, task?.backoffBaseMs ?? 2_000, task?.backoffMaxMs ?? 3_600_000);
      try {
        await failJob(queue, job.id, this.owner, text, retry ? Date.now() + delay : null, !diskFull);
      } catch (inner) {
        // The lease will expire and the job will run again: nothing is lost.
        log.error({ err: inner, jobId: job.id }, 'jobs: unable to record failure');
      }
      if (retry) this.stats.retried++;
      else this.stats.failed++;
      log.warn({ jobId: job.id, task: job.task, attempt, retryInMs: retry ? delay : undefined, err }, retry ? 'jobs: failed, will retry' : 'jobs: failed for good');
    }
  }

  async #renew(): Promise<void> {
    const ids = [...this.#active.keys()];
    if (ids.length === 0) return;
    try {
      await renewLeases(this.options.queue, this.owner, ids, this.#leaseMs);
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
    const drained = Promise.allSettled([...this.#active.values()]);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), drainMs); });
    const outcome = await Promise.race([drained, timeout]);
    clearTimeout(timer);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (outcome === 'timeout') this.#abort.abort();
    const released = await releaseLeases(this.options.queue, this.owner).catch(() => 0);
    if (released > 0) this.options.log.info({ released }, 'jobs: released leases on shutdown');
  }
}
