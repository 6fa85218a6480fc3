/** `feedmail serve` and two `feedmail worker` processes on one data directory share the work safely. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { it } from 'node:test';
import nodemailer from 'nodemailer';
import { createFeed, freePort, readFeed, tempDir, testDatabaseEnv, waitFor } from './support/helpers.js';

interface Proc {
  child: ChildProcess;
  finished: Map<number, string>;
}

function start(command: string, env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', command], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const finished = new Map<number, string>();
  let buffer = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      if (!line.startsWith('{')) continue;
      const rec = JSON.parse(line) as { msg: string; jobId?: number; task?: string };
      if (rec.msg === 'jobs: finished' && rec.jobId !== undefined) finished.set(rec.jobId, rec.task ?? '');
    }
  });
  return { child, finished };
}

it('runs each job once across the server and two worker processes', async () => {
  const dataDir = tempDir();
  const [httpPort, smtpPort] = [await freePort(), await freePort()];
  const env = { ...await testDatabaseEnv(dataDir), FEEDMAIL_DATA_DIR: dataDir, FEEDMAIL_HTTP_PORT: String(httpPort), FEEDMAIL_SMTP_PORT: String(smtpPort), FEEDMAIL_LOG_LEVEL: 'debug', FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true', FEEDMAIL_MIN_FREE_BYTES: '0', FEEDMAIL_FEED_MAX_ENTRIES: '500' };
  const server = start('serve', env);
  const base = `http://127.0.0.1:${httpPort}`;
  const procs = [server];
  try {
    await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.ok, 20_000, 'the server');
    procs.push(start('worker', env), start('worker', env));
    const feed = await createFeed(base);
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, pool: true, maxConnections: 4, ignoreTLS: true });
    const total = 150;
    await Promise.all(Array.from({ length: total }, (_, i) => transport.sendMail({ envelope: { from: 'a@example.com', to: feed.address }, raw: `Subject: m${i}\r\n\r\nbody ${i}\r\n` })));
    transport.close();
    const items = await waitFor(async () => {
      const l = await readFeed(feed.feeds.json, 'json');
      return l.length >= total ? l : undefined;
    }, 60_000, 'all entries');
    assert.equal(items.length, total);
    assert.equal(new Set(items.map((i) => i.title)).size, total, 'each message exactly once');
  } finally {
    for (const p of procs) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => new Promise((r) => (p.child.exitCode !== null ? r(null) : p.child.once('exit', r)))));
  }
  const counts = new Map<number, number>();
  for (const p of procs) for (const id of p.finished.keys()) counts.set(id, (counts.get(id) ?? 0) + 1);
  assert.deepEqual([...counts.entries()].filter(([, n]) => n > 1), [], 'no job finished in two processes');
  const ingestByProcess = procs.map((p) => [...p.finished.values()].filter((t) => t === 'ingest').length);
  assert.equal(ingestByProcess.reduce((a, b) => a + b, 0), 150);
  assert.ok(ingestByProcess.filter((n) => n > 0).length >= 2, `ingest work was shared: ${ingestByProcess.join(', ')}`);
});
