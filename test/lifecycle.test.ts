/** The real `feedmail serve` process: health endpoints, logs without secrets, and a draining SIGTERM. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { it } from 'node:test';
import { createFeed, freePort, onPostgres, readFeed, sendRaw, tempDir, testDatabaseEnv, waitFor } from './support/helpers.js';
import { SMTPClient } from './support/smtp-client.js';

it('serves health, readiness and metrics, never logs a secret, and drains on SIGTERM', async () => {
  const [httpPort, smtpPort] = [await freePort(), await freePort()];
  const dataDir = tempDir();
  const database = await testDatabaseEnv(dataDir);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], {
    env: { ...process.env, ...database, FEEDMAIL_DATA_DIR: dataDir, FEEDMAIL_HTTP_PORT: String(httpPort), FEEDMAIL_SMTP_PORT: String(smtpPort), FEEDMAIL_LOG_LEVEL: 'trace', FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true', FEEDMAIL_MIN_FREE_BYTES: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout!.on('data', (c: Buffer) => { logs += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { logs += c.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const base = `http://127.0.0.1:${httpPort}`;
  try {
    await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.ok, 20_000, 'the server');
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.match(await ready.text(), /"databases": "writable"/);

    const feed = await createFeed(base);
    await sendRaw(smtpPort, feed.address, `Subject: hello\r\nTo: ${feed.address}\r\n\r\nHi ${feed.address}\r\n`);
    await waitFor(async () => (await readFeed(feed.feeds.atom, 'atom')).length === 1, 5000, 'the entry');
    const [entry] = await readFeed(feed.feeds.json, 'json');
    await fetch(`${entry!.link}/body`);
    await fetch(feed.manage);
    await fetch(`${base}/manage/${feed.manage.split('/').pop()}/nothing-here`);

    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^feedmail_smtp_messages_accepted_total 1$/m);
    assert.match(metrics, /^feedmail_jobs\{state="ready"\} 0$/m);
    // SQLite's WAL files; PostgreSQL has none of feedmail's to report.
    if (!onPostgres) assert.match(metrics, /^feedmail_wal_bytes\{db="queue.db"\} \d+$/m);
    // Each role counts into the counters /metrics reads.
    assert.match(metrics, /^feedmail_http_requests_total [1-9]\d*$/m);
    assert.match(metrics, /^feedmail_jobs_succeeded_total [1-9]\d*$/m);
    assert.match(metrics, /^feedmail_render_messages_total 1$/m);
    assert.match(metrics, /^feedmail_render_threads [1-9]\d*$/m);

    // An open session that has not started a transaction is refused one once draining starts.
    const session = await SMTPClient.connect(smtpPort);
    await session.command('EHLO test', 250);
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    assert.match(await session.command('MAIL FROM:<a@example.com>'), /^421 /);
    await session.close();
    assert.equal(await exited, 0, 'exits cleanly');

    const secrets = [feed.address.split('@')[0]!, feed.feeds.atom.match(/feeds\/([a-z2-7]+)/)![1]!, feed.manage.split('/').pop()!, entry!.link.split('/e/')[1]!];
    for (const s of secrets) assert.ok(!logs.includes(s), `the logs do not contain the secret ${s.slice(0, 4)}…`);
    assert.match(logs, /ingest: entry stored/, 'the logs were captured');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

it('keeps serving when its log cannot be written (stderr on a full disk)', async () => {
  const [httpPort, smtpPort] = [await freePort(), await freePort()];
  // /dev/full answers every write with ENOSPC, as a log file on a full disk does.
  const full = fs.openSync('/dev/full', 'w');
  const dataDir = tempDir();
  const database = await testDatabaseEnv(dataDir);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], {
    env: { ...process.env, ...database, FEEDMAIL_DATA_DIR: dataDir, FEEDMAIL_HTTP_PORT: String(httpPort), FEEDMAIL_SMTP_PORT: String(smtpPort), FEEDMAIL_LOG_LEVEL: 'trace', FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true', FEEDMAIL_MIN_FREE_BYTES: '0' },
    stdio: ['ignore', 'ignore', full],
  });
  fs.closeSync(full);
  const base = `http://127.0.0.1:${httpPort}`;
  try {
    await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.ok, 20_000, 'the server');
    const feed = await createFeed(base);
    await sendRaw(smtpPort, feed.address, 'Subject: logged nowhere\r\n\r\nstill delivered\r\n');
    await waitFor(async () => (await readFeed(feed.feeds.atom, 'atom')).length === 1, 5000, 'the entry');
    assert.equal(child.exitCode, null, 'the process is still running');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
