/** Recurring tasks, `feedmail reprocess` and the per-message limits, against a real server's databases. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { allTasks } from '../src/jobs/tasks/index.js';
import { createLogger } from '../src/log.js';
import { ProcessPool } from '../src/mail/process-pool.js';
import { createFeed, fixture, readFeed, sendRaw, startTestServer, testDatabaseEnvSync, type TestServer, waitFor, waitForEntries, sqliteOnly } from './support/helpers.js';
import { TestClock } from './support/clock.js';

const DAY = 86_400_000;

function task(server: TestServer, name: string) {
  const processor = new ProcessPool({ maxPartBytes: 1e7, keepTrackingPixels: false }, 5000);
  const def = allTasks({ stores: server.app.stores, config: server.app.config, processor, log: createLogger('silent') }).find((t) => t.name === name);
  assert.ok(def, `task ${name} exists`);
  return async () => {
    try {
      await def.handler({}, { job: {} as never, signal: new AbortController().signal });
    } finally {
      await processor.close();
    }
  };
}

/** The inbox token of the server's first feed, created through the web form. */
async function feedInboxToken(server: TestServer): Promise<string> {
  return (await createFeed(server.base)).address.split('@')[0]!;
}

/** Sends a message and waits until it is the newest entry of the feed. */
async function deliver(server: TestServer, address: string, subject: string, atom: string) {
  await sendRaw(server.smtpPort, address, `From: n@example.com\r\nSubject: ${subject}\r\n\r\nhello\r\n`);
  await waitFor(async () => (await readFeed(atom, 'atom'))[0]?.title === subject, 5000, subject);
}

describe('recurring tasks', () => {
  it('trims feeds to the number of entries to keep', async () => {
    const server = await startTestServer({ feedKeepEntries: '2', feedMaxEntries: '2' });
    try {
      const feed = await createFeed(server.base);
      for (let i = 1; i <= 4; i++) await deliver(server, feed.address, `n${i}`, feed.feeds.atom);
      // The manage page counts every entry kept, not only those a document shows.
      assert.match(await (await fetch(feed.manage)).text(), /4 entries/);
      await task(server, 'trim-feeds')();
      assert.match(await (await fetch(feed.manage)).text(), /2 entries/);
      assert.deepEqual((await readFeed(feed.feeds.atom, 'atom')).map((e) => e.title), ['n4', 'n3']);
    } finally {
      await server.stop();
    }
  });

  it('warns on the feed page before expiring a feed nobody fetches, then deletes it', async () => {
    const clock = new TestClock();
    const server = await startTestServer({ feedExpireDays: '30' }, undefined, { clock });
    try {
      const fresh = await createFeed(server.base);
      assert.ok(!(await (await fetch(fresh.page)).text()).includes('will be deleted'), 'a new feed shows no warning');
      const feed = await clock.at(-27 * DAY, () => createFeed(server.base));
      assert.match(await (await fetch(feed.page)).text(), /will be deleted in 3 day/);
      // Four days on, it has gone 31 days unfetched: past the limit. The fresh one is 4 days old.
      clock.offsetMs = 4 * DAY;
      await task(server, 'expire-feeds')();
      assert.equal((await fetch(fresh.feeds.atom)).status, 200, 'a feed within the limit stays');
      assert.equal((await fetch(feed.feeds.atom)).status, 404);
      await assert.rejects(sendRaw(server.smtpPort, feed.address, 'Subject: x\r\n\r\nx'), { responseCode: 550 });
    } finally {
      await server.stop();
    }
  });

  it('keeps feeds forever when expiry is off (the default)', async () => {
    const clock = new TestClock();
    const server = await startTestServer({}, undefined, { clock });
    try {
      const feed = await clock.at(-3650 * DAY, () => createFeed(server.base));
      await task(server, 'expire-feeds')();
      assert.equal((await fetch(feed.feeds.atom)).status, 200);
    } finally {
      await server.stop();
    }
  });

  it('deletes parts no entry uses and keeps shared ones', async () => {
    const server = await startTestServer();
    try {
      const a = await createFeed(server.base);
      const b = await createFeed(server.base);
      const pdf = fixture('mixed-pdf-attachment.eml');
      await sendRaw(server.smtpPort, [a.address, b.address], pdf);
      await waitFor(async () => (await readFeed(a.feeds.atom, 'atom')).length === 1 && (await readFeed(b.feeds.atom, 'atom')).length === 1);
      const blobs = async () => (await server.app.stores.app.rowCounts()).blobs;
      const before = await blobs();
      assert.equal(before, 2, 'the raw message and the PDF, each stored once for both feeds');
      await fetch(`${a.manage}/delete`, { method: 'POST', body: new URLSearchParams({ confirm: 'yes' }) });
      await task(server, 'delete-orphan-parts')();
      assert.equal(await blobs(), 2, 'still used by the other feed');
      await fetch(`${b.manage}/delete`, { method: 'POST', body: new URLSearchParams({ confirm: 'yes' }) });
      await task(server, 'delete-orphan-parts')();
      assert.equal(await blobs(), 0);
    } finally {
      await server.stop();
    }
  });

  it('drops journal rows past the retention but never one a job still needs', async () => {
    // No runner: the test plays the worker, finishing one message's job and failing the other's.
    const clock = new TestClock();
    const server = await startTestServer({ journalRetentionDays: '1' }, { web: true, smtp: true, jobs: false }, { clock });
    try {
      const queue = server.app.stores.queue;
      const message = (subject: string) => ({ source: 'smtp', mailFrom: 'n@example.com', feedIds: [], raw: Buffer.from(`Subject: ${subject}\r\n\r\nx`) });
      const [done, failed] = await clock.at(-2 * DAY, async () => [await queue.journalMessage(message('done')), await queue.journalMessage(message('failed'))]);
      const recent = await queue.journalMessage(message('recent'));
      const jobs = await queue.claimJobs('test-worker', 10, 60_000, { tasks: ['ingest'] });
      const jobOf = (journalId: number) => jobs.find((j) => JSON.parse(j.payload).journalId === journalId)!;
      assert.equal(jobs.length, 3);
      await queue.finishJob(jobOf(done).id, 'test-worker');
      await queue.failJobForGood(jobOf(failed).id, 'test-worker', 'kept for retrying by hand');
      await queue.finishJob(jobOf(recent).id, 'test-worker');
      await task(server, 'prune-old-rows')();
      assert.equal(await queue.journalById(done), undefined, 'past the retention and processed: dropped');
      assert.ok(await queue.journalById(failed), 'its failed job may still be retried: kept');
      assert.ok(await queue.journalById(recent), 'within the retention: kept');
    } finally {
      await server.stop();
    }
  });

  it('still runs a retention job queued under the task\'s former name "drop-old-journal"', async () => {
    const server = await startTestServer();
    try {
      const queue = server.app.stores.queue;
      const id = (await queue.enqueueJob({ task: 'drop-old-journal', maxAttempts: 1 }))!;
      server.app.runner!.notify();
      await waitFor(async () => (await queue.jobById(id)) === undefined, 5000, 'the job queued under the former name to run and finish');
    } finally {
      await server.stop();
    }
  });

  it('fails an ingest job whose payload names no journal row, saying what the payload must be', async () => {
    const server = await startTestServer({}, { web: true, smtp: true, jobs: false });
    try {
      await assert.rejects(task(server, 'ingest')(), /ingest job: the payload must be \{"journalId": <integer>\}, got \{\}/);
    } finally {
      await server.stop();
    }
  });

  it('fails such a job for good on its first run instead of retrying it', async () => {
    const server = await startTestServer();
    try {
      const queue = server.app.stores.queue;
      const id = (await queue.enqueueJob({ task: 'ingest', payload: { journalId: 'x' }, maxAttempts: 10 }))!;
      server.app.runner!.notify();
      const job = await waitFor(async () => {
        const j = await queue.jobById(id);
        return j?.state === 'failed' ? j : undefined;
      }, 10_000, 'the job to fail');
      assert.equal(job.attempts, 1, 'one run, no retries');
      assert.match(job.last_error ?? '', /^InvalidJobPayloadError: ingest job: the payload must be/);
    } finally {
      await server.stop();
    }
  });

  it('checkpoints a WAL that grew past its bound down to nothing', async (t) => {
    if (sqliteOnly(t, 'SQLite WAL checkpoints')) return;
    // No runner, so no recurring checkpoint can run between the write and the measurement.
    const server = await startTestServer({ walMaxBytes: '64k' }, { web: true, smtp: true, jobs: false });
    try {
      const app = server.app.stores.app;
      const feed = (await app.feedByInboxToken(await feedInboxToken(server)))!;
      // One transaction larger than the bound: the WAL holds all of it until a checkpoint
      // truncates the file (SQLite's own checkpoint only copies it back).
      const html = `<p>${'a long newsletter '.repeat(20_000)}</p>`;
      await app.insertEntry(feed.id, 'wal-test', Date.now(), Buffer.from(html), {
        fromName: '', fromAddress: 'n@example.com', subject: 'large', sentAt: null, html, text: '', confirmUrl: null, note: null, parts: [],
      });
      assert.ok(app.walBytes() > 64 * 1024, `the WAL grew (${app.walBytes()})`);
      await task(server, 'checkpoint-wal')();
      assert.equal(app.walBytes(), 0);
    } finally {
      await server.stop();
    }
  });
});

describe('reprocessing and limits', () => {
  it('re-renders stored entries with "feedmail reprocess", keeping their links', async () => {
    const server = await startTestServer();
    const feed = await createFeed(server.base);
    await sendRaw(server.smtpPort, feed.address, fixture('alternative-utf8.eml'));
    const [before] = await waitForEntries(feed.feeds.json, 'json');
    // The redaction fixture, addressed to this feed: reprocessing must redact as ingest did.
    const token = feed.address.split('@')[0]!;
    const personal = fixture('redaction-recipient.eml').toString('latin1')
      .replace(/k7q2m4xap3w5tgr6n2b4v7c3zd/gi, (m) => (m === m.toUpperCase() ? token.toUpperCase() : token))
      .replace(/feeds\.example\.net/gi, 'localhost');
    await sendRaw(server.smtpPort, feed.address, Buffer.from(personal, 'latin1'));
    await waitForEntries(feed.feeds.json, 'json', 2, 5000, 'the personal entry');
    // Pretend an older, worse sanitizer produced both entries.
    for (const entry of await server.app.stores.app.entriesAfter(0, 10)) {
      await server.app.stores.app.replaceEntryContent(entry.id, {
        fromName: entry.from_name, fromAddress: entry.from_address, subject: entry.subject, sentAt: entry.sent_at,
        html: '<p>stale rendering</p>', text: 'stale rendering', confirmUrl: null, note: null, parts: [],
      });
    }
    assert.ok((await readFeed(feed.feeds.json, 'json')).every((i) => i.html.includes('stale rendering')), 'both entries are stale before reprocessing');
    await server.stop();
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'reprocess'], {
      env: { ...process.env, ...testDatabaseEnvSync(server.dataDir), FEEDMAIL_DATA_DIR: server.dataDir, FEEDMAIL_ALLOW_UNSAFE_STORAGE: 'true', FEEDMAIL_LOG_LEVEL: 'silent' }, encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Reprocessed 2 entries/);
    const again = await startTestServer({ dataDir: server.dataDir });
    try {
      const items = await readFeed(feed.feeds.json.replace(/^http:\/\/[^/]+/, again.base), 'json');
      const after = items.find((i) => i.link.split('/e/')[1] === before!.link.split('/e/')[1]);
      assert.ok(after, 'the share link is unchanged');
      for (const item of items) assert.ok(!item.html.includes('stale rendering'), `${item.title} was reprocessed`);
      const reprocessed = items.find((i) => i !== after)!;
      assert.match(reprocessed.html, /redacted@localhost/, 'the reprocessed entry is redacted, not just re-rendered');
      for (const text of [reprocessed.title, reprocessed.html, await (await fetch(reprocessed.link.replace(/^http:\/\/[^/]+/, again.base) + '/body')).text()]) {
        assert.ok(!text.toLowerCase().includes(token), 'no inbox token after reprocessing');
      }
    } finally {
      await again.stop();
    }
  });

  it('lists parts over the size limit without storing them', async () => {
    const server = await startTestServer({ maxPartBytes: '1k' });
    try {
      const feed = await createFeed(server.base);
      const big = Buffer.alloc(5000, 7).toString('base64').replace(/.{76}/g, '$&\r\n');
      await sendRaw(server.smtpPort, feed.address, [
        'Subject: with a large attachment', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=b', '',
        '--b', 'Content-Type: text/plain', '', 'see attached',
        '--b', 'Content-Type: application/pdf; name=big.pdf', 'Content-Disposition: attachment; filename=big.pdf', 'Content-Transfer-Encoding: base64', '', big,
        '--b--', '',
      ].join('\r\n'));
      const [item] = await waitForEntries(feed.feeds.json, 'json');
      assert.deepEqual(item!.enclosures, [], 'a part that was not kept is no enclosure');
      const page = await (await fetch(item!.link)).text();
      assert.match(page, /big\.pdf <span class="meta">5000 bytes, too large to keep/);
    } finally {
      await server.stop();
    }
  });

  it('bounds the time one message may take and stores what it can with a note', async () => {
    // A bound well above a small message's cost on a busy machine, well below the slow one's (seconds).
    const pool = new ProcessPool({ maxPartBytes: 1e7, keepTrackingPixels: false }, 1000);
    try {
      const slow = `Subject: slow one\r\nContent-Type: text/html\r\n\r\n${'<table><tr><td style="color:red">x</td></tr></table>'.repeat(70_000)}`;
      const r = await pool.process(Buffer.from(slow));
      assert.equal(r.subject, 'slow one');
      assert.match(r.note ?? '', /took longer than 1000 ms/);
      // The pool keeps working after a timeout.
      const ok = await pool.process(Buffer.from('Subject: quick\r\n\r\nfine'));
      assert.equal(ok.note, null);
    } finally {
      await pool.close();
    }
  });
});
