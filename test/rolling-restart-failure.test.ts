/**
 * `feedmail serve --processes 2`: a rolling restart whose new worker cannot start (here its
 * STARTTLS certificate is unreadable, as when a renewal is half-way) stops, the old workers
 * keep serving, and the failed worker is not restarted as if it had crashed: the primary
 * never runs more than 2 workers, and once the certificate is fixed the next SIGHUP
 * replaces exactly 2.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { tempDir } from './support/helpers.js';
import { startServeProcess, type ServeProcess } from './support/serve-process.js';

const run = promisify(execFile);
let server: ServeProcess | undefined;

after(async () => {
  if (server && server.child.exitCode === null) server.child.kill('SIGKILL');
  await server?.exited;
});

/** The primary's child processes: its workers. */
function workers(pid: number): number {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

test('a new worker that fails to start stops the rolling restart; the old workers stay and no extra worker is started', async () => {
  const dir = tempDir();
  const cert = path.join(dir, 'fullchain.pem');
  const key = path.join(dir, 'privkey.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert]);
  const good = fs.readFileSync(cert);
  server = await startServeProcess({ processes: 2, env: { FEEDMAIL_SMTP_TLS_CERT: cert, FEEDMAIL_SMTP_TLS_KEY: key } });
  assert.equal(workers(server.pid), 2);

  fs.writeFileSync(cert, 'not a certificate\n');
  const from = server.logs.length;
  process.kill(server.pid, 'SIGHUP');
  await server.waitForLog((l) => l.msg === 'cluster: new worker did not become ready; rolling restart stopped, the running workers stay', 120_000, from);
  assert.deepEqual(server.logs.slice(from).filter((l) => l.msg === 'cluster: worker died; starting another'), [],
    'the failed new worker is not restarted as a crashed one');
  assert.equal(workers(server.pid), 2, 'the two old workers, nothing more');
  assert.equal((await fetch(`${server.base}/healthz`)).status, 200);

  fs.writeFileSync(cert, good);
  const again = server.logs.length;
  process.kill(server.pid, 'SIGHUP');
  await server.waitForLog((l) => l.msg === 'cluster: rolling restart done', 120_000, again);
  assert.equal(server.logs.slice(again).find((l) => l.msg === 'cluster: rolling restart')?.workers, 2, 'the next roll replaces 2 workers');
  assert.equal(server.logs.slice(again).filter((l) => l.msg === 'cluster: worker draining').length, 2);
  assert.deepEqual(server.logs.slice(from).filter((l) => l.msg === 'cluster: worker died; starting another'), []);
  assert.equal(workers(server.pid), 2);
  assert.equal((await fetch(`${server.base}/healthz`)).status, 200);
  assert.equal(await server.stop(), 0);
});
