/**
 * `feedmail doctor`, run as an operator runs it (the CLI in a child process): a data
 * directory on tmpfs is a problem (exit 1), a healthy one on disk passes (exit 0) even
 * while the server runs, failed jobs are reported with what to do, and a directory
 * without data is reported without being created.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { mountOf } from '../src/ops/storage-guard.js';
import type { DoctorReport } from '../src/ops/doctor.js';
import { createFeed, postgresOnly, sendRaw, sqliteOnlySuite, startTestServer, tempDir, testDatabaseEnv, waitForEntries } from './support/helpers.js';

const run = promisify(execFile);
const TMPFS_DIR = '/dev/shm';
const onTmpfs = mountOf(TMPFS_DIR)?.fsType === 'tmpfs';
const testDirOnDisk = !['tmpfs', 'ramfs', 'overlay'].includes(mountOf(os.tmpdir())?.fsType ?? '');

/** Runs `feedmail doctor` (without blocking the event loop: the server under test runs in this process). */
async function doctor(dataDir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string }> {
  const database = await testDatabaseEnv(dataDir);
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'doctor', ...args], {
      env: { ...process.env, FEEDMAIL_DATA_DIR: dataDir, FEEDMAIL_LOG_LEVEL: 'silent', FEEDMAIL_BACKUP_TO: '', ...database, ...env },
      encoding: 'utf8', timeout: 30_000,
    }, (err, stdout) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout }));
  });
}

const NEWSLETTER = 'From: News <news@example.com>\r\nTo: x@localhost\r\nSubject: Issue 1\r\nMessage-ID: <doc-1@example.com>\r\n\r\nHello.\r\n';

describe('feedmail doctor', { skip: sqliteOnlySuite('checks the data directory\'s filesystem and the SQLite files; the PostgreSQL checks are below') }, () => {
  test('a data directory on tmpfs is reported, with what to do, and the exit code is 1', { skip: !onTmpfs && `${TMPFS_DIR} is not tmpfs here` }, async () => {
    const dataDir = fs.mkdtempSync(path.join(TMPFS_DIR, 'feedmail-doctor-'));
    try {
      // Data made there by a server that was allowed to start (as a careless deploy would).
      const server = await startTestServer({ dataDir });
      await server.stop();
      const { code, stdout } = await doctor(dataDir);
      assert.equal(code, 1, stdout);
      assert.match(stdout, /PROBLEM\s+filesystem\s+.*tmpfs/);
      assert.match(stdout, /→ Put the data directory on a local persistent disk/);
      assert.match(stdout, /1 problem found/);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a healthy data directory on disk passes while the server runs, and --json says the same', { skip: !testDirOnDisk && 'the test temp directory is not on a persistent disk' }, async () => {
    const server = await startTestServer({ dataDir: tempDir('feedmail-doctor-') });
    try {
      const feed = await createFeed(server.base, 'Checked');
      await sendRaw(server.smtpPort, feed.address, NEWSLETTER);
      await waitForEntries(feed.feeds.atom, 'atom', 1);
      const { code, stdout } = await doctor(server.dataDir);
      assert.equal(code, 0, stdout);
      assert.match(stdout, /ok\s+filesystem\s+ext[234]|ok\s+filesystem\s+(xfs|btrfs|zfs)/);
      assert.match(stdout, /ok\s+SQLite\s+version 3\.\d+/);
      for (const db of ['app.db', 'queue.db', 'cache.db']) assert.match(stdout, new RegExp(`ok\\s+${db.replace('.', '\\.')}\\s+journal mode wal, .*WAL`));
      assert.match(stdout, /ok\s+jobs\s+\d+ waiting, \d+ running, 0 failed/);
      assert.match(stdout, /note\s+backups\s+not configured/);
      assert.match(stdout, /note\s+SMTP TLS\s+STARTTLS is off/);
      assert.match(stdout, /No problems found/);

      const json = await doctor(server.dataDir, ['--json']);
      assert.equal(json.code, 0);
      const report = JSON.parse(json.stdout) as DoctorReport;
      assert.equal(report.healthy, true);
      assert.deepEqual(report.checks.filter((c) => c.status === 'problem'), []);
      // The server was not disturbed: mail still becomes entries.
      await sendRaw(server.smtpPort, feed.address, NEWSLETTER.replace('doc-1', 'doc-2').replace('Issue 1', 'Issue 2'));
      await waitForEntries(feed.feeds.atom, 'atom', 2);
    } finally {
      await server.stop();
    }
  });

  test('failed jobs are reported with the commands that deal with them', { skip: !testDirOnDisk && 'the test temp directory is not on a persistent disk' }, async () => {
    const server = await startTestServer({ dataDir: tempDir('feedmail-doctor-') });
    try {
      // A job of a task no runner knows, claimed and failed the way a runner fails one.
      const { queue } = server.app.stores;
      await queue.enqueueJob({ task: 'doctor-probe', maxAttempts: 1 });
      const [job] = await queue.claimJobs('doctor-test', 1, 60_000, { tasks: ['doctor-probe'] });
      await queue.failJobForGood(job!.id, 'doctor-test', 'failed on purpose');
      const { code, stdout } = await doctor(server.dataDir);
      assert.equal(code, 1, stdout);
      assert.match(stdout, /PROBLEM\s+jobs\s+.*1 failed.*\(1 doctor-probe\)/);
      assert.match(stdout, /feedmail jobs list/);
      assert.doesNotMatch(stdout, /failed on purpose/, 'job errors stay in "feedmail jobs list"');
    } finally {
      await server.stop();
    }
  });

  test('run as root on a stopped server, the files it leaves belong to the databases\' owner', { skip: process.getuid?.() !== 0 && 'not running as root' }, async () => {
    const server = await startTestServer({ dataDir: tempDir('feedmail-doctor-') });
    await server.stop();
    // The server's own user (nobody here) owns the data; a stopped server leaves no -wal or -shm.
    // The doctor's read creates them, and SQLite gives them to the database's owner when run as root.
    const nobody = 65534;
    for (const f of fs.readdirSync(server.dataDir)) fs.chownSync(path.join(server.dataDir, f), nobody, nobody);
    await doctor(server.dataDir);
    for (const f of fs.readdirSync(server.dataDir)) {
      const s = fs.statSync(path.join(server.dataDir, f));
      assert.deepEqual([f, s.uid, s.gid], [f, nobody, nobody]);
    }
  });

  test('a STARTTLS certificate that does not load, or is about to expire, is reported', async () => {
    const dir = tempDir('feedmail-doctor-tls-');
    const make = async (name: string) => {
      const cert = path.join(dir, `${name}.crt`);
      const key = path.join(dir, `${name}.key`);
      await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=mx.example.com', '-days', '1', '-keyout', key, '-out', cert]);
      return { cert, key };
    };
    const [a, b] = [await make('a'), await make('b')];
    const dataDir = path.join(dir, 'data');
    const mismatched = await doctor(dataDir, [], { FEEDMAIL_SMTP_TLS_CERT: a.cert, FEEDMAIL_SMTP_TLS_KEY: b.key });
    assert.equal(mismatched.code, 1);
    assert.match(mismatched.stdout, /PROBLEM\s+SMTP TLS\s+the certificate and key do not load/);
    const expiring = await doctor(dataDir, [], { FEEDMAIL_SMTP_TLS_CERT: a.cert, FEEDMAIL_SMTP_TLS_KEY: a.key });
    assert.equal(expiring.code, 1);
    assert.match(expiring.stdout, /PROBLEM\s+SMTP TLS\s+STARTTLS with .*: 0 day\(s\) left/);
    assert.match(expiring.stdout, /Renewal looks stuck/);
  });

  test('a directory without data is reported as such and not created', async () => {
    const dataDir = path.join(tempDir('feedmail-doctor-'), 'not-yet');
    const { code, stdout } = await doctor(dataDir);
    assert.equal(code, testDirOnDisk ? 0 : 1, stdout);
    assert.match(stdout, /does not exist yet/);
    assert.match(stdout, /no data yet/);
    assert.equal(fs.existsSync(dataDir), false, 'the doctor created nothing');
  });
});

describe('feedmail doctor on PostgreSQL', () => {
  test('checks the connection, the server version and each schema\'s migrations, and says how backups are made', async (t) => {
    if (postgresOnly(t, 'FEEDMAIL_DATABASE_URL set')) return;
    const server = await startTestServer({ dataDir: tempDir('feedmail-doctor-') });
    try {
      const feed = await createFeed(server.base, 'Checked');
      await sendRaw(server.smtpPort, feed.address, NEWSLETTER);
      await waitForEntries(feed.feeds.atom, 'atom', 1);
      const { code, stdout } = await doctor(server.dataDir);
      assert.equal(code, 0, stdout);
      assert.match(stdout, /ok\s+PostgreSQL\s+server \d+\.\d+/);
      for (const schema of ['feedmail_app', 'feedmail_queue', 'feedmail_cache']) assert.match(stdout, new RegExp(`ok\\s+postgres:${schema}\\s+(\\d+) of \\1 migrations`));
      assert.match(stdout, /ok\s+jobs\s+\d+ waiting, \d+ running, 0 failed/);
      assert.match(stdout, /note\s+backups\s+PostgreSQL: back it up with pg_dump/);
      assert.doesNotMatch(stdout, /app\.db|queue\.db|journal mode wal/);
    } finally {
      await server.stop();
    }
    const unreachable = await doctor(tempDir(), [], { FEEDMAIL_DATABASE_URL: 'postgres://feedmail:s3cret-pw@127.0.0.1:1/none' });
    assert.equal(unreachable.code, 1, unreachable.stdout);
    assert.match(unreachable.stdout, /PROBLEM\s+PostgreSQL\s+unable to use FEEDMAIL_DATABASE_URL/);
    assert.doesNotMatch(unreachable.stdout, /s3cret-pw/, 'the password is never printed');
  });
});
