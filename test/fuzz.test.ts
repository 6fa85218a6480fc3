/**
 * Deterministic mutation fuzzing of the mail pipeline: every fixture, mutated in ways
 * real mail breaks (truncation, bit rot, lost or doubled boundaries, bad headers, wrong
 * charsets, hostile HTML, deep nesting), must render without an exception or a hang to
 * HTML with nothing executable in it and no secret left after redaction. How long a case
 * takes is reported here and measured by bench/sanitize-bounds.ts, not asserted.
 *
 * The many cases run through processMessage (parse + sanitize + confirm), split over one
 * worker thread per core: this same file, loaded in a worker, runs its share of the cases
 * and reports back. A sample also goes through ProcessPool, the path ingest takes.
 * FUZZ_SEED and FUZZ_CASES reproduce or extend a run.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { describe, it } from 'node:test';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { FeedSecrets } from '../src/mail/redact.js';
import { ProcessPool } from '../src/mail/process-pool.js';
import { redactForRecipients, processMessage, type ProcessOptions } from '../src/mail/process.js';
import { fixture } from './support/helpers.js';
import { unsafeConstructs } from './support/html-safety.js';
import { cases } from './support/mutate.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);
const CASES = Number(process.env.FUZZ_CASES ?? 10_000);
const POOL_CASES = 50;
/** The pool's time limit for the sample: ingest's default processing budget, so only a real failure falls back. */
const PROCESSING_BUDGET_MS = 20_000;
/** A shard that reports no progress for this long is stuck in a case (far beyond any case's cost, even on a busy machine). */
const HANG_MS = 60_000;
const OPTIONS: ProcessOptions = { maxPartBytes: 1_000_000, keepTrackingPixels: false };
const SECRETS: FeedSecrets = { inboxToken: 'k7q2m4xap3w5tgr6n2b4v7c3zd', feedToken: 'f3edtokqz5ya2wm4nrx6bc7ejh' };

/** Where a token still shows in redacted content (plain, in any case). */
function leaked(values: string[]): boolean {
  return values.some((v) => v.toLowerCase().includes(SECRETS.inboxToken) || v.toLowerCase().includes(SECRETS.feedToken));
}

const FIXTURES = fs.readdirSync(new URL('./fixtures/', import.meta.url)).filter((f) => f.endsWith('.eml')).sort()
  .map((name) => ({ name, raw: fixture(name) }));

interface ShardTask { seed: number; count: number; shard: number; shards: number }
type ShardMessage =
  | { type: 'case'; what: string }
  | { type: 'done'; cases: number; failures: string[]; slowest: { ms: number; what: string } };

/** Runs every `shards`-th case, starting at `shard`; the case sequence is the same in every shard. */
async function runShard(task: ShardTask, report: (m: ShardMessage) => void): Promise<void> {
  let slowest = { ms: 0, what: '' };
  let done = 0;
  const failures: string[] = [];
  for (const c of cases(FIXTURES, task.count, task.seed)) {
    if (c.id % task.shards !== task.shard) continue;
    const what = `case ${c.id} (${c.fixture}: ${c.mutations.join(', ')})`;
    report({ type: 'case', what });
    const t0 = performance.now();
    try {
      const rendered = await processMessage(c.raw, OPTIONS);
      const problems = unsafeConstructs(rendered.html);
      if (problems.length) failures.push(`${what}: ${problems.join('; ')}`);
      const content = redactForRecipients(rendered, [SECRETS]);
      if (leaked([content.subject, content.fromName, content.fromAddress, content.html, content.text, ...content.parts.map((p) => p.filename)])) {
        failures.push(`${what}: secret left after redaction`);
      }
    } catch (err) {
      failures.push(`${what}: threw ${(err as Error).stack ?? String(err)}`);
    }
    const ms = performance.now() - t0;
    done++;
    if (ms > slowest.ms) slowest = { ms, what };
    if (failures.length >= 10) break;
  }
  report({ type: 'done', cases: done, failures, slowest });
}

/**
 * Starts a shard in a worker thread. Workers do not inherit tsx's loader hooks, so the
 * worker registers them itself before it loads this file.
 */
function startShard(task: ShardTask, onMessage: (m: ShardMessage) => void): Worker {
  const tsx = import.meta.resolve('tsx/esm/api');
  const self = import.meta.url;
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(self)}); })`;
  const worker = new Worker(code, { eval: true, workerData: task });
  worker.on('message', onMessage);
  return worker;
}

async function runShards(count: number, seed: number): Promise<{ cases: number; failures: string[]; slowest: { ms: number; what: string } }> {
  const shards = Math.max(1, Math.min(os.availableParallelism(), 4));
  const results = await Promise.all(Array.from({ length: shards }, (_, shard) => new Promise<{ cases: number; failures: string[]; slowest: { ms: number; what: string } }>((resolve) => {
    let current = { what: '(starting)', since: Date.now() };
    let finished = false;
    const finish = (r: { cases: number; failures: string[]; slowest: { ms: number; what: string } }) => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      void worker.terminate();
      resolve(r);
    };
    const worker = startShard({ seed, count, shard, shards }, (m) => {
      if (m.type === 'case') current = { what: m.what, since: Date.now() };
      else finish(m);
    });
    const watchdog = setInterval(() => {
      if (Date.now() - current.since > HANG_MS) finish({ cases: 0, failures: [`shard ${shard} hung in ${current.what}`], slowest: { ms: HANG_MS, what: current.what } });
    }, 500);
    worker.on('error', (err) => finish({ cases: 0, failures: [`shard ${shard} crashed in ${current.what}: ${err.stack}`], slowest: { ms: 0, what: '' } }));
    worker.on('exit', () => finish({ cases: 0, failures: [`shard ${shard} exited in ${current.what}`], slowest: { ms: 0, what: '' } }));
  })));
  return {
    cases: results.reduce((n, r) => n + r.cases, 0),
    failures: results.flatMap((r) => r.failures),
    slowest: results.reduce((a, r) => (r.slowest.ms > a.ms ? r.slowest : a), { ms: 0, what: '' }),
  };
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  void runShard(workerData as ShardTask, (m) => port.postMessage(m));
} else {
  describe('fuzz', () => {
    it(`renders ${CASES} mutated messages safely (seed ${SEED})`, async (t) => {
      const started = performance.now();
      const { cases: ran, failures, slowest } = await runShards(CASES, SEED);
      const seconds = (performance.now() - started) / 1000;
      t.diagnostic(`fuzz: ${ran} cases in ${seconds.toFixed(1)} s on ${Math.min(os.availableParallelism(), 4)} threads, slowest ${slowest.ms.toFixed(1)} ms (${slowest.what})`);
      assert.deepEqual(failures, []);
      assert.equal(ran, CASES, 'every case completed');
    });

    it(`renders a sample of ${POOL_CASES} mutated messages through the worker pool`, async (t) => {
      const pool = new ProcessPool(OPTIONS, PROCESSING_BUDGET_MS);
      let slowest = 0;
      try {
        for (const c of cases(FIXTURES, POOL_CASES, SEED + 1)) {
          const t0 = performance.now();
          const rendered = await pool.process(c.raw);
          slowest = Math.max(slowest, performance.now() - t0);
          assert.deepEqual(unsafeConstructs(rendered.html), [], `case ${c.id} (${c.fixture}: ${c.mutations.join(', ')})`);
          assert.ok(!/could not be processed/.test(rendered.note ?? ''), `case ${c.id} fell back: ${rendered.note}`);
        }
      } finally {
        await pool.close();
      }
      t.diagnostic(`fuzz (pool): ${POOL_CASES} cases, slowest ${slowest.toFixed(1)} ms`);
    });
  });
}
