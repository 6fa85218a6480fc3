/** The job table: a job's state is its row (ready, claimed under a lease, failed with its error). */
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { dialectOf } from './dialect.js';
import type { JobsTable, QueueSchema } from './schema.js';

export type Job = Selectable<JobsTable>;

/** The priority of a job that names none (maintenance); lower runs first. */
export const DEFAULT_PRIORITY = 100;

export interface EnqueueInput {
  task: string;
  payload?: unknown;
  /** Lower runs first; DEFAULT_PRIORITY when not given. */
  priority?: number;
  runAt?: number;
  maxAttempts?: number;
  /** A second enqueue with the same key, while the first job exists, is ignored. */
  idempotencyKey?: string;
  /** Jobs sharing a key take turns with other keys' jobs when claimed. */
  fairKey?: string;
}

export async function enqueueJob(db: Kysely<QueueSchema> | Transaction<QueueSchema>, now: number, input: EnqueueInput): Promise<number | undefined> {
  const row = await db.insertInto('jobs').values({
    task: input.task,
    payload: JSON.stringify(input.payload ?? {}),
    priority: input.priority ?? DEFAULT_PRIORITY,
    state: 'ready',
    run_at: input.runAt ?? now,
    attempts: 0,
    max_attempts: input.maxAttempts ?? 10,
    lease_owner: null,
    lease_expires_at: null,
    last_error: null,
    idempotency_key: input.idempotencyKey ?? null,
    fair_key: input.fairKey ?? null,
    created_at: now,
    updated_at: now,
  }).onConflict((oc) => oc.column('idempotency_key').doNothing()).returning('id').executeTakeFirst();
  return row?.id;
}

export interface ClaimFilter {
  /** Only these tasks: a runner never claims work it has no handler for. */
  tasks: string[];
  /** Only jobs of at most this priority, so a runner can keep a slot free for urgent work (mail). */
  maxPriority?: number;
}

/**
 * Claims up to `limit` runnable jobs in one statement: ready jobs whose time has
 * come, and claimed jobs whose lease ran out (their owner died, e.g. kill -9).
 * Taking over an expired lease counts a reclaim, not an attempt: the job did
 * not fail, its process did.
 *
 * Within a priority, jobs take turns by `fair_key` (the recipient feeds of a
 * message): a key's n-th waiting job goes after every other key's first, and a
 * key with jobs already running waits that many turns more. One feed's backlog
 * of slow messages then delays only that feed.
 *
 * The cost grows with `limit` and the number of keys with ready jobs, not with the
 * backlog: only each key's `limit` best runnable jobs can be among the `limit` chosen
 * (a key's jobs share one priority: fair keys are given to ingest jobs only), so only
 * those are ranked. The keys are found by skipping through the index (state,
 * fair_key, ...) one key at a time; jobs without a key, each its own turn, are ranked
 * among their `limit` best; jobs whose lease ran out are few (one per dead runner slot).
 */
export async function claimJobs(db: Kysely<QueueSchema>, now: number, owner: string, limit: number, leaseMs: number, filter: ClaimFilter): Promise<Job[]> {
  if (limit <= 0 || filter.tasks.length === 0) return [];
  const maxPriority = filter.maxPriority ?? Number.MAX_SAFE_INTEGER;
  const tasks = sql.join(filter.tasks);
  const runnableReady = sql`state = 'ready' AND run_at <= ${now} AND task IN (${tasks}) AND priority <= ${maxPriority}`;
  const chosen = sql<{ id: number }>`
    WITH RECURSIVE keys(k) AS (
      SELECT (SELECT fair_key FROM jobs WHERE state = 'ready' AND fair_key IS NOT NULL ORDER BY fair_key LIMIT 1)
      UNION ALL
      SELECT (SELECT fair_key FROM jobs WHERE state = 'ready' AND fair_key > keys.k ORDER BY fair_key LIMIT 1)
      FROM keys WHERE keys.k IS NOT NULL
    ),
    candidates AS (
      SELECT id FROM jobs WHERE id IN (
        SELECT best.id FROM keys, jobs AS best WHERE keys.k IS NOT NULL AND best.id IN (
          SELECT id FROM jobs WHERE fair_key = keys.k AND ${runnableReady} ORDER BY priority, run_at, id LIMIT ${limit}))
      UNION ALL
      SELECT id FROM (SELECT id FROM jobs WHERE fair_key IS NULL AND ${runnableReady} ORDER BY priority, run_at, id LIMIT ${limit}) AS unkeyed
      UNION ALL
      SELECT id FROM jobs WHERE state = 'claimed' AND lease_expires_at < ${now} AND task IN (${tasks}) AND priority <= ${maxPriority}
    )
    SELECT id FROM (
      SELECT id, priority, run_at, fair_key,
        row_number() OVER (PARTITION BY coalesce(fair_key, 'job:' || id) ORDER BY run_at, id) AS turn
      FROM jobs WHERE id IN (SELECT id FROM candidates)
    ) AS runnable
    ORDER BY priority,
      turn + (SELECT count(*) FROM jobs AS running
              WHERE running.state = 'claimed' AND running.fair_key = runnable.fair_key AND running.lease_expires_at >= ${now}),
      run_at, id
    LIMIT ${limit}`;
  // On PostgreSQL several instances claim at once: of the chosen rows, only those that can be
  // locked now (SKIP LOCKED) and are still runnable once locked (READ COMMITTED checks the
  // row's newest version again) are claimed. Two claimers never get the same job; one that
  // lost a row to another claims fewer. SQLite's BEGIN IMMEDIATE already serializes claimers.
  const claimable = dialectOf(db) === 'postgres'
    ? sql<boolean>`id IN (SELECT id FROM jobs WHERE id IN (${chosen})
        AND ((state = 'ready' AND run_at <= ${now}) OR (state = 'claimed' AND lease_expires_at < ${now})) FOR UPDATE SKIP LOCKED)`
    : sql<boolean>`id IN (${chosen})`;
  return db.transaction().execute((trx) => trx.updateTable('jobs')
    .set({
      state: 'claimed',
      lease_owner: owner,
      lease_expires_at: now + leaseMs,
      updated_at: now,
      reclaims: sql<number>`CASE WHEN state = 'claimed' THEN reclaims + 1 ELSE reclaims END`,
    })
    .where(claimable)
    .returningAll()
    .execute());
}

/** Extends the leases this owner still holds; returns the ids it still owns. */
export async function renewLeases(db: Kysely<QueueSchema>, now: number, owner: string, ids: number[], leaseMs: number): Promise<number[]> {
  if (ids.length === 0) return [];
  const rows = await db.updateTable('jobs')
    .set({ lease_expires_at: now + leaseMs, updated_at: now })
    .where('id', 'in', ids).where('lease_owner', '=', owner).where('state', '=', 'claimed')
    .returning('id').execute();
  return rows.map((r) => r.id);
}

/** A finished job is deleted; only its owner may finish it. */
export async function finishJob(db: Kysely<QueueSchema>, id: number, owner: string): Promise<boolean> {
  const r = await db.deleteFrom('jobs').where('id', '=', id).where('lease_owner', '=', owner).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/**
 * Records how a claimed job's run ended: back to ready at `runAt`, or failed for good
 * (`runAt` null); `charge` counts the run against the job's attempts. Only the
 * lease's owner may record it. The exported verbs below name each transition.
 */
async function settleJob(db: Kysely<QueueSchema>, now: number, id: number, owner: string, error: string, runAt: number | null, charge: boolean): Promise<void> {
  await db.updateTable('jobs')
    .set((eb) => ({
      attempts: eb('attempts', '+', charge ? 1 : 0),
      state: runAt === null ? 'failed' : 'ready',
      run_at: runAt ?? now,
      last_error: error.slice(0, 8000),
      lease_owner: null,
      lease_expires_at: null,
      updated_at: now,
    }))
    .where('id', '=', id).where('lease_owner', '=', owner)
    .execute();
}

/** The run failed: it counts as an attempt, and the job runs again in `delayMs`. */
export async function retryJobAfter(db: Kysely<QueueSchema>, now: number, id: number, owner: string, error: string, delayMs: number): Promise<void> {
  await settleJob(db, now, id, owner, error, now + delayMs, true);
}

/** The run failed through no fault of the job (a full disk): it runs again in `delayMs` without using up an attempt. */
export async function retryJobWithoutCharge(db: Kysely<QueueSchema>, now: number, id: number, owner: string, error: string, delayMs: number): Promise<void> {
  await settleJob(db, now, id, owner, error, now + delayMs, false);
}

/** The run failed and was the last attempt allowed: the job stays failed, with its error, until retried by hand. */
export async function failJobForGood(db: Kysely<QueueSchema>, now: number, id: number, owner: string, error: string): Promise<void> {
  await settleJob(db, now, id, owner, error, null, true);
}

/**
 * The processes running this job kept dying (it never failed by itself): it stays
 * failed until retried by hand, without an attempt counted for a run that never ended.
 */
export async function failJobAfterCrashes(db: Kysely<QueueSchema>, now: number, id: number, owner: string, error: string): Promise<void> {
  await settleJob(db, now, id, owner, error, null, false);
}

/** Gives back the leases of an owner that is shutting down, so others pick the jobs up at once. */
export async function releaseLeases(db: Kysely<QueueSchema>, now: number, owner: string, ids?: number[]): Promise<number> {
  let q = db.updateTable('jobs')
    .set({ state: 'ready', lease_owner: null, lease_expires_at: null, updated_at: now })
    .where('lease_owner', '=', owner).where('state', '=', 'claimed');
  if (ids) {
    if (ids.length === 0) return 0;
    q = q.where('id', 'in', ids);
  }
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function jobsInState(db: Kysely<QueueSchema>, state: Job['state'], limit = 1000): Promise<Job[]> {
  return db.selectFrom('jobs').selectAll().where('state', '=', state).orderBy('id').limit(limit).execute();
}

export async function jobById(db: Kysely<QueueSchema>, id: number): Promise<Job | undefined> {
  return db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Puts failed jobs back to ready with a fresh attempt budget. `ids` undefined means all. */
export async function retryFailedJobs(db: Kysely<QueueSchema>, now: number, ids?: number[]): Promise<number> {
  let q = db.updateTable('jobs').set({ state: 'ready', attempts: 0, run_at: now, updated_at: now }).where('state', '=', 'failed');
  if (ids) q = q.where('id', 'in', ids.length ? ids : [-1]);
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function discardFailedJobs(db: Kysely<QueueSchema>, ids?: number[]): Promise<number> {
  let q = db.deleteFrom('jobs').where('state', '=', 'failed');
  if (ids) q = q.where('id', 'in', ids.length ? ids : [-1]);
  const r = await q.executeTakeFirst();
  return Number(r.numDeletedRows);
}

export interface QueueStats {
  ready: number;
  claimed: number;
  failed: number;
  /** Age in ms of the oldest job that is due and not yet claimed. */
  oldestReadyAgeMs: number;
}

/** Jobs by state, of one task or of all. */
export async function queueStats(db: Kysely<QueueSchema>, now: number, task?: string): Promise<QueueStats> {
  let byState = db.selectFrom('jobs').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state');
  if (task !== undefined) byState = byState.where('task', '=', task);
  const rows = await byState.execute();
  const stats: QueueStats = { ready: 0, claimed: 0, failed: 0, oldestReadyAgeMs: 0 };
  for (const r of rows) stats[r.state] = Number(r.n);
  let oldestQuery = db.selectFrom('jobs').select((eb) => eb.fn.min('run_at').as('t')).where('state', '=', 'ready').where('run_at', '<=', now);
  if (task !== undefined) oldestQuery = oldestQuery.where('task', '=', task);
  const oldest = await oldestQuery.executeTakeFirst();
  if (oldest?.t != null) stats.oldestReadyAgeMs = now - Number(oldest.t);
  return stats;
}

/**
 * Claims one slot of a recurring task and enqueues its job, atomically. The
 * (task, run_at) key makes sure that of several processes only one wins a slot.
 */
export async function claimRecurringSlot(db: Kysely<QueueSchema>, now: number, task: string, runAt: number, priority: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const r = await trx.insertInto('recurring_runs').values({ task, run_at: runAt })
      .onConflict((oc) => oc.columns(['task', 'run_at']).doNothing()).executeTakeFirst();
    if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 0) return false;
    await enqueueJob(trx, now, { task, payload: { slot: runAt }, priority, maxAttempts: 3 });
    return true;
  });
}

/** The oldest slot of a recurring task still remembered (slots are kept for a while, see prune-old-rows.ts). */
export async function firstRecurringRun(db: Kysely<QueueSchema>, task: string): Promise<number | undefined> {
  const row = await db.selectFrom('recurring_runs').select((eb) => eb.fn.min('run_at').as('t')).where('task', '=', task).executeTakeFirst();
  return row?.t == null ? undefined : Number(row.t);
}

/** Forgets recurring slots older than `ageMs`; newer ones still keep a second process from running them again. */
export async function deleteRecurringRunsOlderThan(db: Kysely<QueueSchema>, now: number, ageMs: number): Promise<void> {
  await db.deleteFrom('recurring_runs').where('run_at', '<', now - ageMs).execute();
}
