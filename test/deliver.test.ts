/** `feedmail deliver`, run as a mail server runs it: the real CLI, a message on standard input, sysexits statuses. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { addressesOf } from '../src/mail/head.js';
import { holdDataDirExclusive } from '../src/store/backup.js';
import { createFeed, readFeed, startTestServer, testDatabaseEnv, type TestServer, waitForEntries } from './support/helpers.js';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `feedmail deliver <args>` with `input` on standard input, against `dataDir`. */
async function deliver(dataDir: string, args: string[], input: string | Buffer, env: Record<string, string> = {}): Promise<Run> {
  const database = await testDatabaseEnv(dataDir);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'deliver', ...args], {
      env: { ...process.env, FEEDMAIL_DATA_DIR: dataDir, FEEDMAIL_LOG_LEVEL: 'silent', FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true', FEEDMAIL_MIN_FREE_BYTES: '0', ...database, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    // A command that exits before reading all of it closes the pipe: that is its answer, not an error here.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

const message = (subject: string, headers = '') => `${headers}From: Local News <news@example.com>\r\nTo: list@example.com\r\nSubject: ${subject}\r\n\r\nPiped in by the mail server.\r\n`;

function journalIdOf(run: Run): number {
  const m = /journal #(\d+)/.exec(run.stdout);
  assert.ok(m, `no journal id in ${JSON.stringify(run)}`);
  return Number(m[1]);
}

describe('feedmail deliver', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.stop();
  });

  it('journals a message addressed by Delivered-To, exits 0, and the running server makes it an entry', async () => {
    const feed = await createFeed(server.base);
    const run = await deliver(server.dataDir, [], message('piped', `Delivered-To: ${feed.address}\r\n`));
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^accepted: journal #\d+, 1 feed\(s\)\n$/);
    const row = await server.app.stores.queue.journalById(journalIdOf(run));
    assert.equal(row?.source, 'deliver');
    const items = await waitForEntries(feed.feeds.json, 'json');
    assert.equal(items[0]!.title, 'piped');
  });

  it('takes recipients from --to (repeatable) over the headers, and the sender from --from', async () => {
    const feed = await createFeed(server.base);
    const other = await createFeed(server.base);
    const run = await deliver(server.dataDir, ['--to', feed.address, `--to=${other.address}`, '--from', 'bounce@example.com'], message('two feeds', 'Delivered-To: nobody@localhost\r\n'));
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /2 feed\(s\)/);
    assert.equal((await server.app.stores.queue.journalById(journalIdOf(run)))?.mail_from, 'bounce@example.com');
    await waitForEntries(feed.feeds.json, 'json');
    await waitForEntries(other.feeds.json, 'json');
  });

  it('takes every address of a To: list, bare ones next to a named one included', async () => {
    assert.deepEqual(addressesOf(' "X" <a@example.com>, b@example.com'), ['a@example.com', 'b@example.com']);
    assert.deepEqual(addressesOf('b@example.com, "X" <a@example.com>'), ['b@example.com', 'a@example.com']);
    assert.deepEqual(addressesOf('"b@example.com" <a@example.com>'), ['a@example.com'], 'a display name gives no address');
    const feed = await createFeed(server.base);
    const run = await deliver(server.dataDir, [], `From: Local News <news@example.com>\r\nTo: "Other" <nobody@localhost>, ${feed.address}\r\nSubject: named and bare\r\n\r\nhi\r\n`);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /1 feed\(s\)/);
    assert.equal((await waitForEntries(feed.feeds.json, 'json'))[0]!.title, 'named and bare');
  });

  it('exits 67 for an unknown recipient, 65 for an empty or oversize message, 64 without a recipient, storing nothing', async () => {
    const feed = await createFeed(server.base);
    const before = journalIdOf(await deliver(server.dataDir, ['--to', feed.address], message('before')));
    assert.equal((await deliver(server.dataDir, ['--to', 'nobody@localhost'], message('x'))).status, 67);
    assert.equal((await deliver(server.dataDir, ['--to', feed.address], '')).status, 65);
    assert.equal((await deliver(server.dataDir, ['--to', feed.address], Buffer.alloc(100_000, 'a'), { FEEDMAIL_MAX_MESSAGE_BYTES: '64k' })).status, 65);
    assert.equal((await deliver(server.dataDir, [], 'Subject: no recipient\r\n\r\nx\r\n')).status, 64);
    assert.equal((await deliver(server.dataDir, ['--bogus'], message('x'))).status, 64);
    assert.equal(journalIdOf(await deliver(server.dataDir, ['--to', feed.address], message('after'))), before + 1, 'nothing refused was journaled');
    const items = await waitForEntries(feed.feeds.json, 'json', 2);
    assert.deepEqual(items.map((i) => i.title).sort(), ['after', 'before']);
  });

  it('exits 75 and stores nothing when the disk is below the free-space minimum', async () => {
    const feed = await createFeed(server.base);
    const before = journalIdOf(await deliver(server.dataDir, ['--to', feed.address], message('before the full disk')));
    // A minimum larger than any test disk: the disk is "full" for this run.
    const full = await deliver(server.dataDir, ['--to', feed.address], message('while full'), { FEEDMAIL_MIN_FREE_BYTES: '1000g' });
    assert.equal(full.status, 75, full.stderr);
    assert.match(full.stderr, /free-space minimum/);
    assert.equal(full.stdout, '');
    assert.equal(journalIdOf(await deliver(server.dataDir, ['--to', feed.address], message('after the full disk'))), before + 1, 'nothing was journaled while full');
    const items = await waitForEntries(feed.feeds.json, 'json', 2);
    assert.deepEqual(items.map((i) => i.title).sort(), ['after the full disk', 'before the full disk']);
  });

  it('prints its help with --help', async () => {
    const run = await deliver(server.dataDir, ['--help'], '');
    assert.equal(run.status, 0);
    assert.match(run.stdout, /Usage: feedmail deliver/);
    assert.match(run.stdout, /75 {2}try again later/);
  });
});

describe('feedmail deliver without a running server', () => {
  it('journals the message; the next server started on the data directory makes it an entry', async () => {
    const first = await startTestServer();
    const feed = await createFeed(first.base);
    await first.stop();
    const run = await deliver(first.dataDir, [], message('while nobody ran', `X-Original-To: ${feed.address}\r\n`));
    assert.equal(run.status, 0, run.stderr);
    const second = await startTestServer({ dataDir: first.dataDir });
    try {
      // The feed's URLs carry the first server's port; the same paths on the second.
      const url = new URL(feed.feeds.json);
      // Generous: the second server starts its processing threads first.
      const items = await waitForEntries(`${second.base}${url.pathname}`, 'json', 1, 30_000);
      assert.equal(items[0]!.title, 'while nobody ran');
      assert.equal((await readFeed(`${second.base}${url.pathname}`, 'json')).length, 1);
    } finally {
      await second.stop();
    }
  });

  it('exits 75 while a restore holds the data directory, so the mail server tries again', async () => {
    const first = await startTestServer();
    const feed = await createFeed(first.base);
    await first.stop();
    const restore = holdDataDirExclusive(first.dataDir);
    assert.ok(restore, 'the test holds the lock a restore takes');
    let run: Run;
    try {
      run = await deliver(first.dataDir, ['--to', feed.address], message('during the restore'));
    } finally {
      restore.release();
    }
    assert.equal(run.status, 75, run.stderr);
    assert.match(run.stderr, /"feedmail restore" is restoring .*; try again later/);
    assert.equal(run.stdout, '');
    const after = await deliver(first.dataDir, ['--to', feed.address], message('after the restore'));
    assert.equal(after.status, 0, after.stderr);
  });
});
