/** The job queue: retries with growing delays, the failed list and `feedmail jobs`, and several processes sharing one queue. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { JobRunner } from '../src/jobs/runner.js';
import { retryDelayMs } from '../src/jobs/task.js';
import { createLogger } from '../src/log.js';
import { openTestStores, tempDir, testDatabaseEnv, testDatabaseEnvSync, waitFor } from './support/helpers.js';

const CLI = ['--import', 'tsx', 'src/cli.ts'];

function cli(dataDir: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { env: { ...process.env, FEEDMAIL_DATA_DIR: dataDir, FEEDMAIL_LOG_LEVEL: 'silent', ...testDatabaseEnvSync(dataDir) }, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('job queue', () => {
  it('retries a throwing job with growing delays, then keeps it failed with its error until "feedmail jobs retry"', async () => {
    const dataDir = tempDir();
    const stores = await openTestStores(dataDir);
    const base = 40;
    const attempts: number[] = [];
    const runner = new JobRunner({
      queue: stores.queue, concurrency: 1, log: createLogger('silent'), pollMs: 5, scheduleEveryMs: 0,
      tasks: [{ name: 'always-fails', backoffBaseMs: base, handler: async () => {
        attempts.push(Date.now());
        throw new Error(`upstream refused (attempt ${attempts.length})`);
      } }],
    });
    const id = (await stores.queue.enqueueJob({ task: 'always-fails', maxAttempts: 4 }))!;
    runner.start();
    const failed = await waitFor(async () => {
      const j = await stores.queue.jobById(id);
      return j?.state === 'failed' ? j : undefined;
    }, 10_000, 'the job to fail for good');
    await runner.stop();
    assert.equal(attempts.length, 4);
    assert.equal(failed.attempts, 4);
    assert.match(failed.last_error ?? '', /upstream refused \(attempt 4\)/);
    // Each wait is at least the low end of its jittered window, base * 2^(n-1) * 0.5: never
    // early. (A busy machine may make any wait longer, so the growth is checked on the
    // schedule itself below, not on wall-clock gaps.)
    const waits = attempts.slice(1).map((t, i) => t - attempts[i]!);
    waits.forEach((w, i) => {
      const nominal = base * 2 ** i;
      assert.ok(w >= nominal * 0.5 - 5, `wait ${i + 1} was ${w} ms, expected at least ${nominal * 0.5}`);
    });
    // The windows grow: the shortest third wait is longer than the longest first one.
    const window = (attempt: number) => [retryDelayMs(attempt, base, 3_600_000, () => 0), retryDelayMs(attempt, base, 3_600_000, () => 0.999)] as const;
    assert.deepEqual([window(1), window(2), window(3)], [[20, 60], [40, 120], [80, 240]]);
    assert.ok(window(3)[0] > window(1)[1], 'the third window starts after the first ends');
    await stores.close();

    const list = cli(dataDir, 'jobs', 'list');
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, new RegExp(`#${id}\\s+always-fails\\s+attempts 4/4`));
    assert.match(list.out, /upstream refused \(attempt 4\)/);
    const retry = cli(dataDir, 'jobs', 'retry', String(id));
    assert.equal(retry.code, 0, retry.err);
    assert.match(retry.out, /Retried 1 job/);
    const again = await openTestStores(dataDir);
    const job = await again.queue.jobById(id);
    assert.equal(job?.state, 'ready');
    assert.equal(job?.attempts, 0);
    // "ready" is not the promise; running again is. The upstream is fixed now: the retried job runs and finishes.
    const reruns: number[] = [];
    const rerunner = new JobRunner({
      queue: again.queue, concurrency: 1, log: createLogger('silent'), pollMs: 5, scheduleEveryMs: 0,
      tasks: [{ name: 'always-fails', handler: async (_payload, { job: j }) => { reruns.push(j.id); } }],
    });
    rerunner.start();
    try {
      await waitFor(async () => (await again.queue.jobById(id)) === undefined, 5_000, 'the retried job to run and finish');
    } finally {
      await rerunner.stop();
    }
    assert.deepEqual(reruns, [id], 'the retried job ran once more');
    await again.close();
    assert.match(cli(dataDir, 'jobs', 'list').out, /No failed jobs/);
    assert.equal(cli(dataDir, 'jobs', 'retry').code, 2, 'retry without ids says what to do');
  });

  it('never runs a job twice at once or a recurring slot twice across three processes', async () => {
    const dataDir = tempDir();
    const log = path.join(dataDir, 'runs.log');
    const stores = await openTestStores(dataDir);
    const total = 300;
    for (let i = 0; i < total; i++) await stores.queue.enqueueJob({ task: 'probe' });
    const started = Date.now();
    const env = { ...process.env, ...await testDatabaseEnv(dataDir) };
    const workers = [0, 1, 2].map(() => spawn(process.execPath, ['--import', 'tsx', 'test/support/probe-worker.ts', dataDir, log], { stdio: 'inherit', env }));
    try {
      await waitFor(async () => {
        const left = [...await stores.queue.jobsInState('ready'), ...await stores.queue.jobsInState('claimed'), ...await stores.queue.jobsInState('failed')];
        return !left.some((j) => j.task === 'probe');
      }, 60_000, 'all probe jobs to finish');
      // Let the recurring task tick over several slots with all three processes competing.
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      for (const w of workers) w.kill('SIGTERM');
      await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
    }
    await stores.close();
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' '));
    const starts = new Map<string, number>();
    const pids = new Set<string>();
    for (const [kind, id, pid] of lines) {
      if (kind === 'start') {
        starts.set(id!, (starts.get(id!) ?? 0) + 1);
        pids.add(pid!);
      }
    }
    assert.equal(starts.size, total, 'every job ran');
    assert.deepEqual([...starts.values()].filter((n) => n !== 1), [], 'no job ran twice');
    assert.ok(pids.size >= 2, `work was shared between processes (${pids.size})`);
    const slots = lines.filter(([kind]) => kind === 'slot').map(([, slot]) => slot!);
    assert.ok(slots.length >= 3, `recurring slots ran (${slots.length} in ${Date.now() - started} ms)`);
    assert.equal(new Set(slots).size, slots.length, 'no recurring slot ran twice');
  });
});
