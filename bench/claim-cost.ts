/**
 * What claiming a job costs as the queue grows (profile evidence for issue 14): the SMTP
 * benchmark journals messages faster than they are processed, so ingest jobs pile up,
 * and the job runner claims with a query that ranks every runnable job (a window function
 * partitioned by fair key, plus a correlated count of running jobs per row). This fills a
 * fresh queue.db through the store with N ready ingest jobs of one feed and times
 * `claimJobs` (limit 1, then the job is given back by finishing it) at each backlog size.
 *
 *   node --import tsx bench/claim-cost.ts [--claims 50] [--backlogs 0,100,500,2000]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStores } from '../src/store/index.js';
import { INGEST_PRIORITY, INGEST_TASK } from '../src/store/journal.js';
import { numberArg } from './args.js';
import { median, percentile } from './lib/http-load.js';

if (process.argv.includes('--help')) {
  process.stdout.write('Usage: node --import tsx bench/claim-cost.ts [--claims 50] [--backlogs 0,100,500,2000]\n');
  process.exit(0);
}
const claims = numberArg('claims', 50);
const backlogIndex = process.argv.indexOf('--backlogs');
const backlogs = (backlogIndex >= 0 ? process.argv[backlogIndex + 1]! : '0,100,500,2000').split(',').map(Number);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'feedmail-claim-'));
const stores = openStores(dir);
try {
  let queued = 0;
  process.stdout.write(`claim-cost ${new Date().toISOString()} load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  for (const backlog of backlogs) {
    while (queued < backlog) {
      await stores.queue.enqueueJob({ task: INGEST_TASK, payload: { journalId: queued + 1 }, priority: INGEST_PRIORITY, fairKey: 'feeds:1' });
      queued++;
    }
    const times: number[] = [];
    for (let i = 0; i < claims; i++) {
      // One job more than the backlog, claimed and finished, so the backlog stays at its size.
      await stores.queue.enqueueJob({ task: INGEST_TASK, payload: { journalId: 0 }, priority: INGEST_PRIORITY, fairKey: 'feeds:1' });
      const started = performance.now();
      const [job] = await stores.queue.claimJobs('bench', 1, 30_000, { tasks: [INGEST_TASK], maxPriority: 1000 });
      times.push(performance.now() - started);
      if (job) await stores.queue.finishJob(job.id, 'bench');
    }
    times.sort((a, b) => a - b);
    process.stdout.write(`  ${String(backlog).padStart(5)} ready jobs: claim p50 ${median(times).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms\n`);
  }
} finally {
  await stores.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
