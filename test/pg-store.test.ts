/**
 * The store on PostgreSQL (issue 15): the real server with FEEDMAIL_DATABASE_URL set,
 * a fresh database per test. Needs a PostgreSQL server: set FEEDMAIL_TEST_DATABASE_URL
 * to a URL whose user may create databases (e.g. postgres://postgres@127.0.0.1:5432/postgres);
 * without it these tests are skipped and say so.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { openStores, type Stores } from '../src/store/index.js';
import { createFeed, readFeed, sendRaw, startTestServer, waitForEntries, type TestServer } from './support/helpers.js';

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
