/**
 * The store on PostgreSQL (issue 15): the real server with FEEDMAIL_DATABASE_URL set,
 * a fresh database per test. Needs a PostgreSQL server: set FEEDMAIL_TEST_DATABASE_URL
 * to a URL whose user may create databases (e.g. postgres://postgres@127.0.0.1:5432/postgres);
 * without it these tests are skipped and say so.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { openStores, type Stores } from '../src/store/index.js';
import { createFeed, readFeed, sendRaw, startTestServer, tempDir, waitForEntries, type TestServer } from './support/helpers.js';

/** Runs a feedmail command against `databaseUrl` (without blocking the event loop). */
function cli(databaseUrl: string, args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      env: { ...process.env, FEEDMAIL_DATA_DIR: tempDir(), FEEDMAIL_DATABASE_URL: databaseUrl, FEEDMAIL_LOG_LEVEL: 'silent', FEEDMAIL_BACKUP_TO: '' },
      encoding: 'utf8', timeout: 60_000,
    }, (err, stdout) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout }));
  });
}

const ADMIN_URL = process.env.FEEDMAIL_TEST_DATABASE_URL ?? '';
const skip = ADMIN_URL === '' ? 'FEEDMAIL_TEST_DATABASE_URL is not set: set it to a PostgreSQL URL whose user may create databases to run these tests' : false;

const created: string[] = [];

/** A new, empty database on the test server; dropped when the file's tests end. */
async function freshDatabase(): Promise<string> {
  const name = `feedmail_test_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  created.push(name);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

after(async () => {
  if (created.length === 0) return;
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    for (const name of created) await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await client.end();
  }
});

function message(subject: string, body: string, id = randomBytes(8).toString('hex')): string {
  return `From: Ann Sender <ann@example.com>\r\nTo: someone@example.com\r\nSubject: ${subject}\r\nMessage-ID: <${id}@example.com>\r\nDate: Fri, 27 Nov 2026 03:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`;
}

describe('feedmail on PostgreSQL', { skip }, () => {
  it('runs the walkthrough: create a feed, mail it, read all three formats, search, share, delete', async () => {
    const server: TestServer = await startTestServer({ databaseUrl: await freshDatabase() });
    try {
      const feed = await createFeed(server.base, 'On PostgreSQL');
      await sendRaw(server.smtpPort, feed.address, message('Quokka census results', 'The quokka census is out: 42 quokkas counted. 美術館 opens soon.'));
      await sendRaw(server.smtpPort, feed.address, message('Weekly digest', 'Nothing about marsupials this week.'));
      for (const format of ['atom', 'rss', 'json'] as const) {
        const entries = await waitForEntries(feed.feeds[format], format, 2);
        assert.deepEqual(entries.map((e) => e.title).sort(), ['Quokka census results', 'Weekly digest'], format);
      }
      const [quokka] = (await readFeed(feed.feeds.json, 'json')).filter((e) => e.title === 'Quokka census results');
      assert.ok(quokka?.link.includes('/e/'), 'the entry has a share link');

      const search = async (q: string) => {
        const res = await fetch(`${feed.page}/search?${new URLSearchParams({ q })}`, { headers: { Accept: 'application/json' } });
        assert.equal(res.status, 200, `search for ${JSON.stringify(q.slice(0, 40))}`);
        return (await res.json()) as { results: { subject: string; snippet_html: string; subject_html: string }[] };
      };
      const found = await search('quokka census');
      assert.deepEqual(found.results.map((r) => r.subject), ['Quokka census results']);
      assert.match(found.results[0]!.snippet_html, /<mark>quokka census<\/mark>/);
      assert.deepEqual((await search('quo*')).results.map((r) => r.subject), ['Quokka census results']);
      assert.deepEqual((await search('美術')).results.map((r) => r.subject), ['Quokka census results']);
      assert.deepEqual((await search('digest OR quokka')).results.length, 2);
      assert.deepEqual((await search('-quokka')).results.map((r) => r.subject), ['Weekly digest']);
      for (const nasty of ['"', '" OR ( AND NOT', "'s:* & ! | <->", '\\', 'NEAR(a b)', '*', 'a'.repeat(5000), '🙂 🙂', '\u0000x', '"unclosed quokka', 'subject:quokka']) {
        await search(nasty);
      }

      // The share link shows the one entry.
      const shared = await fetch(quokka!.link);
      assert.equal(shared.status, 200);
      assert.match(await shared.text(), /<h1>Quokka census results<\/h1>/);
      assert.match(await (await fetch(`${quokka!.link}/body`)).text(), /42 quokkas counted/);

      // Deleting the feed takes its documents, entries and share links with it.
      const del = await fetch(`${feed.manage}/delete`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'confirm=yes' });
      assert.ok(del.status < 400, `delete answered ${del.status}`);
      assert.equal((await fetch(feed.feeds.atom)).status, 404);
      assert.equal((await fetch(quokka!.link)).status, 404);
      assert.equal(await server.app.stores.app.countAllEntries(), 0);
    } finally {
      await server.stop();
    }
  });

  it('two instances on one database store each message exactly once, whichever instance took it', async () => {
    const databaseUrl = await freshDatabase();
    const servers = [await startTestServer({ databaseUrl }), await startTestServer({ databaseUrl })];
    try {
      const feed = await createFeed(servers[0]!.base, 'Shared');
      const subjects = Array.from({ length: 30 }, (_, i) => `Message ${i}`);
      await Promise.all(subjects.map((subject, i) => sendRaw(servers[i % 2]!.smtpPort, feed.address, message(subject, `Body of ${subject}.`))));
      // Read through the other instance: any instance serves any feed.
      const otherFeedUrl = feed.feeds.json.replace(servers[0]!.base, servers[1]!.base);
      const entries = await waitForEntries(otherFeedUrl, 'json', subjects.length, 30_000);
      assert.deepEqual(entries.map((e) => e.title).sort(), [...subjects].sort());
      assert.equal(await servers[1]!.app.stores.app.countAllEntries(), subjects.length);
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  });

  it('never gives one job to two claimers', async () => {
    const url = await freshDatabase();
    const stores: Stores[] = [openStores('', { databaseUrl: url }), openStores('', { databaseUrl: url })];
    try {
      await Promise.all(stores.map((s) => s.ready()));
      for (let i = 0; i < 200; i++) await stores[0]!.queue.enqueueJob({ task: 'probe', payload: { i }, fairKey: `k${i % 7}` });
      const claimed: number[] = [];
      // Both instances claim in parallel, a few jobs at a time, until nothing is left.
      await Promise.all(stores.flatMap((s, n) => [0, 1, 2].map(async (w) => {
        for (;;) {
          const jobs = await s.queue.claimJobs(`owner-${n}-${w}`, 3, 60_000, { tasks: ['probe'] });
          if (jobs.length === 0) {
            if ((await s.queue.queueStats()).ready === 0) return;
            continue;
          }
          claimed.push(...jobs.map((j) => j.id));
        }
      })));
      assert.equal(claimed.length, 200, 'every job claimed once');
      assert.equal(new Set(claimed).size, 200, 'no job claimed twice');
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('gives each recurring slot to one instance', async () => {
    const url = await freshDatabase();
    const stores: Stores[] = [openStores('', { databaseUrl: url }), openStores('', { databaseUrl: url })];
    try {
      const wins = await Promise.all(stores.flatMap((s) => [1, 2, 3].map(() => s.queue.claimRecurringSlot('probe-slot', 60_000, 100))));
      assert.equal(wins.filter(Boolean).length, 1);
      assert.equal((await stores[1]!.queue.queueStats('probe-slot')).ready, 1);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('tells every instance of a new entry notification (LISTEN/NOTIFY)', async () => {
    const url = await freshDatabase();
    const stores: Stores[] = [openStores('', { databaseUrl: url }), openStores('', { databaseUrl: url })];
    try {
      let heard = 0;
      let told: () => void = () => undefined;
      const told2 = new Promise<void>((resolve) => { told = resolve; });
      const stop = await stores[1]!.queue.onNotifications(() => {
        heard++;
        if (heard === 2) told();
      });
      await stores[0]!.queue.recordNotification(1, 1);
      await stores[0]!.queue.recordNotification(1, 2);
      await told2;
      await stop();
      assert.equal(heard, 2);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('stores text holding NUL characters (which PostgreSQL text cannot) with U+FFFD in their place', async () => {
    const stores = openStores('', { databaseUrl: await freshDatabase() });
    try {
      const made = await stores.app.createFeed('before\u0000after', null);
      assert.ok('feed' in made);
      assert.equal(made.feed.title, 'before\ufffdafter');
      const raw = Buffer.from('Subject: x\r\n\r\nbody \u0000 bytes\r\n');
      const entry = await stores.app.insertEntry(made.feed.id, 'uid-nul', 1, raw, {
        fromName: 'A\u0000', fromAddress: 'a@example.com', subject: 'S\u0000', sentAt: null, html: '<p>h\u0000</p>', text: 't\u0000', confirmUrl: null, note: null, parts: [],
      });
      const [stored] = await stores.app.entriesOfFeed(made.feed.id, 1);
      assert.equal(stored!.id, entry!.id);
      assert.equal(stored!.subject, 'S\ufffd');
      assert.equal(stored!.text, 't\ufffd');
      assert.deepEqual(await stores.app.blobByHash(stored!.raw_hash!), raw, 'the raw bytes stay as they are');
    } finally {
      await stores.close();
    }
  });

  it('says what does not apply: no WAL, no file copy, durable commits', async () => {
    const stores = openStores('', { databaseUrl: await freshDatabase() });
    try {
      await stores.ready();
      assert.equal(stores.dialect, 'postgres');
      assert.equal(stores.queue.walBytes(), 0);
      assert.deepEqual(await stores.queue.checkpointTruncate(), { busy: false });
      assert.equal(await stores.reclaimSpace(), 0);
      assert.deepEqual(stores.queue.durability(), { synchronous: 'FULL', journalMode: 'postgres' });
      assert.match(stores.app.serverVersion(), /^\d+/);
      await stores.app.checkWritable();
      await assert.rejects(stores.app.copyTo('/nonexistent'), /applies to SQLite only/);
    } finally {
      await stores.close();
    }
  });

  it('doctor checks the connection and migrations; backup explains pg_dump', async () => {
    const url = await freshDatabase();
    const before = await cli(url, ['doctor']);
    assert.equal(before.code, 0, before.stdout);
    assert.match(before.stdout, /note +PostgreSQL +connected; no data yet/);
    const stores = openStores('', { databaseUrl: url });
    await stores.ready();
    await stores.close();
    const after = await cli(url, ['doctor']);
    assert.equal(after.code, 0, after.stdout);
    assert.match(after.stdout, /ok +PostgreSQL +server \d+/);
    assert.match(after.stdout, /ok +postgres:feedmail_queue +(\d+) of \1 migrations/);
    const backup = await cli(url, ['backup']);
    assert.equal(backup.code, 1);
    assert.match(backup.stdout, /pg_dump/);
    const unreachable = await cli('postgres://feedmail:hunter2secret@127.0.0.1:1/none', ['doctor']);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stdout, /PROBLEM +PostgreSQL +unable to use FEEDMAIL_DATABASE_URL/);
    assert.doesNotMatch(unreachable.stdout, /hunter2secret/, 'the password is not shown');
  });

  it('fails with a named store error when the server cannot be reached', async () => {
    const stores = openStores('', { databaseUrl: 'postgres://nobody@127.0.0.1:1/none' });
    try {
      await assert.rejects(stores.ready(), /store: unable to open the database \(postgres:feedmail_app\)/);
      await assert.rejects(stores.app.countAllEntries(), /store: unable to count all entries/);
    } finally {
      await stores.close();
    }
  });
});
