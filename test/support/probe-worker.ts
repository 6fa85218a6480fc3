/**
 * A job-runner process for the multi-process test: runs the real JobRunner
 * against a shared queue.db with two probe tasks that record when they ran.
 * Usage: node --import tsx test/support/probe-worker.ts <data-dir> <log-file>
 */
import fs from 'node:fs';
import { JobRunner } from '../../src/jobs/runner.js';
import { createLogger } from '../../src/log.js';
import { openStores } from '../../src/store/index.js';

const [dataDir, logFile] = process.argv.slice(2) as [string, string];
// On the PostgreSQL pass the test passes the data directory's database (support/pg.ts).
const stores = openStores(dataDir, { databaseUrl: process.env.FEEDMAIL_DATABASE_URL || undefined });
const record = (line: string) => fs.appendFileSync(logFile, `${line}\n`);

const runner = new JobRunner({
  queue: stores.queue,
  concurrency: 3,
  log: createLogger('silent'),
  leaseMs: 5_000,
  pollMs: 20,
  scheduleEveryMs: 50,
  tasks: [
    {
      name: 'probe',
      handler: async (_payload, { job }) => {
        record(`start ${job.id} ${process.pid} ${Date.now()}`);
        await new Promise((r) => setTimeout(r, 2 + Math.random() * 15));
        record(`end ${job.id} ${process.pid} ${Date.now()}`);
      },
    },
    {
      name: 'probe-recurring',
      everyMs: 200,
      handler: async (payload) => {
        record(`slot ${(payload as { slot: number }).slot} ${process.pid}`);
      },
    },
  ],
});
runner.start();
process.on('SIGTERM', () => {
  void runner.stop(2_000).then(() => stores.close()).then(() => process.exit(0));
});
